"""Which backend module serves this environment: the one for the installed
TransformerLens major version (3.x: `tl3`, HookedTransformer; 4.x: `tl4`,
TransformerBridge). Both offer the same loading functions (`from_state`,
`load_checkpoint`, `load_hf_directory`, `load_pretrained`); `circuitlang.eval.loading`
calls them through `library()`.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import import_module, metadata
from types import ModuleType

from .base import ModelLoadError

SUPPORTED = {3: "tl3", 4: "tl4"}


@lru_cache(maxsize=1)
def transformer_lens_major() -> int:
    """The installed TransformerLens major version (without importing it)."""
    try:
        version = metadata.version("transformer-lens")
    except metadata.PackageNotFoundError:
        raise ModelLoadError("TransformerLens is not installed",
                             "pip install 'transformer-lens>=3.5,<5' (circuitlang's own install does this)") from None
    return int(version.split(".")[0])


def library() -> ModuleType:
    """The backend module for the installed TransformerLens."""
    major = transformer_lens_major()
    if major not in SUPPORTED:
        raise ModelLoadError(f"TransformerLens {major}.x is not supported",
                             "circuitlang runs on TransformerLens 3.5+ and 4.x: pip install 'transformer-lens>=3.5,<5'")
    return import_module(f"{__package__}.{SUPPORTED[major]}")

"""The one model loader: what a `model` line (a `ModelRef`) or a name refers to, as a backend.

`zoo:NAME` is built in code (circuitlang.eval.zoo); a quoted name or an existing
directory is a checkpoint (`config.json` + `model.safetensors`); anything else is a
TransformerLens pretrained name, loaded from the local Hugging Face cache only.
`circ check`, `circ eval` and `circ discover` all load through `model_for`, which keeps
each model loaded once per process.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..core.models import ALIASES, KNOWN_SHAPES, ModelRef
from ..core.paths import is_dir
from .backends import transformer_lens as tl
from .backends.base import Backend, ModelLoadError
from .zoo import ZooError, weights

DTYPES = {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16, "float16": torch.float16}


def load_model(name: str | ModelRef, quoted: bool = False, base_dir: Path | None = None, device: str = "cpu",
               dtype: torch.dtype = torch.float32) -> Backend:
    """Load the model a `model` line names. Raises ModelLoadError with a way out."""
    ref = name if isinstance(name, ModelRef) else ModelRef(name, quoted, base_dir or Path.cwd())
    if ref.is_zoo:
        return zoo_model(ref.name, device, dtype)
    path = ref.path()
    if ref.quoted or is_dir(path):
        return tl.load_checkpoint(path, ref.name, device, dtype)
    canonical = ALIASES.get(ref.name, ref.name)
    return tl.load_pretrained(canonical, device, dtype, KNOWN_SHAPES.get(canonical))


def zoo_model(name: str, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
              **options: Any) -> Backend:
    """Zoo model `name` (`zoo:` optional) as a backend; `options` go to its builder."""
    full = name if name.startswith("zoo:") else f"zoo:{name}"
    try:
        model = weights(full, tl.blank_state, **options)
    except ZooError as err:
        raise ModelLoadError(err.message, err.help) from None
    return tl.from_state(model.config, model.state, full, device, dtype)


_LOADED: dict[tuple, Backend] = {}


def model_for(ref: ModelRef | None, device: str = "cpu", dtype: str = "float32") -> Backend:
    """The model a compiled file names, loaded once per process (device, dtype)."""
    if ref is None:
        raise ModelLoadError("the file declares no model", "add `model NAME` at the top")
    key = (ref.name, ref.quoted, str(ref.base_dir), device, dtype)
    if key not in _LOADED:
        _LOADED[key] = load_model(ref, device=device, dtype=DTYPES[dtype])
    return _LOADED[key]

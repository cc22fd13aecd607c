"""The one model loader: what a `model` line (a `ModelRef`) or a name refers to, as a backend.

`zoo:NAME` is built in code (circuitlang.eval.zoo); a quoted name or an existing
directory is a local model: a Hugging Face directory (its config.json has a
`model_type`, as `save_pretrained` writes it) or a checkpoint with HookedTransformerConfig
fields (`config.json` + `model.safetensors`); anything else is a TransformerLens or
Hugging Face name, loaded from the local Hugging Face cache only. The backend is the one
for the installed TransformerLens (`backends.installed`).
`circ check`, `circ eval` and `circ discover` all load through `model_for`, which keeps
each model loaded once per process.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from ..core.models import ALIASES, KNOWN_SHAPES, ModelRef
from ..core.paths import is_dir, is_file
from .backends.base import Backend, ModelLoadError
from .backends.installed import library
from .zoo import ZooError, weights
from .zoo.layout import blank_state

DTYPES = {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16, "float16": torch.float16}


def load_model(name: str | ModelRef, quoted: bool = False, base_dir: Path | None = None, device: str = "cpu",
               dtype: torch.dtype = torch.float32) -> Backend:
    """Load the model a `model` line names. Raises ModelLoadError with a way out."""
    ref = name if isinstance(name, ModelRef) else ModelRef(name, quoted, base_dir or Path.cwd())
    if ref.is_zoo:
        return zoo_model(ref.name, device, dtype)
    path = ref.path()
    canonical = ALIASES.get(ref.name, ref.name)
    if not ref.quoted and canonical in KNOWN_SHAPES:  # as static checks resolve it (core.models)
        return library().load_pretrained(canonical, device, dtype, KNOWN_SHAPES[canonical])
    if ref.quoted or is_dir(path):
        if is_hf_directory(path):
            return library().load_hf_directory(path, ref.name, device, dtype)
        return library().load_checkpoint(path, ref.name, device, dtype)
    return library().load_pretrained(canonical, device, dtype)


def is_hf_directory(path: Path) -> bool:
    """Whether `path` holds a Hugging Face model (a config.json with a `model_type`)."""
    config = path / "config.json"
    if not is_file(config):
        return False
    try:
        return "model_type" in json.loads(config.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return False


def zoo_model(name: str, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
              **options: Any) -> Backend:
    """Zoo model `name` (`zoo:` optional) as a backend; `options` go to its builder."""
    full = name if name.startswith("zoo:") else f"zoo:{name}"
    try:
        model = weights(full, blank_state, **options)
    except ZooError as err:
        raise ModelLoadError(err.message, err.help) from None
    return library().from_state(model.config, model.state, full, device, dtype)


_LOADED: dict[tuple, Backend] = {}


def model_for(ref: ModelRef | None, device: str = "cpu", dtype: str = "float32") -> Backend:
    """The model a compiled file names, loaded once per process (device, dtype)."""
    if ref is None:
        raise ModelLoadError("the file declares no model", "add `model NAME` at the top")
    key = (ref.name, ref.quoted, str(ref.base_dir), device, dtype)
    if key not in _LOADED:
        _LOADED[key] = load_model(ref, device=device, dtype=DTYPES[dtype])
    return _LOADED[key]

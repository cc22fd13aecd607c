"""The one model loader: what a `model` line (a `ModelRef`) or a name refers to, as a backend.

`zoo:NAME` is built in code (circuitlang.eval.zoo); a quoted name or an existing
directory is a local model: a Hugging Face directory (its config.json has a
`model_type`, as `save_pretrained` writes it) or a checkpoint with HookedTransformerConfig
fields (`config.json` + `model.safetensors`); anything else is a TransformerLens or
Hugging Face name, loaded from the local Hugging Face cache only. The backend is the one
for the installed TransformerLens (`backends.installed`).
`circ check`, `circ eval` and `circ discover` all load through `model_for`, which keeps
each model loaded once per process and sets torch's thread count for it (`thread_count`).

A checkpoint directory is checked before anything is built (`core.models.checkpoint_config`:
sizes, and a HookedTransformerConfig config against its weights' header), and the device
before anything is moved (`check_device`), so that a bad file or device is a ModelLoadError
naming it, never an error from deep inside torch.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from ..core.models import ALIASES, KNOWN_SHAPES, ModelRef, ShapeError, checkpoint_config
from ..core.shapes import ModelShape
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
    check_device(device)
    if ref.is_zoo:
        return zoo_model(ref.name, device, dtype)
    path = ref.path()
    canonical = ALIASES.get(ref.name, ref.name)
    if not ref.quoted and canonical in KNOWN_SHAPES:  # as static checks resolve it (core.models)
        return library().load_pretrained(canonical, device, dtype, KNOWN_SHAPES[canonical])
    if ref.quoted or is_dir(path):
        try:
            checkpoint_config(path, ref.name)
        except ShapeError as err:
            raise ModelLoadError(err.message, err.help) from None
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
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return False


def available_devices() -> list[str]:
    """The devices torch can use here: cpu, and cuda, cuda:N and mps where present."""
    found = ["cpu"]
    if torch.cuda.is_available():
        found += ["cuda"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        found.append("mps")
    return found


def check_device(device: str | torch.device) -> None:
    """Refuse a device that is not a torch device or not present here (ModelLoadError
    naming the devices there are), before any model is built or moved."""
    available = available_devices()
    if str(device) in available:
        return
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        parsed = None
    if parsed is not None and (parsed.type == "cpu" or (parsed.type in available and parsed.index is None)):
        return
    kind = "not a device torch knows" if parsed is None else "not available here"
    built = "" if parsed is None or parsed.type != "cuda" or torch.backends.cuda.is_built() else \
        " (this torch is built without CUDA)"
    raise ModelLoadError(f"device `{device}` is {kind}{built}; the devices here are: {', '.join(available)}",
                         "pass --device with one of them (cpu always works)")


# Torch's own thread count, read once before circuitlang changes it.
_TORCH_THREADS = torch.get_num_threads()
# Below this many parameters in the attention and MLP weights (about a 4-layer, 512-wide
# model), more threads only add synchronisation: bench/README.md, "Threads".
SMALL_MODEL_PARAMS = 12_000_000


def idle_threads() -> int:
    """Torch's default thread count less the cores the 1-minute load average says other
    work keeps busy, at least 1: on a shared machine, threads beyond the idle cores wait
    on each other (bench/README.md, "Threads")."""
    try:
        busy = int(os.getloadavg()[0])
    except OSError:
        busy = 0
    return max(1, min(_TORCH_THREADS, (os.cpu_count() or 1) - busy))


def thread_count(shape: ModelShape | None) -> int:
    """The torch thread count for a model: `$CIRC_THREADS` (`circ --threads`) when set,
    else 1 for a model with fewer than SMALL_MODEL_PARAMS weights in its blocks, else
    `idle_threads()`."""
    raw = os.environ.get("CIRC_THREADS", "").strip()
    if raw:
        if not raw.isdigit() or not 1 <= int(raw) <= 1024:
            raise ModelLoadError(f"CIRC_THREADS={raw[:20]} is not a thread count",
                                 "set it to a whole number from 1 to 1024, or unset it")
        return int(raw)
    if shape is None:
        return idle_threads()
    return 1 if is_small(shape) else idle_threads()


def is_small(shape: ModelShape) -> bool:
    """Whether a model has fewer than SMALL_MODEL_PARAMS weights in its blocks (the zoo):
    one thread runs it fastest, and a job on it is over before a worker process starts."""
    per_layer = 4 * shape.d_model * shape.n_heads * shape.d_head + (0 if shape.attn_only else 8 * shape.d_model ** 2)
    return shape.n_layers * per_layer < SMALL_MODEL_PARAMS


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
    torch.set_num_threads(thread_count(_LOADED[key].shape))
    return _LOADED[key]

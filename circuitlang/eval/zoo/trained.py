"""`zoo:induction-trained`: a small model trained on an algorithmic task, weights shipped.

`scripts/train_zoo.py` trains it deterministically on the CPU and writes
`weights/induction-trained.safetensors` with its HookedTransformerConfig fields in
`weights/induction-trained.json`; `build` loads them. Its circuit was found by
activation patching, not planted: see stdlib/zoo/induction_trained.circ.
"""

from __future__ import annotations

import json
from pathlib import Path

from ._build import Blank, ZooModel

NAME = "induction-trained"
WEIGHTS = Path(__file__).resolve().parent / "weights"


def paths(name: str = NAME) -> tuple[Path, Path]:
    """(state dict, config) files of a trained zoo model."""
    return WEIGHTS / f"{name}.safetensors", WEIGHTS / f"{name}.json"


def build(blank: Blank, name: str = NAME) -> ZooModel:
    """The shipped weights (`blank` is not needed: they are complete)."""
    from safetensors.torch import load_file

    weights, config_path = paths(name)
    if not weights.is_file() or not config_path.is_file():
        raise FileNotFoundError(f"zoo model `{name}` has no weights at {weights}; "
                                "run `python scripts/train_zoo.py` to make them")
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config.pop("training", None)  # how it was trained, not a HookedTransformerConfig field
    return ZooModel({"model_name": f"zoo:{name}", **config}, load_file(str(weights)))

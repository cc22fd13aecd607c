"""The zoo: small models built in code whose circuits are known (DESIGN.md section 6).

A `.circ` file names one as `model zoo:NAME`; `build(NAME)` makes it. Hand-set models
implement a planted circuit exactly; the trained model's circuit was found by activation
patching (scripts/find_zoo_circuit.py). Importing this package registers the zoo's task
generators in `circuitlang.tasks.GENERATORS`; TransformerLens is imported only when a
model is built.

>>> names()
['gpt2-random', 'induction-2l', 'induction-trained', 'mlp-planted']
>>> ZOO["induction-2l"].task
'induction'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

import torch

from . import generators as generators  # registers the task generators
from . import gpt2_random, induction, mlp_planted, trained

if TYPE_CHECKING:
    from transformer_lens import HookedTransformer


@dataclass(frozen=True)
class ZooEntry:
    """One zoo model: how to build it and which generator makes its task."""

    name: str
    description: str
    task: str  # a name in circuitlang.tasks.GENERATORS
    builder: Callable[..., "HookedTransformer"] = field(repr=False)
    task_kwargs: dict[str, Any] = field(default_factory=dict)
    circuit_file: str | None = None  # stdlib file holding its circuit, if any


ZOO: dict[str, ZooEntry] = {
    e.name: e
    for e in [
        ZooEntry("induction-2l", "2-layer attention-only, hand-set previous-token head L0.H2 + induction head L1.H1",
                 "induction", induction.build, {"seq_len": 16}, "stdlib/zoo/induction.circ"),
        ZooEntry("mlp-planted", "2-layer with MLPs, hand-set: L0.H0 moves digit a to END, L0.MLP looks up (a+b) mod 5",
                 "mod_sum", mlp_planted.build, {"seq_len": 8}, "stdlib/zoo/mlp_planted.circ"),
        ZooEntry("gpt2-random", "GPT-2-small shape (12x12, d_model 768, LN, gelu_new), random weights, seed 0",
                 "random_tokens", gpt2_random.build, {"seq_len": 16}),
        ZooEntry("induction-trained", "2-layer attention-only model trained on repeated random tokens (induction)",
                 "induction", trained.build, {"seq_len": 16}, "stdlib/zoo/induction_trained.circ"),
    ]
}


class ZooError(KeyError):
    """An unknown zoo name."""

    def __str__(self) -> str:
        return str(self.args[0])


def names() -> list[str]:
    """The zoo's model names (without the `zoo:` prefix), sorted."""
    return sorted(ZOO)


def build(name: str, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32) -> "HookedTransformer":
    """Build zoo model `name` (without `zoo:`) in eval mode; the same weights every call."""
    entry = ZOO.get(name.removeprefix("zoo:"))
    if entry is None:
        raise ZooError(f"no zoo model `{name}`; the zoo has {', '.join(names())}")
    return entry.builder(device=device, dtype=dtype)

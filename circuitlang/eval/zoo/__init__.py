"""The zoo: small models built in code whose circuits are known (docs/evaluation.md, "The zoo").

A `.circ` file names one as `model zoo:NAME`. Each entry builds its weights as data
(`ZooModel`: HookedTransformerConfig fields and a TransformerLens-layout state dict);
`circuitlang.eval.loading.load_model("zoo:NAME")` turns them into a backend. Hand-set
models implement a planted circuit exactly; the trained model's circuit was found by
activation patching (scripts/find_zoo_circuit.py). Each entry names the task generator
(circuitlang.eval.tasks) its circuits are checked on.

>>> names()
['gpt2-random', 'induction-2l', 'induction-trained', 'mlp-planted']
>>> ZOO["induction-2l"].task
'induction'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from ...core.errors import CircuitlangError
from . import gpt2_random, induction, mlp_planted, trained
from ._build import Blank, ZooModel


@dataclass(frozen=True)
class ZooEntry:
    """One zoo model: how to build its weights and which generator makes its task."""

    name: str
    description: str
    task: str  # a name in circuitlang.eval.tasks.registry.GENERATORS
    builder: Callable[..., ZooModel] = field(repr=False)
    task_kwargs: dict[str, Any] = field(default_factory=dict)


ZOO: dict[str, ZooEntry] = {
    e.name: e
    for e in [
        ZooEntry("induction-2l", "2-layer attention-only, hand-set previous-token head L0.H2 + induction head L1.H1",
                 "induction", induction.build, {"seq_len": 16}),
        ZooEntry("mlp-planted", "2-layer with MLPs, hand-set: L0.H0 moves digit a to END, L0.MLP looks up (a+b) mod 5",
                 "mod_sum", mlp_planted.build, {"seq_len": 8}),
        ZooEntry("gpt2-random", "GPT-2-small shape (12x12, d_model 768, LN, gelu_new), random weights, seed 0",
                 "random_tokens", gpt2_random.build, {"seq_len": 16}),
        ZooEntry("induction-trained", "2-layer attention-only model trained on repeated random tokens (induction)",
                 "induction", trained.build, {"seq_len": 16}),
    ]
}


class ZooError(CircuitlangError):
    """An unknown zoo name."""


def names() -> list[str]:
    """The zoo's model names (without the `zoo:` prefix), sorted."""
    return sorted(ZOO)


def weights(name: str, blank: Blank, **options: Any) -> ZooModel:
    """The config and weights of zoo model `name` (with or without `zoo:`); the same every
    call. `options` go to the builder (`score_gap` for the hand-set models)."""
    entry = ZOO.get(name.removeprefix("zoo:"))
    if entry is None:
        raise ZooError(f"no zoo model `{name}`", f"the zoo has: {', '.join(names())}")
    return entry.builder(blank, **options)

"""ACDC-style pruning recovers the planted circuits, and the batched form agrees with the literal one."""

from __future__ import annotations

from pathlib import Path

import pytest

import circuitlang as cl
from circuitlang.core.graph import CircuitGraph
from circuitlang.core.shapes import all_edges
from circuitlang.discovery.methods.acdc import acdc, acdc_sequential
from circuitlang.eval.evaluator import Evaluator
from circuitlang.eval.loading import load_model
from circuitlang.eval.session import Session
from circuitlang.eval.tasks.registry import task_data
from circuitlang.lang.check import TaskSpec

STDLIB = Path(__file__).resolve().parent.parent / "stdlib" / "zoo"
CASES = [
    ("zoo:induction-2l", "induction.circ", "induction", "zero", "induction"),
    ("zoo:induction-2l", "induction.circ", "induction", "resample", "induction_resample"),
    ("zoo:mlp-planted", "mlp_planted.circ", "mod_sum", "zero", "planted"),
    ("zoo:mlp-planted", "mlp_planted.circ", "mod_sum", "resample", "planted_resample"),
]


@pytest.mark.parametrize("model, file, generator, ablation, truth", CASES,
                         ids=[f"{c[0]}-{c[3]}" for c in CASES])
def test_acdc_recovers_the_planted_circuit(model, file, generator, ablation, truth) -> None:
    loaded = load_model(model)
    evaluator = Evaluator(Session(loaded, task_data(TaskSpec("t", (generator, {"n": 48})), loaded), ablation))
    full = CircuitGraph.from_edges(all_edges(loaded.shape))
    batched = acdc(evaluator, full, tau=0.02)
    expected = cl.load(STDLIB / file).circuits[truth]
    assert batched.circuit.edges == expected.edges
    sequential = acdc_sequential(evaluator, full, tau=0.02)
    assert sequential.circuit.edges == batched.circuit.edges
    assert batched.passes < sequential.passes == len(full.edges) + 1

"""The engines against the invariants of edge patching (docs/evaluation.md) and against each other.

- all edges reproduce the clean model; no edges under resample reproduce the corrupted one;
- a node-level circuit equals activation patching of its complement's outputs;
- K variants batched equal K single runs;
- the fast engine equals the reference engine (the literal masked formula) on random
  circuits, with positions, under every ablation, on every supported architecture.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from circuitlang.core.graph import EMBED, CircuitGraph, Edge
from circuitlang.core.positions import Position
from circuitlang.core.shapes import all_edges
from circuitlang.eval.engines.fast import FastEngine
from circuitlang.eval.engines.reference import run_reference
from circuitlang.eval.senders import SenderCache, cache_senders
from circuitlang.eval.session import knockout_logits
from tests.conftest import examples
from tests.engine_models import ARCHITECTURES, full_circuit, norm_rounding, tiny_model

B, P = 3, 7


@pytest.fixture(scope="module", params=sorted(ARCHITECTURES))
def setup(request):
    model, shape = tiny_model(request.param)
    generator = torch.Generator().manual_seed(1)
    clean = torch.randint(0, 23, (B, P), generator=generator)
    corrupt = torch.randint(0, 23, (B, P), generator=generator)
    named = {"END": torch.tensor([P - 1, P - 2, P - 1]), "S1": torch.tensor([1, 2, 3])}
    return model, shape, clean, corrupt, named


def ablations(model, clean, corrupt) -> dict[str, SenderCache]:
    resample = cache_senders(model, corrupt)
    return {"resample": resample,
            "mean": cache_senders(model, clean).map(lambda t: t.mean(0, keepdim=True)),
            "zero": resample.map(lambda t: torch.zeros_like(t[:1, :1]))}


def model_logits(model, tokens, named):
    with torch.no_grad():
        return model.logits(tokens)[torch.arange(tokens.shape[0]), named["END"]]


def test_all_edges_reproduce_the_clean_model(setup) -> None:
    model, shape, clean, corrupt, named = setup
    ablated = cache_senders(model, corrupt).outputs
    expected = model_logits(model, clean, named)
    full = full_circuit(shape)
    for logits in (FastEngine(model).run(clean, ablated, [full], named)[0],
                   run_reference(model, clean, ablated, [full], named)[0]):
        torch.testing.assert_close(logits, expected, atol=1e-9, rtol=1e-9)


def test_all_edges_reproduce_the_clean_model_in_float32() -> None:
    model, shape = tiny_model("ln-mlp", dtype=torch.float32)
    clean, corrupt = torch.randint(0, 23, (B, P)), torch.randint(0, 23, (B, P))
    named = {"END": torch.full((B,), P - 1)}
    logits = FastEngine(model).run(clean, cache_senders(model, corrupt).outputs, [full_circuit(shape)], named)
    torch.testing.assert_close(logits[0], model_logits(model, clean, named), atol=1e-5, rtol=0)


def test_no_edges_under_resample_reproduce_the_corrupted_model(setup) -> None:
    model, shape, clean, corrupt, named = setup
    ablated = cache_senders(model, corrupt).outputs
    expected = model_logits(model, corrupt, named)
    empty = CircuitGraph.from_edges([])
    for logits in (FastEngine(model).run(clean, ablated, [empty], named)[0],
                   run_reference(model, clean, ablated, [empty], named)[0]):
        torch.testing.assert_close(logits, expected, atol=1e-9, rtol=1e-9)


@pytest.mark.parametrize("ablation", ["resample", "mean", "zero"])
def test_node_level_circuit_equals_patching_the_complement(setup, ablation: str) -> None:
    model, shape, clean, corrupt, named = setup
    cache = ablations(model, clean, corrupt)[ablation]
    inner = [n for n in shape.all_nodes() if n.kind in ("head", "mlp")]
    kept = frozenset(inner[::2])
    node_level = CircuitGraph.from_edges(
        [e for e in all_edges(shape) if e.sender in kept | {EMBED} and e.receiver in kept | {e.receiver}
         and (e.receiver.kind == "logits" or e.receiver in kept)])
    logits = FastEngine(model).run(clean, cache.outputs, [node_level], named)[0]
    patched = knockout_logits(model, clean, cache, frozenset(inner) - kept, named)
    torch.testing.assert_close(logits, patched, atol=1e-9, rtol=1e-9)


def _random_circuit(edges: list[Edge], draw_bits: list[bool], positions: list[Position | None]) -> CircuitGraph:
    chosen = [e for e, keep in zip(edges, draw_bits) if keep]
    positional = [Edge(e.sender, e.receiver, e.channel, p) for e, p in zip(edges, positions) if p is not None]
    return CircuitGraph.from_edges(chosen + positional)


@examples(25, deadline_ms=None)
@given(data=st.data())
def test_fast_engine_equals_reference(setup, data) -> None:
    model, shape, clean, corrupt, named = setup
    edges = all_edges(shape)
    bits = data.draw(st.lists(st.booleans(), min_size=len(edges), max_size=len(edges)))
    spots = data.draw(st.lists(st.sampled_from([None, None, None, *map(Position.parse, ["END", "S1", "S1+1", "0", "-2"])]),
                               min_size=len(edges), max_size=len(edges)))
    circuit = _random_circuit(edges, bits, spots)
    removed = data.draw(st.lists(st.sampled_from(circuit.sorted_edges() or [Edge(EMBED, EMBED)]), max_size=4))
    variants = [circuit] + [circuit - CircuitGraph.from_edges([e]) for e in removed]
    ablation = data.draw(st.sampled_from(["resample", "mean", "zero"]))
    ablated = ablations(model, clean, corrupt)[ablation].outputs
    fast = FastEngine(model).run(clean, ablated, variants, named)
    reference = run_reference(model, clean, ablated, variants, named)
    slack = 10 * norm_rounding(model)  # float32 norms inside a float64 model (engine_models.norm_rounding)
    torch.testing.assert_close(fast, reference, atol=max(1e-8, slack), rtol=max(1e-8, slack))


def test_batched_variants_equal_single_runs(setup) -> None:
    model, shape, clean, corrupt, named = setup
    ablated = cache_senders(model, corrupt).outputs
    edges = all_edges(shape)
    circuit = CircuitGraph.from_edges(edges[::3])
    variants = [circuit] + [circuit - CircuitGraph.from_edges([e]) for e in circuit.sorted_edges()[:8]]
    engine = FastEngine(model)
    batched = engine.run(clean, ablated, variants, named)
    singles = torch.stack([engine.run(clean, ablated, [v], named)[0] for v in variants])
    torch.testing.assert_close(batched, singles, atol=1e-10, rtol=1e-10)
    reference = run_reference(model, clean, ablated, variants, named)
    reference_singles = torch.stack([run_reference(model, clean, ablated, [v], named)[0] for v in variants])
    torch.testing.assert_close(reference, reference_singles, atol=1e-10, rtol=1e-10)


@pytest.mark.slow
def test_results_are_the_same_in_every_process() -> None:
    """The fast engine sums each receiver's terms in a fixed order: two processes give
    bit-identical logits (set order, which decided it before, changes between processes)."""
    import subprocess
    import sys

    from tests.conftest import ROOT

    probe = """
import hashlib, torch
torch.set_num_threads(1)
import circuitlang as cl
from circuitlang.eval.engines.fast import FastEngine
from circuitlang.eval.loading import load_model
from circuitlang.eval.senders import cache_senders
from circuitlang.eval.tasks.registry import task_data
from circuitlang.lang.check import TaskSpec
model = load_model("zoo:induction-trained")
data = task_data(TaskSpec("t", ("induction", {"n": 32})), model)
circuit = cl.load("stdlib/zoo/induction_trained.circ").circuits["found"]
logits = FastEngine(model).run(data.clean, cache_senders(model, data.corrupt).outputs, [circuit], dict(data.positions))
print(hashlib.sha256(logits.numpy().tobytes()).hexdigest())
"""
    runs = [subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT) for _ in range(2)]
    assert all(r.returncode == 0 for r in runs), runs[0].stderr[-500:]
    assert runs[0].stdout == runs[1].stdout

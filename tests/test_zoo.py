"""The zoo: deterministic models, valid task data, and ground truth for planted circuits.

The ground-truth checks use tests/reference_patching.py, a self-contained reference
implementation of edge patching with TransformerLens hooks and nothing from the
evaluator (docs/evaluation.md, "Semantics").
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

tl = pytest.importorskip("transformer_lens")

import circuitlang.eval.zoo as zoo  # noqa: E402
from circuitlang.core.models import KNOWN_SHAPES  # noqa: E402
from circuitlang.eval.backends.base import ModelLoadError  # noqa: E402
from circuitlang.eval.backends.installed import transformer_lens_major  # noqa: E402
from circuitlang.eval.loading import zoo_model  # noqa: E402
from circuitlang.eval.tasks.base import TaskData  # noqa: E402
from circuitlang.eval.tasks.registry import GENERATORS  # noqa: E402
from tests.reference_patching import (  # noqa: E402
    ReferencePatcher,
    all_edges,
    circuit_nodes,
    edge_ends,
    logit_diff,
    wired_distractors,
)

# The ground-truth checks drive HookedTransformer hooks that TransformerLens 4's native
# bridge lacks (per-head attention results, split q/k/v inputs): they run under 3.x, in
# the second environment `make test` runs the suite in. Under 4.x the zoo models are
# held to the same semantics by the engines' invariants (tests/test_engines.py runs them
# on models built the way the zoo's are).
needs_tl3 = pytest.mark.skipif(
    transformer_lens_major() != 3,
    reason="the reference patcher needs HookedTransformer (TransformerLens 3.x); make test runs it there")

ROOT = Path(__file__).resolve().parent.parent
N = 48  # examples per ground-truth check: small, the models are exact

INDUCTION = {
    "embed -> L0.H2.q", "embed -> L0.H2.k", "embed -> L0.H2.v", "L0.H2 -> L1.H1.k",
    "embed -> L1.H1.q", "embed -> L1.H1.v", "L1.H1 -> logits",
}
INDUCTION_POSITION_ONLY = {"embed -> L0.H2.q", "embed -> L0.H2.k"}
MLP_PLANTED = {
    "embed -> L0.H0.q", "embed -> L0.H0.k", "embed -> L0.H0.v", "L0.H0 -> L0.MLP",
    "embed -> L0.MLP", "L0.MLP -> logits",
}
MLP_POSITION_ONLY = {"embed -> L0.H0.q", "embed -> L0.H0.k"}


# ---- fixtures ------------------------------------------------------------------------

@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """These models are tiny: one thread is much faster than two contending ones."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@lru_cache(maxsize=None)
def backend(name: str):
    return zoo_model(name)


def model(name: str):
    """The zoo model's HookedTransformer, for the reference patcher."""
    return backend(name).model


def task(name: str, n: int = N, seed: int = 0) -> TaskData:
    entry = zoo.ZOO[name]
    return GENERATORS[entry.task](backend(name), n=n, seed=seed, **entry.task_kwargs)


SMALL = ["induction-2l", "mlp-planted", "induction-trained"]


# ---- building ------------------------------------------------------------------------

@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n == "gpt2-random" else n
                                  for n in zoo.names()])
def test_builds_deterministically_with_known_shape(name):
    a, b = zoo_model(name).model, zoo_model(f"zoo:{name}").model
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    shape = KNOWN_SHAPES[f"zoo:{name}"]
    cfg = a.cfg
    assert (shape.n_layers, shape.n_heads, shape.d_model, shape.attn_only) == \
        (cfg.n_layers, cfg.n_heads, cfg.d_model, cfg.attn_only)
    assert not shape.parallel_attn_mlp and not cfg.parallel_attn_mlp


def test_dtype_is_honoured():
    m = zoo_model("mlp-planted", dtype=torch.float64).model
    assert m.W_E.dtype == torch.float64 and m.cfg.dtype == torch.float64
    data = task("mlp-planted", n=8)
    with torch.no_grad():
        assert torch.allclose(m(data.clean).float(), model("mlp-planted")(data.clean), atol=1e-4)


def test_unknown_name():
    with pytest.raises(ModelLoadError, match="no zoo model") as info:
        zoo_model("nope")
    assert "induction-2l" in (info.value.help or "")


def test_entries_name_registered_generators():
    for entry in zoo.ZOO.values():
        assert entry.task in GENERATORS and entry.description


# ---- generators ----------------------------------------------------------------------

@pytest.mark.parametrize("name", zoo.names())
def test_generators_are_deterministic_and_valid(name):
    entry = zoo.ZOO[name]
    # generators read only d_vocab and n_ctx: spare gpt2-random a third build
    config = zoo.gpt2_random.CONFIG
    m = backend(name) if name != "gpt2-random" else SimpleNamespace(d_vocab=config["d_vocab"], n_ctx=config["n_ctx"])
    first, again, other = (GENERATORS[entry.task](m, n=32, seed=s, **entry.task_kwargs) for s in (0, 0, 1))
    for x, y in [(first.clean, again.clean), (first.corrupt, again.corrupt), (first.answer, again.answer),
                 (first.wrong, again.wrong)]:
        assert torch.equal(x, y)
    assert not torch.equal(first.clean, other.clean)
    assert first.corrupt.shape == first.clean.shape
    assert first.clean.dtype == torch.int64
    vocab = m.d_vocab
    for t in (first.clean, first.corrupt, first.answer, first.wrong):
        assert 0 <= int(t.min()) and int(t.max()) < vocab
    assert bool((first.answer != first.wrong).all())
    p = first.clean.shape[1]
    assert p <= m.n_ctx
    for index in first.positions.values():
        assert 0 <= int(index.min()) and int(index.max()) < p


@pytest.mark.parametrize("seq_len", [4, 9, 16, 31])
def test_induction_task_layout(seq_len):
    data = GENERATORS["induction"](backend("induction-2l"), n=16, seq_len=seq_len)
    assert data.clean.shape == (16, seq_len)
    rows = torch.arange(16)
    assert bool((data.clean[:, 0] == 0).all())
    first, nxt, end = data.positions["FIRST"], data.positions["NEXT"], data.positions["END"]
    assert bool((data.clean[rows, first] == data.clean[rows, end]).all())
    assert bool((data.answer == data.clean[rows, nxt]).all())
    assert bool((data.wrong == data.corrupt[rows, nxt]).all())
    # the current token occurs exactly twice: at FIRST and at END
    assert bool(((data.clean == data.clean[rows, end][:, None]).sum(1) == 2).all())


def test_mod_sum_task_layout():
    data = task("mlp-planted", n=16)
    a, b = data.clean[:, 1] - 1, data.clean[:, -1] - 1
    assert bool((data.answer == 1 + (a + b) % 5).all())
    assert bool((data.positions["A"] == 1).all())


# ---- the models do their task ----------------------------------------------------------

@pytest.mark.parametrize("name", SMALL)
def test_clean_accuracy_and_logit_diff(name):
    data = task(name, n=128, seed=3)
    with torch.no_grad():
        logits = model(name)(data.clean)
    at_end = logits[torch.arange(len(data)), data.readout]
    assert float((at_end.argmax(-1) == data.answer).float().mean()) >= 0.97
    assert logit_diff(logits, data) > 3.0


# ---- the reference implementation itself -------------------------------------------

@needs_tl3
@pytest.mark.parametrize("name", ["induction-2l", "mlp-planted"])
def test_reference_all_edges_is_the_model_and_none_is_the_corruption(name):
    m, data = model(name), task(name, n=8)
    with torch.no_grad():
        clean, corrupt = m(data.clean), m(data.corrupt)
    every = all_edges(m.cfg)
    resample, zero = ReferencePatcher(m, data, "resample"), ReferencePatcher(m, data, "zero")
    assert torch.allclose(resample.logits(every), clean, atol=1e-4)
    assert torch.allclose(zero.logits(every), clean, atol=1e-4)
    assert torch.allclose(resample.logits(set()), corrupt, atol=1e-4)
    assert zero.logits(set()).abs().max() < 1e-5  # no biases: nothing reaches the logits


# ---- ground truth of the planted circuits ----------------------------------------------

@needs_tl3
@pytest.mark.parametrize("name,planted,position_only", [
    ("induction-2l", INDUCTION, INDUCTION_POSITION_ONLY),
    ("mlp-planted", MLP_PLANTED, MLP_POSITION_ONLY),
])
def test_planted_circuit_is_the_ground_truth(name, planted, position_only):
    m = model(name)
    data = task(name)
    every = all_edges(m.cfg)
    inside = circuit_nodes(planted)
    # edges between the circuit's nodes that the circuit leaves out (e.g. embed -> L1.H1.k)
    inner = sorted(e for e in every - planted if edge_ends(e)[0] in inside and edge_ends(e)[1] in inside)
    # each distractor node wired in: its inputs from the circuit and its outputs into it
    wired = wired_distractors(m.cfg, planted)
    assert inner and wired
    for ablation in ("zero", "resample"):
        f = ReferencePatcher(m, data, ablation)
        assert f.full - f.empty > 3.0
        whole = f(planted)
        assert whole >= 0.95, (ablation, whole)
        for edge in sorted(planted):
            loss = whole - f(planted - {edge})
            if ablation == "resample" and edge in position_only:
                assert loss < 0.05, (ablation, edge, loss)
            else:
                assert loss >= 0.25, (ablation, edge, loss)
        for edge in inner:
            assert abs(f(planted | {edge}) - whole) < 0.01, (ablation, edge)
        for node, edges in wired.items():
            assert abs(f(planted | edges) - whole) < 0.01, (ablation, node)
    # under resample the position-only edges can go: the circuit is relative to its ablation
    assert ReferencePatcher(m, data, "resample")(planted - position_only) >= 0.95


def _circ_edges(path: str, circuit: str) -> set[str]:
    from circuitlang.lang.pipeline import compile_file

    result = compile_file(ROOT / path)
    assert result.ok, [str(d) for d in result.diagnostics]
    return {str(e) for e in result.circuit(circuit).edges}


def test_stdlib_files_state_the_ground_truth():
    assert _circ_edges("stdlib/zoo/induction.circ", "induction") == INDUCTION
    assert _circ_edges("stdlib/zoo/induction.circ", "from_motif") == INDUCTION
    assert _circ_edges("stdlib/zoo/mlp_planted.circ", "planted") == MLP_PLANTED
    assert _circ_edges("stdlib/zoo/mlp_planted.circ", "planted_resample") == MLP_PLANTED - MLP_POSITION_ONLY


@needs_tl3
def test_trained_circuit_as_recorded():
    """stdlib/zoo/induction_trained.circ records what scripts/find_zoo_circuit.py found."""
    m, data = model("induction-trained"), task("induction-trained", n=64, seed=5)
    found = _circ_edges("stdlib/zoo/induction_trained.circ", "found")
    heads = _circ_edges("stdlib/zoo/induction_trained.circ", "heads")
    assert len(found) == 37 and found < heads < all_edges(m.cfg)
    f = ReferencePatcher(m, data, "resample")
    assert f.full - f.empty > 10.0
    assert f(found) >= 0.85
    assert f(heads) >= 0.95
    # the induction heads are necessary: the model without them keeps little
    every = all_edges(m.cfg)
    without = {e for e in every if not any(h in e for h in ("L1.H1", "L1.H2", "L1.H3"))}
    assert f(without) < 0.2


def report(name: str, planted: set[str], n: int = 256) -> None:
    """Print the ground-truth numbers of a planted circuit (`python -m tests.test_zoo`)."""
    m, data = model(name), task(name, n=n)
    print(f"zoo:{name}, {len(planted)} planted edges, n = {n}, metric: logit diff at END")
    for ablation in ("zero", "resample"):
        f = ReferencePatcher(m, data, ablation)
        whole = f(planted)
        print(f"  {ablation}: m(model) = {f.full:.3f}, m(empty) = {f.empty:.3f}, f(planted) = {whole:.4f}")
        for edge in sorted(planted):
            print(f"    without {edge:<22} loses {whole - f(planted - {edge}):.4f}")
        for d, edges in wired_distractors(m.cfg, planted).items():
            print(f"    with distractor {d:<8} wired in ({len(edges)} edges): f changes by "
                  f"{f(planted | edges) - whole:+.4f}")


if __name__ == "__main__":
    torch.set_num_threads(1)
    report("induction-2l", INDUCTION)
    report("mlp-planted", MLP_PLANTED)

"""Every engine on every architecture MIB uses, exactly, on Hugging Face directories.

For each family in tests/hf_models.py (GPT-2; GPT-NeoX with parallel attention and
partial rotary; Llama and Qwen2 with RMSNorm, rotary, gated MLPs and grouped-query
attention; Gemma 2 and 3 with post-norms, soft-capping and local attention) a small
random model is saved with `save_pretrained` and loaded the way a user's directory is
(`model "dir"` -> `load_model`), under whichever TransformerLens is installed. On each:
the backend's forward is the Hugging Face model's; all edges reproduce the clean logits
and no edges under resample the corrupted ones; a node-level circuit equals activation
patching of its complement; the fast engine equals the reference engine on random
circuits; EAP's head-space gradients equal the split-input route. What a backend cannot
load is refused with a named reason (TransformerLens 3.x and Gemma), never approximated.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from circuitlang.core.graph import EMBED, CircuitGraph
from circuitlang.core.shapes import all_edges
from circuitlang.eval.backends.base import ModelLoadError
from circuitlang.eval.backends.installed import transformer_lens_major
from circuitlang.eval.engines.fast import FastEngine
from circuitlang.eval.engines.reference import run_reference
from circuitlang.eval.loading import load_model
from circuitlang.eval.senders import cache_senders
from circuitlang.eval.session import knockout_logits
from tests import hf_models
from tests.conftest import examples

B, P = 3, 9
# The models are loaded in float64, but Hugging Face computes attention softmax (eager
# attention: softmax(dtype=float32)) and some norms and rotary tables in float32 whatever
# the dtype, so two correct computations of one quantity differ by float32 rounding
# (measured up to ~7e-7 on these models); a mistake shows at 1e-2 or more.
TOL = dict(atol=1e-5, rtol=1e-5)
TL3_REFUSES = {"gemma2", "gemma3"} if transformer_lens_major() == 3 else set()
LOADABLE = sorted(set(hf_models.FAMILIES) - TL3_REFUSES)


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hf")  # neutral names: TL 3.x routes paths containing "llama"/"gemma"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {family: hf_models.save_model(family, root / f"m{i}") for i, family in enumerate(hf_models.FAMILIES)}


@pytest.fixture(scope="module", params=LOADABLE)
def setup(request, saved):
    family = request.param
    path = saved[family]
    backend = load_model(path.name, quoted=True, base_dir=path.parent, dtype=torch.float64)
    generator = torch.Generator().manual_seed(1)
    vocab = backend.d_vocab
    clean = torch.randint(4, vocab, (B, P), generator=generator)
    corrupt = torch.randint(4, vocab, (B, P), generator=generator)
    named = {"END": torch.tensor([P - 1, P - 2, P - 1]), "S1": torch.tensor([1, 2, 3])}
    return family, backend, clean, corrupt, named


def _end(logits: torch.Tensor, named) -> torch.Tensor:
    return logits[torch.arange(logits.shape[0]), named["END"]]


def test_the_backend_runs_the_hugging_face_model(setup, saved) -> None:
    family, backend, clean, _, _ = setup
    hf, _ = hf_models.load_model(saved[family])
    with torch.no_grad():
        expected = hf.double()(clean).logits
        got = backend.logits(clean)
    torch.testing.assert_close(got, expected, **TOL)


def test_the_fast_engine_takes_every_architecture(setup) -> None:
    _, backend, _, _, _ = setup
    assert backend.unsupported() == []
    FastEngine(backend)


def test_all_edges_reproduce_the_clean_model(setup) -> None:
    _, backend, clean, corrupt, named = setup
    ablated = cache_senders(backend, corrupt).outputs
    expected = _end(backend.logits(clean), named)
    full = CircuitGraph.from_edges(all_edges(backend.shape))
    for logits in (FastEngine(backend).run(clean, ablated, [full], named)[0],
                   run_reference(backend, clean, ablated, [full], named)[0]):
        torch.testing.assert_close(logits, expected, **TOL)


def test_no_edges_under_resample_reproduce_the_corrupted_model(setup) -> None:
    _, backend, clean, corrupt, named = setup
    ablated = cache_senders(backend, corrupt).outputs
    expected = _end(backend.logits(corrupt), named)
    empty = CircuitGraph.from_edges([])
    for logits in (FastEngine(backend).run(clean, ablated, [empty], named)[0],
                   run_reference(backend, clean, ablated, [empty], named)[0]):
        torch.testing.assert_close(logits, expected, **TOL)


def test_node_level_circuit_equals_patching_the_complement(setup) -> None:
    _, backend, clean, corrupt, named = setup
    shape = backend.shape
    cache = cache_senders(backend, corrupt)
    inner = [n for n in shape.all_nodes() if n.kind in ("head", "mlp")]
    kept = frozenset(inner[::2])
    node_level = CircuitGraph.from_edges(
        [e for e in all_edges(shape) if e.sender in kept | {EMBED}
         and (e.receiver.kind == "logits" or e.receiver in kept or _shares_group(e, kept, shape))])
    logits = FastEngine(backend).run(clean, cache.outputs, [node_level], named)[0]
    patched = knockout_logits(backend, clean, cache, frozenset(inner) - kept, named)
    torch.testing.assert_close(logits, patched, **TOL)


def _shares_group(edge, kept, shape) -> bool:
    """An edge into a key/value group's shared input counts when any head of the group is kept."""
    if not edge.receiver.is_head or edge.channel == "q":
        return False
    group = range(edge.receiver.head, edge.receiver.head + shape.kv_group)
    return any(type(edge.receiver).attn(edge.receiver.layer, h) in kept for h in group)


@examples(6, deadline_ms=None)
@given(data=st.data())
def test_fast_engine_equals_reference(setup, data) -> None:
    _, backend, clean, corrupt, named = setup
    edges = all_edges(backend.shape)
    bits = data.draw(st.lists(st.booleans(), min_size=len(edges), max_size=len(edges)))
    circuit = CircuitGraph.from_edges([e for e, keep in zip(edges, bits) if keep])
    ablated = cache_senders(backend, corrupt).outputs
    fast = FastEngine(backend).run(clean, ablated, [circuit], named)
    reference = run_reference(backend, clean, ablated, [circuit], named)
    torch.testing.assert_close(fast, reference, **TOL)


def test_answer_columns_equal_the_full_vocabulary(setup) -> None:
    """Logit difference unembeds only the answer's and the wrong token's columns
    (`Backend.unembed_columns`): the same logits as the whole vocabulary's, soft-capping
    (Gemma) included, for several circuits at once."""
    _, backend, clean, corrupt, named = setup
    edges = all_edges(backend.shape)
    circuits = [CircuitGraph.from_edges(edges[i::3]) for i in range(3)] + [CircuitGraph.from_edges(edges)]
    ablated = cache_senders(backend, corrupt).outputs
    columns = torch.stack([clean[:, 1], clean[:, 2]], dim=1)
    engine = FastEngine(backend)
    full = engine.run(clean, ablated, circuits, named)
    picked = engine.run(clean, ablated, circuits, named, columns)
    assert picked.shape == (len(circuits), clean.shape[0], 2)
    torch.testing.assert_close(picked, full.gather(-1, columns.expand(len(circuits), -1, -1)), **TOL)


def test_head_space_gradients_equal_the_split_route(setup) -> None:
    from circuitlang.discovery.receiver_grads import receiver_grads
    from circuitlang.eval.session import Session
    from circuitlang.eval.tasks.base import TaskData

    _, backend, clean, corrupt, _ = setup
    generator = torch.Generator().manual_seed(2)
    answers = torch.randint(4, backend.d_vocab, (2, B), generator=generator)
    session = Session(backend, TaskData(clean, corrupt, answers[0], answers[1]), "resample", batch_size=B)
    head, _ = receiver_grads(session, 0, lambda x: 0.7 * x, split=False)
    split, _ = receiver_grads(session, 0, lambda x: 0.7 * x, split=True)
    assert head.keys() == split.keys()
    for key in head:
        torch.testing.assert_close(head[key], split[key], **TOL, msg=str(key))


@pytest.mark.skipif(not TL3_REFUSES, reason="only TransformerLens 3.x refuses a family")
@pytest.mark.parametrize("family", sorted(TL3_REFUSES))
def test_what_a_backend_cannot_load_is_refused_by_name(saved, family) -> None:
    path = saved[family]
    with pytest.raises(ModelLoadError, match="cannot load the Gemma model"):
        load_model(path.name, quoted=True, base_dir=path.parent)

"""Gradients at receiver inputs: the head-space route (gradients at q/k/v carried back
by hand through W and the normalisation) equals TransformerLens's split-input route,
where autograd differentiates every head's own copy of its input."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("transformer_lens")

from circuitlang.discovery.methods.eap import eap_scores  # noqa: E402
from circuitlang.discovery.receiver_grads import QKV, norm_vjp, receiver_grads  # noqa: E402
from circuitlang.eval.evaluator import Evaluator
from circuitlang.eval.session import Session
from circuitlang.eval.tasks.registry import task_data  # noqa: E402
from circuitlang.lang.check import TaskSpec  # noqa: E402
from tests.engine_models import ARCHITECTURES, norm_rounding, tiny_model  # noqa: E402

ARCHS = {**ARCHITECTURES, "rmspre": dict(normalization_type="RMSPre", attn_only=False)}


def _normalise(kind: str, x: torch.Tensor, eps: float) -> torch.Tensor:
    """The normalisation before its learned scale, written independently of norm_vjp."""
    if kind in ("LN", "LNPre"):
        x = x - x.mean(-1, keepdim=True)
    return x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + eps)


@pytest.mark.parametrize("kind", ["LN", "LNPre", "RMS", "RMSPre", None])
def test_norm_vjp_equals_autograd(kind: str | None) -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn((2, 5, 16), generator=gen, dtype=torch.float64) * 3 + 1
    grad = torch.randn((4, 2, 5, 16), generator=gen, dtype=torch.float64)
    expected = []
    for head in range(grad.shape[0]):
        xi = x.clone().requires_grad_(True)
        out = xi if kind is None else _normalise(kind, xi, 1e-5)
        expected.append(torch.autograd.grad((out * grad[head]).sum(), xi)[0])
    torch.testing.assert_close(norm_vjp(kind, x, grad, 1e-5), torch.stack(expected), rtol=1e-12, atol=1e-12)


@pytest.fixture(scope="module", params=sorted(ARCHS))
def session(request) -> Session:
    backend, _ = tiny_model(request.param, config=ARCHS[request.param])
    data = task_data(TaskSpec("t", ("random_tokens", {"n": 6, "seq_len": 8, "seed": 3})), backend)
    return Session(backend, data, "resample", batch_size=3)


def test_head_space_equals_split_inputs(session: Session) -> None:
    model = session.backend.model
    flags = (model.cfg.use_split_qkv_input, model.cfg.use_hook_mlp_in)
    slack = 10 * norm_rounding(session.backend)  # float32 norms inside a float64 model
    for index in range(len(session.batches)):
        head, out_head = receiver_grads(session, index, lambda x: 0.7 * x, keep_senders=True, split=False)
        split, out_split = receiver_grads(session, index, lambda x: 0.7 * x, keep_senders=True, split=True)
        assert head.keys() == split.keys()
        for key in head:
            assert head[key].shape == split[key].shape, key
            torch.testing.assert_close(head[key], split[key], rtol=max(1e-9, slack), atol=max(1e-12, slack),
                                       msg=str(key))
        assert out_head.outputs.keys() == out_split.outputs.keys()
        for node in out_head.outputs:
            torch.testing.assert_close(out_head.outputs[node], out_split.outputs[node], rtol=1e-9, atol=1e-12)
    assert (model.cfg.use_split_qkv_input, model.cfg.use_hook_mlp_in) == flags


def test_some_gradient_is_not_zero(session: Session) -> None:
    """Guards the comparison above against two routes that agree on nothing."""
    grads, _ = receiver_grads(session, 0, lambda x: x)
    assert {kind for kind, _ in grads} >= {QKV, "logits"}
    assert all(g.abs().max() > 0 for g in grads.values())


def test_eap_scores_do_not_depend_on_the_route(session: Session, monkeypatch) -> None:
    evaluator = Evaluator(session)
    head = eap_scores(session, evaluator=evaluator)
    monkeypatch.setattr("circuitlang.discovery.receiver_grads.head_space_supported", lambda backend: False)
    split = eap_scores(session, evaluator=evaluator)
    assert head.keys() == split.keys()
    slack = 10 * norm_rounding(session.backend)  # float32 norms inside a float64 model
    for edge in head:
        assert head[edge] == pytest.approx(split[edge], rel=max(1e-8, slack), abs=max(1e-12, slack)), str(edge)



def test_scoring_plan_equals_edge_by_edge_products(session: Session) -> None:
    """The vectorised scoring step (`scoring_plan` + `accumulate`) against the definition,
    edge by edge: sum over examples, positions and d_model of (out_S - abl_S) . grad_R.
    A shuffled subset (its own plan, not the cached all-edges one) with edges at one
    position mixed in must give the same numbers as the all-edges scores."""
    import random

    from circuitlang.core.graph import Position
    from circuitlang.core.shapes import all_edges
    from circuitlang.discovery.edge_scores import _receiver_key, _row, accumulate, scoring_plan

    shape = session.backend.shape
    edges = list(all_edges(shape))
    random.Random(0).shuffle(edges)
    subset = edges[:40] + [e._replace(position=Position(2)) for e in edges[40:45]]
    evaluator = Evaluator(session)
    whole, part = eap_scores(session, evaluator=evaluator), eap_scores(session, subset, evaluator=evaluator)
    for e in subset[:40]:
        assert part[e] == whole[e], str(e)
    totals = torch.zeros(len(subset), dtype=torch.float64)
    expected = torch.zeros(len(subset), dtype=torch.float64)
    for index, (_, _, ablated, named) in enumerate(session.batches):
        grads, clean = receiver_grads(session, index, lambda x: x, keep_senders=True)
        accumulate(totals, session, scoring_plan(shape, subset), grads, clean, ablated, named)
        for i, e in enumerate(subset):
            diff = clean.outputs[e.sender] - ablated.outputs[e.sender]
            g = grads[_receiver_key(shape, e)][_row(shape, e)]
            if e.position is not None:
                g = g[:, 2:3]
                diff = diff[:, 2:3]
            expected[i] += (diff.to(g.dtype) * g).sum().item()
    assert expected.abs().max() > 0
    torch.testing.assert_close(totals, expected, rtol=1e-9, atol=1e-12)

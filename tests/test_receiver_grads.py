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


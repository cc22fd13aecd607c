"""Logit difference reads two logits per example, so the fast engine unembeds only the
answer's and the wrong token's columns (`Metric.answer_columns_only`,
`Backend.unembed_columns`): the session's metric must not change, and the whole
vocabulary must not be unembedded for it. tests/test_hf_architectures.py checks the
engine on every architecture, soft-capping included."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("transformer_lens")

import circuitlang as cl  # noqa: E402
from circuitlang.eval.loading import load_model  # noqa: E402
from circuitlang.eval.session import Session  # noqa: E402
from circuitlang.eval.tasks.registry import task_data  # noqa: E402


@pytest.mark.parametrize("model,file,task_name", [("zoo:induction-2l", "stdlib/zoo/induction.circ", "repeat_tokens"),
                                                  ("zoo:mlp-planted", "stdlib/zoo/mlp_planted.circ", "mod_sum_zero")])
def test_logit_difference_from_two_columns_is_the_full_vocabularys(model, file, task_name, monkeypatch) -> None:
    backend = load_model(model)
    compiled = cl.load(file)
    task = compiled.tasks[task_name]
    session = Session(backend, task_data(task, backend, 0).select(slice(0, 64)), task.ablation, "logit_diff")
    circuits = list(compiled.circuits.values())
    full = Session(backend, session.data, task.ablation, "logit_diff")
    monkeypatch.setattr(full, "_answer_columns", lambda part: None)
    expected = full.metric_of(circuits)

    def refuse(resid):
        raise AssertionError("the whole vocabulary was unembedded for logit difference")

    monkeypatch.setattr(backend, "unembed", refuse)
    torch.testing.assert_close(session.metric_of(circuits), expected, atol=1e-5, rtol=1e-6)


def test_metrics_that_read_the_vocabulary_still_get_it() -> None:
    backend = load_model("zoo:induction-2l")
    task = cl.load("stdlib/zoo/induction.circ").tasks["repeat_tokens"]
    data = task_data(task, backend, 0).select(slice(0, 8))
    part = data.select(slice(0, 8))
    assert Session(backend, data, "resample", "logit_diff")._answer_columns(part).shape == (8, 2)
    for metric in ("logprob", "prob", "kl", "accuracy"):
        assert Session(backend, data, "resample", metric)._answer_columns(part) is None

"""`prob`: p(answer)."""

from __future__ import annotations

from .base import Metric, answer_index


def _compute(logits, answer, wrong, reference):
    return logits.log_softmax(dim=-1).gather(-1, answer_index(logits, answer)).squeeze(-1).exp()


ENTRY = Metric("prob", 2, "p(answer)", "in [0, 1]", _compute)

"""`logprob`: log p(answer)."""

from __future__ import annotations

from .base import Metric, answer_index


def _compute(logits, answer, wrong, reference):
    return logits.log_softmax(dim=-1).gather(-1, answer_index(logits, answer)).squeeze(-1)


ENTRY = Metric("logprob", 1, "log p(answer)", "≤ 0", _compute)

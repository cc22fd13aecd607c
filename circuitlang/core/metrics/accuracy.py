"""`accuracy`: 1 where the top logit is the answer, else 0 (no gradient)."""

from __future__ import annotations

from .base import Metric


def _compute(logits, answer, wrong, reference):
    return (logits.argmax(dim=-1) == answer.view(1, -1)).to(logits.dtype)


ENTRY = Metric("accuracy", 4, "1 if argmax = answer, else 0", "share of examples right", _compute,
               differentiable=False, why_not_differentiable="accuracy has no gradient")

"""`logit_diff`: logit(answer) - logit(wrong), the default.

>>> import torch
>>> logits = torch.tensor([[[2.0, 0.0, 1.0]]])
>>> ENTRY(logits, torch.tensor([0]), torch.tensor([2])).tolist()
[[1.0]]
"""

from __future__ import annotations

from .base import Metric, answer_index


def _compute(logits, answer, wrong, reference):
    return (logits.gather(-1, answer_index(logits, answer)) - logits.gather(-1, answer_index(logits, wrong))).squeeze(-1)


ENTRY = Metric("logit_diff", 0, "logit(answer) − logit(wrong)", "task-dependent", _compute, answer_columns_only=True)

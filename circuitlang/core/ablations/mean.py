"""`mean`: a sender sends its output averaged over all of the task's clean prompts."""

from __future__ import annotations

from .base import Ablation


def _values(senders, clean, corrupt):
    total = None
    for tokens in clean:
        summed = senders(tokens).map(lambda t: t.sum(0, keepdim=True))
        total = summed if total is None else total + summed
    count = sum(tokens.shape[0] for tokens in clean)
    mean = total.map(lambda t: t / count)
    return [mean] * len(clean)


ENTRY = Ablation("mean", 1, "S's output averaged over **all of the task's clean prompts**, per token position "
                 "(absolute index), the same for every example", _values)

"""`resample`, the default: a sender sends what it computes on the example's corrupted prompt."""

from __future__ import annotations

from .base import Ablation


def _values(senders, clean, corrupt):
    return [senders(tokens) for tokens in corrupt]


ENTRY = Ablation("resample", 0, "S's output on the same example's corrupted prompt, position by position", _values)

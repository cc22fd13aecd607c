"""`zero`: a cut edge carries nothing."""

from __future__ import annotations

from .base import Ablation


def _values(senders, clean, corrupt):
    zeros = senders(clean[0][:1]).map(lambda t: t[:1, :1].new_zeros(t[:1, :1].shape))
    return [zeros] * len(clean)


ENTRY = Ablation("zero", 2, "0, for every sender including `embed`", _values)

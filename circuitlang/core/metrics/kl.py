"""`kl`: the KL divergence from the full model's next-token distribution to the variant's.

It is 0 for the full model, so faithfulness (m(C) - m(empty)) / (m(M) - m(empty)) still
reads "1 = as good as the model". At the clean run it is at its minimum: its gradient
there is zero (EAP, which takes its gradient there, refuses it).
"""

from __future__ import annotations

from .base import Metric


def _compute(logits, answer, wrong, reference):
    ref = reference.unsqueeze(0)
    return (ref.exp() * (ref - logits.log_softmax(dim=-1))).sum(-1)


ENTRY = Metric("kl", 3, "Σ_v p_M(v) (log p_M(v) − log p_C(v)), the KL divergence from the model's distribution "
               "to the circuit's", "exactly 0", _compute, flat_at_clean=True, needs_reference=True,
               why_flat_at_clean="KL divergence from the model is at its minimum at the clean run")

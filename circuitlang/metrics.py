"""Metrics on the readout logits, per example: logit_diff, logprob, prob, kl, accuracy.

All take logits `[K, B, vocab]` (K circuit variants) and return `[K, B]`. `kl` is the
KL divergence from the full model's next-token distribution to the variant's, so it
needs the full model's log-probabilities; it is 0 for the full model and faithfulness
`(m(C) - m(empty)) / (m(M) - m(empty))` still reads "1 = as good as the model".

>>> import torch
>>> logits = torch.tensor([[[2.0, 0.0, 1.0]]])
>>> per_example("logit_diff", logits, torch.tensor([0]), torch.tensor([2])).tolist()
[[1.0]]
"""

from __future__ import annotations

import torch

METRICS = ("logit_diff", "logprob", "prob", "kl", "accuracy")


def per_example(metric: str, logits: torch.Tensor, answer: torch.Tensor, wrong: torch.Tensor,
                model_logprobs: torch.Tensor | None = None) -> torch.Tensor:
    """The metric for each variant and example: [K, B]."""
    logits = logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits
    k = logits.shape[0]
    index = answer.view(1, -1, 1).expand(k, -1, 1)
    if metric == "logit_diff":
        wrong_index = wrong.view(1, -1, 1).expand(k, -1, 1)
        return (logits.gather(-1, index) - logits.gather(-1, wrong_index)).squeeze(-1)
    logprobs = torch.log_softmax(logits, dim=-1)
    if metric == "logprob":
        return logprobs.gather(-1, index).squeeze(-1)
    if metric == "prob":
        return logprobs.gather(-1, index).squeeze(-1).exp()
    if metric == "accuracy":
        return (logits.argmax(dim=-1) == answer.view(1, -1)).to(logits.dtype)
    if metric == "kl":
        if model_logprobs is None:
            raise ValueError("kl needs the full model's log-probabilities")
        reference = model_logprobs.unsqueeze(0)
        return (reference.exp() * (reference - logprobs)).sum(-1)
    raise ValueError(f"unknown metric {metric!r}; metrics are {', '.join(METRICS)}")

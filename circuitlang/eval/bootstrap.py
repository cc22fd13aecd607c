"""Uncertainty over examples: seeded bootstrap intervals for the evaluator's measures.

Every measure the evaluator reports is a function of per-example metric values (the
model's, the empty circuit's, a circuit's, a variant's), averaged over the task's N
examples. The bootstrap draws R resamples of the N examples with replacement (seeded, so
a report is reproducible), recomputes the measure on each, and reports the central
95% percentile interval of the R values.

A resample is a weight vector over examples (counts / N), so the means of V variants
under R resamples are one product `[V, N] @ [N, R]`; a report with hundreds of variants
costs milliseconds.

>>> import torch
>>> w = Resamples(4, draws=3, seed=0)
>>> tuple(w.weights.shape), bool(torch.allclose(w.weights.sum(1), torch.ones(3, dtype=torch.float64)))
((3, 4), True)
"""

from __future__ import annotations

import math

import torch

from .results import Interval

DRAWS = 1000
LEVEL = 0.95


class Resamples:
    """R seeded resamples of N examples, as weights [R, N] that sum to 1 per draw."""

    def __init__(self, n: int, draws: int = DRAWS, seed: int = 0):
        generator = torch.Generator().manual_seed(seed)
        picks = torch.randint(0, n, (draws, n), generator=generator)
        counts = torch.zeros(draws, n, dtype=torch.float64)
        counts.scatter_add_(1, picks, torch.ones_like(picks, dtype=torch.float64))
        self.n, self.draws = n, draws
        self.weights = counts / n

    def means(self, values: torch.Tensor) -> torch.Tensor:
        """Per-draw means: [N] -> [R], or [V, N] -> [V, R]."""
        return values.to(torch.float64) @ self.weights.T


def interval(draws: torch.Tensor, level: float = LEVEL) -> Interval | None:
    """The central `level` percentile interval of bootstrap draws [R]; None if any draw is
    not finite (a resample whose denominator is zero, for example)."""
    values = draws.to(torch.float64)
    if values.numel() == 0 or not bool(torch.isfinite(values).all()):
        return None
    tail = (1 - level) / 2
    low, high = torch.quantile(values, torch.tensor([tail, 1 - tail], dtype=torch.float64)).tolist()
    return Interval(low, high)


def intervals(draws: torch.Tensor, level: float = LEVEL) -> list[Interval | None]:
    """`interval` of each row of [V, R]."""
    return [interval(row, level) for row in draws]


def standard_error(values: torch.Tensor) -> float:
    """Standard error of the mean of per-example values [N] (0 for a single example)."""
    n = values.numel()
    if n < 2:
        return 0.0
    return float(values.to(torch.float64).std(unbiased=True)) / math.sqrt(n)

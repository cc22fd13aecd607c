"""What a metric is (`Metric`); the metrics themselves are the other files of this package."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

Tensor = Any  # a torch.Tensor; this package imports no torch


@dataclass(frozen=True)
class Metric:
    """One metric.

    `compute(logits [K, B, vocab], answer [B], wrong [B], reference [B, vocab] | None)`
    returns [K, B]. `reference` is the full model's log-probabilities at END, given only
    to metrics with `needs_reference`. `differentiable` is False for a metric whose
    gradient is zero almost everywhere (gradient methods refuse it); `flat_at_clean` is
    True for one at its minimum at the clean run, so that its gradient there is zero.
    `answer_columns_only` is True for a metric that reads the logits of the answer and
    the wrong token only: the fast engine then unembeds those two columns, not the whole
    vocabulary (`Backend.unembed_columns`), and calls it with answer 0 and wrong 1.
    """

    name: str
    rank: int  # order in help texts and docs (the default first)
    per_example: str  # the formula, for people
    model_value: str  # what m(M) is
    compute: Callable[[Tensor, Tensor, Tensor, Tensor | None], Tensor]
    differentiable: bool = True
    flat_at_clean: bool = False
    needs_reference: bool = False
    answer_columns_only: bool = False  # reads the answer's and the wrong token's logits and nothing else
    why_not_differentiable: str = ""
    why_flat_at_clean: str = ""

    def __call__(self, logits: Tensor, answer: Tensor, wrong: Tensor, reference: Tensor | None = None) -> Tensor:
        if self.needs_reference and reference is None:
            raise ValueError(f"{self.name} needs the full model's log-probabilities")
        if logits.element_size() < 4:  # half precision: compute in float32
            logits = logits.float()
        return self.compute(logits, answer, wrong, reference)


def answer_index(logits: Tensor, tokens: Tensor) -> Tensor:
    """`tokens` [B] as an index into `logits` [K, B, vocab] along the vocabulary."""
    return tokens.view(1, -1, 1).expand(logits.shape[0], -1, 1)


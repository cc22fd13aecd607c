"""Task data: clean and corrupted token sequences, answers, and named positions.

A task's examples come from a generator (`data induction(seq_len = 16)`; the
generators are listed in `registry.GENERATORS`) or from a JSONL file (`data
"examples.jsonl"`, read by `jsonl.load_jsonl`). Either way the evaluator sees one
`TaskData`. A generator is `fn(backend, *, n, seed, **kwargs) -> TaskData`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping

import torch

from ...core.errors import CircuitlangError


class TaskError(CircuitlangError):
    """Bad task input; `line` is the 1-based line of a JSONL file when known."""

    def __init__(self, message: str, path: str | None = None, line: int | None = None, help: str | None = None):
        super().__init__(message, help)
        self.path, self.line = path, line


@dataclass(frozen=True)
class TaskData:
    """N examples of P tokens, with what the metric reads.

    `readout[i]` is the position whose next-token logits the metric reads (END);
    `positions` maps each named position (END included) to an [N] tensor of indices.
    `lengths` [N] is each prompt's own length when prompts of different lengths were
    right-padded to P (a JSONL file); None when every prompt fills all P tokens. An edge
    position must fall inside its example's own prompt, never in the padding.
    """

    clean: torch.Tensor  # [N, P] int64
    corrupt: torch.Tensor  # [N, P] int64
    answer: torch.Tensor  # [N] int64
    wrong: torch.Tensor  # [N] int64
    positions: Mapping[str, torch.Tensor] = field(default_factory=dict)
    name: str = ""
    lengths: torch.Tensor | None = None  # [N] int64, or None: every prompt has P tokens

    def __post_init__(self) -> None:
        if self.clean.dim() != 2 or self.clean.shape[0] == 0 or self.clean.shape[1] == 0:
            raise TaskError(f"the task has no examples (clean is {tuple(self.clean.shape)})",
                            help="generate at least one example: `n` must be 1 or more")
        n, p = self.clean.shape
        if self.corrupt.shape != (n, p):
            raise TaskError(f"clean is {tuple(self.clean.shape)} but corrupt is {tuple(self.corrupt.shape)}")
        if self.answer.shape != (n,) or self.wrong.shape != (n,):
            raise TaskError("answer and wrong need one token per example")
        if "END" not in self.positions:
            object.__setattr__(self, "positions", {**self.positions, "END": torch.full((n,), p - 1)})
        for name, index in self.positions.items():
            if index.shape != (n,) or int(index.min()) < 0 or bool((index >= self.prompt_lengths).any()):
                raise TaskError(f"position {name} is out of range for {p} tokens")

    @property
    def prompt_lengths(self) -> torch.Tensor:
        """Each example's own prompt length [N] (P for every example unless padded)."""
        if self.lengths is not None:
            return self.lengths
        return torch.full((self.clean.shape[0],), self.clean.shape[1])

    @property
    def readout(self) -> torch.Tensor:
        return self.positions["END"]

    def __len__(self) -> int:
        return self.clean.shape[0]

    def select(self, index: slice | torch.Tensor) -> "TaskData":
        """A subset of the examples (a batch)."""
        return TaskData(self.clean[index], self.corrupt[index], self.answer[index], self.wrong[index],
                        {k: v[index] for k, v in self.positions.items()}, self.name,
                        None if self.lengths is None else self.lengths[index])


Generator = Callable[..., TaskData]  # fn(backend, *, n=256, seed=0, **kwargs) -> TaskData

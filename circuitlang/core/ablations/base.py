"""What an ablation is (`Ablation`); the ablations themselves are the other files of this package."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

Tensor = Any  # a torch.Tensor; this package imports no torch
Cache = Any  # a SenderCache (circuitlang.eval.senders): `.map(fn)` and `+`
Senders = Callable[[Tensor], Cache]  # tokens [B, P] -> every sender's output on them


@dataclass(frozen=True)
class Ablation:
    """One ablation.

    `values(senders, clean, corrupt)` takes the senders' outputs as a function of tokens
    and the task's batches (clean and corrupted tokens, [B, P] each) and returns one
    cache of ablated values per batch; a cache's tensors may have size 1 in the batch
    and position dimensions (they broadcast).
    """

    name: str
    rank: int  # order in help texts and docs (the default first)
    meaning: str  # what abl_S is, for people
    values: Callable[[Senders, Sequence[Tensor], Sequence[Tensor]], list[Cache]]

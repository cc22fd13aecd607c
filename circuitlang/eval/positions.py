"""Token positions of edges (`@END`, `@S1+1`, `@3`, `@-1`) resolved against a task's examples.

`@NAME` and `@NAME+k` use the task's named position for each example; `@k` (k >= 0) is
the absolute position k; `@-k` counts back from END (`@-1` is END itself), so it stays
right for prompts of different lengths.

>>> import torch
>>> named = {"END": torch.tensor([4, 3]), "S1": torch.tensor([1, 2])}
>>> position_index(Position("S1", 1), named).tolist(), position_index(Position(-2), named).tolist()
([2, 3], [3, 2])
"""

from __future__ import annotations

from typing import Mapping

import torch

from ..core.errors import CircuitlangError
from ..core.positions import Position


class PositionError(CircuitlangError):
    """A position the task does not define, or one outside the prompt."""


def position_index(position: Position, named: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Per-example index [N] of an edge position."""
    end = named["END"]
    if not position.is_named:
        value = int(position.anchor)
        base = torch.full_like(end, value) if value >= 0 else end + 1 + value
    elif position.anchor in named:
        base = named[str(position.anchor)]
    else:
        raise PositionError(f"the task defines no position {position.anchor} (it has: {', '.join(sorted(named))})")
    return base + position.offset


def position_mask(position: Position | None, named: Mapping[str, torch.Tensor], length: int) -> torch.Tensor | None:
    """[N, P] float mask, 1 at the edge's position in each example; None for all positions."""
    if position is None:
        return None
    index = position_index(position, named)
    if int(index.min()) < 0 or int(index.max()) >= length:
        raise PositionError(f"position @{position} falls outside the {length} tokens of some example")
    mask = torch.zeros(index.shape[0], length)
    mask[torch.arange(index.shape[0]), index] = 1.0
    return mask


def check_inside(position: Position, named: Mapping[str, torch.Tensor], lengths: torch.Tensor, edge: str) -> None:
    """Refuse an edge whose position falls outside some example's own prompt (before its
    first token, past its last, or in the padding of a shorter prompt), for every receiver
    alike: the logits would otherwise read nothing there and silently score 0."""
    index = position_index(position, named)
    outside = (index < 0) | (index >= lengths.to(index.device))
    if bool(outside.any()):
        example = int(outside.nonzero()[0, 0])
        raise PositionError(f"edge `{edge}`: position @{position} is {int(index[example])} in example "
                            f"{example + 1}, outside its {int(lengths[example])} tokens",
                            "use a position inside every prompt, e.g. a named one (@END) or one counted "
                            "back from the end (@-1)")

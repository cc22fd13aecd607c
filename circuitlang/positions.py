"""Token positions of edges (`@END`, `@S1+1`, `@3`, `@-1`) resolved against a task's examples.

`@NAME` and `@NAME+k` use the task's named position for each example; `@k` (k >= 0) is
the absolute position k; `@-k` counts back from END (`@-1` is END itself), so it stays
right for prompts of different lengths.

>>> import torch
>>> named = {"END": torch.tensor([4, 3]), "S1": torch.tensor([1, 2])}
>>> position_index("S1+1", named).tolist(), position_index("-2", named).tolist()
([2, 3], [3, 2])
"""

from __future__ import annotations

import re
from typing import Mapping

import torch

_POSITION = re.compile(r"(?P<anchor>[A-Za-z_]\w*|-?\d+)(?P<offset>[+-]\d+)?")


class PositionError(Exception):
    """A position the task does not define, or one outside the prompt."""


def position_index(text: str, named: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Per-example index [N] of an edge position."""
    match = _POSITION.fullmatch(text)
    if match is None:
        raise PositionError(f"malformed position @{text}")
    anchor, offset = match["anchor"], int(match["offset"] or 0)
    end = named["END"]
    if anchor.lstrip("-").isdigit():
        value = int(anchor)
        base = torch.full_like(end, value) if value >= 0 else end + 1 + value
    elif anchor in named:
        base = named[anchor]
    else:
        raise PositionError(f"the task defines no position {anchor} (it has: {', '.join(sorted(named))})")
    return base + offset


def position_mask(text: str | None, named: Mapping[str, torch.Tensor], length: int) -> torch.Tensor | None:
    """[N, P] float mask, 1 at the edge's position in each example; None for all positions."""
    if text is None:
        return None
    index = position_index(text, named)
    if int(index.min()) < 0 or int(index.max()) >= length:
        raise PositionError(f"position @{text} falls outside the {length} tokens of some example")
    mask = torch.zeros(index.shape[0], length)
    mask[torch.arange(index.shape[0]), index] = 1.0
    return mask

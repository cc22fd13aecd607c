"""Axis ticks for the SVG plots we draw ourselves (`circ track`'s and `circ discover`'s):
round tick values, and which of them keep their labels without overlapping.

Text widths are estimated, not measured (no font metrics without a drawing library):
0.6 x the font size per character, which holds for the sans-serif digits and letters
of tick labels.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

FONT = 11  # px; the plots' tick and axis-title size


def text_width(text: str, size: float = FONT) -> float:
    return 0.6 * size * len(text)


def nice_ticks(low: float, high: float, most: int, whole: bool = False) -> list[float]:
    """At most `most` round values (1, 2, 2.5 or 5 times a power of ten apart) in
    [low, high]; `whole` keeps them integers (training steps)."""
    span = max(high - low, 1e-12)
    for exponent in range(math.floor(math.log10(span / max(most, 1))) - 1, 400):
        for mantissa in (1, 2, 2.5, 5):
            step = mantissa * 10.0 ** exponent
            if whole and step < 1:
                continue
            first, last = math.ceil(low / step - 1e-9), math.floor(high / step + 1e-9)
            if last - first + 1 <= most:
                return [round(k * step, 12) for k in range(first, last + 1)]
    return [low, high]


def thin(candidates: Sequence[tuple[int, float]], position: Callable[[float], float],
         extent: Callable[[float], float], gap: float) -> list[float]:
    """The candidates whose labels do not overlap: kept in priority order, then position;
    `extent` is a label's size along the axis."""
    kept: list[tuple[float, float]] = []
    for _, value in sorted(candidates, key=lambda c: (c[0], position(c[1]))):
        centre, half = position(value), extent(value) / 2
        if all(abs(centre - other) >= half + other_half + gap for other, other_half in
               ((position(v), extent(v) / 2) for v, _ in kept)):
            kept.append((value, half))
    return sorted((v for v, _ in kept), key=position)


def faithfulness_ticks(low: float, high: float, py: Callable[[float], float], height: float) -> list[float]:
    """The labelled ticks of a faithfulness axis over [low, high] drawn `height` px tall
    (`py`: value -> y pixel): 0 and 1 first, then round values, none closer than a
    label's height plus a gap."""
    candidates = [(0, 0.0), (0, 1.0), *((1, v) for v in nice_ticks(low, high, max(2, int(height // (2.2 * FONT)))))]
    inside = [(p, v) for p, v in candidates if low <= v <= high]
    return thin(inside, lambda v: -py(v), lambda v: FONT, 4)

"""A faithfulness curve as a small standalone SVG (no plotting library needed).

x: the fraction of the model's edges kept (log scale, as MIB plots it); y: faithfulness.

No two labels overlap, by construction: tick labels closer than a label's size (plus a
gap) are dropped, round values first (decades on x; 0 and 1 on y); the margins are
measured from the widest tick label, and each axis title sits outside its tick labels.
Ticks and text widths come from present/axes.py, as in track's plot.

>>> svg = curve_svg([(0.01, 0.2), (0.1, 0.9), (1.0, 1.0)], title="eap-ig")
>>> svg.startswith("<svg") and "eap-ig" in svg
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence
from xml.sax.saxutils import escape

from ..present.axes import FONT, faithfulness_ticks, text_width, thin

WIDTH, HEIGHT = 480, 300
TITLE_FONT = 13
PAD = 8  # px between the picture's edge, a title, tick labels and the plot area
TICK_GAP = 10  # px kept free between two neighbouring tick labels along their axis


@dataclass(frozen=True)
class _Frame:
    """Where the plot area lies, and the data ranges it shows (x as log10 of the fraction)."""

    left: float
    right: float
    top: float
    bottom: float
    x_lo: float
    x_hi: float
    y_lo: float
    y_hi: float

    def px(self, x: float) -> float:
        return self.left + (x - self.x_lo) / (self.x_hi - self.x_lo) * (self.right - self.left)

    def py(self, y: float) -> float:
        return self.bottom - (y - self.y_lo) / (self.y_hi - self.y_lo) * (self.bottom - self.top)


def curve_svg(points: Sequence[tuple[float, float]], title: str = "", note: str = "") -> str:
    """An SVG line chart of (edge fraction, faithfulness) points; points that are not
    finite numbers (an undefined faithfulness) are left out, never drawn as NaN."""
    points = [(x, y) for x, y in points if math.isfinite(x) and math.isfinite(y)]
    xs = [math.log10(max(x, 1e-6)) for x, _ in points]
    ys = [y for _, y in points]
    frame = _frame(xs, ys, bool(note))
    y_ticks = _y_ticks(frame)
    x_ticks = _x_ticks(frame)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
             f'font-family="sans-serif" font-size="{FONT}">',
             f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
             f'<text x="{WIDTH / 2}" y="{PAD + TITLE_FONT}" text-anchor="middle" '
             f'font-size="{TITLE_FONT}">{escape(title)}</text>']
    if note:
        parts.append(f'<text x="{frame.right:.1f}" y="{frame.top - PAD:.1f}" text-anchor="end">{escape(note)}</text>')
    parts.append(f'<rect x="{frame.left:.1f}" y="{frame.top:.1f}" width="{frame.right - frame.left:.1f}" '
                 f'height="{frame.bottom - frame.top:.1f}" fill="none" stroke="#bbb"/>')
    for y in y_ticks:
        parts.append(f'<line x1="{frame.left:.1f}" x2="{frame.right:.1f}" y1="{frame.py(y):.1f}" '
                     f'y2="{frame.py(y):.1f}" stroke="{"#bbb" if y in (0.0, 1.0) else "#e4e4e4"}"/>'
                     f'<text x="{frame.left - PAD:.1f}" y="{frame.py(y) + 0.35 * FONT:.1f}" '
                     f'text-anchor="end">{_y_label(y)}</text>')
    for x in x_ticks:
        parts.append(f'<line x1="{frame.px(x):.1f}" x2="{frame.px(x):.1f}" y1="{frame.bottom:.1f}" '
                     f'y2="{frame.bottom + 4:.1f}" stroke="#666"/><text x="{frame.px(x):.1f}" '
                     f'y="{frame.bottom + 4 + FONT:.1f}" text-anchor="middle">{_x_label(x)}</text>')
    parts.append(f'<text x="{(frame.left + frame.right) / 2:.1f}" y="{frame.bottom + 4 + FONT + PAD + FONT:.1f}" '
                 'text-anchor="middle">fraction of edges kept (log scale)</text>')
    title_x = PAD + FONT  # the rotated title's baseline: its letters lie left of it, its tick labels right
    mid = (frame.top + frame.bottom) / 2
    parts.append(f'<text x="{title_x:.1f}" y="{mid:.1f}" transform="rotate(-90 {title_x:.1f} {mid:.1f})" '
                 'text-anchor="middle">faithfulness</text>')
    path = " ".join(f"{'M' if i == 0 else 'L'}{frame.px(x):.1f},{frame.py(y):.1f}"
                    for i, (x, y) in enumerate(zip(xs, ys)))
    if path:
        parts.append(f'<path d="{path}" fill="none" stroke="#1f77b4" stroke-width="2"/>')
    parts += [f'<circle cx="{frame.px(x):.1f}" cy="{frame.py(y):.1f}" r="3" fill="#1f77b4"/>' for x, y in zip(xs, ys)]
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _frame(xs: list[float], ys: list[float], has_note: bool) -> _Frame:
    """The plot area and ranges: x spans the points (a decade when they are one point),
    y covers 0..1 and every value, padded by 5% so no point sits on the frame; the left
    margin fits the widest y tick label and the rotated axis title, the bottom one the x
    tick labels and the x axis title, the top one the title and the note."""
    x_lo, x_hi = (min(xs), max(xs)) if xs else (-3.0, 0.0)
    if x_hi - x_lo < 1e-9:
        x_lo, x_hi = x_lo - 0.5, x_hi + 0.5
    y_lo, y_hi = min([0.0, *ys]), max([1.0, *ys])
    pad = 0.05 * (y_hi - y_lo)
    y_lo, y_hi = y_lo - pad, y_hi + pad
    top = PAD + TITLE_FONT + PAD + (FONT + PAD if has_note else 0)
    bottom = HEIGHT - (PAD + FONT + PAD + FONT + 4)
    probe = _Frame(0.0, 1.0, top, bottom, x_lo, x_hi, y_lo, y_hi)
    label_w = max(text_width(_y_label(y)) for y in _y_ticks(probe))
    left = PAD + FONT + PAD + label_w + PAD
    x_room = max(text_width(_x_label(x)) for x in (x_lo, x_hi)) / 2  # the last label is centred on its tick
    return _Frame(left, WIDTH - max(PAD + x_room, 2 * PAD), top, bottom, x_lo, x_hi, y_lo, y_hi)


def _y_ticks(frame: _Frame) -> list[float]:
    return faithfulness_ticks(frame.y_lo, frame.y_hi, frame.py, frame.bottom - frame.top)


def _x_ticks(frame: _Frame) -> list[float]:
    """Edge-fraction ticks (as log10) that fit: decades first, 2x and 5x where decades are
    fewer than three, none whose labels would touch."""
    candidates = []
    for exponent in range(math.floor(frame.x_lo) - 1, math.ceil(frame.x_hi) + 1):
        candidates += [(0 if m == 1 else m, exponent + math.log10(m)) for m in (1, 2, 5)]
    inside = [(p, x) for p, x in candidates if frame.x_lo - 1e-9 <= x <= frame.x_hi + 1e-9]
    decades = [c for c in inside if c[0] == 0]
    return thin(decades if len(decades) >= 3 else inside, frame.px,
                 lambda x: text_width(_x_label(x)), TICK_GAP)


def _x_label(x: float) -> str:
    return f"{10.0 ** x:.3g}"


def _y_label(y: float) -> str:
    return f"{round(y, 6) + 0.0:g}"

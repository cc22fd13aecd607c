"""A faithfulness curve as a small standalone SVG (no plotting library needed).

x: the fraction of the model's edges kept (log scale, as MIB plots it); y: faithfulness.

>>> svg = curve_svg([(0.01, 0.2), (0.1, 0.9), (1.0, 1.0)], title="eap-ig")
>>> svg.startswith("<svg") and "eap-ig" in svg
True
"""

from __future__ import annotations

import math
from typing import Sequence
from xml.sax.saxutils import escape

WIDTH, HEIGHT, MARGIN = 480, 300, 50


def curve_svg(points: Sequence[tuple[float, float]], title: str = "", note: str = "") -> str:
    """An SVG line chart of (edge fraction, faithfulness) points; points that are not
    finite numbers (an undefined faithfulness) are left out, never drawn as NaN."""
    points = [(x, y) for x, y in points if math.isfinite(x) and math.isfinite(y)]
    xs = [math.log10(max(x, 1e-6)) for x, _ in points]
    ys = [y for _, y in points]
    x_lo, x_hi = (min(xs), max(xs)) if xs else (-3.0, 0.0)
    x_hi = x_hi if x_hi > x_lo else x_lo + 1
    y_lo, y_hi = min([0.0, *ys]), max([1.0, *ys])

    def px(x: float) -> float:
        return MARGIN + (x - x_lo) / (x_hi - x_lo) * (WIDTH - 2 * MARGIN)

    def py(y: float) -> float:
        return HEIGHT - MARGIN - (y - y_lo) / (y_hi - y_lo) * (HEIGHT - 2 * MARGIN)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
             f'font-family="sans-serif" font-size="11">',
             f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
             f'<text x="{WIDTH / 2}" y="20" text-anchor="middle" font-size="13">{escape(title)}</text>']
    for y in (y_lo, 0.0, 0.5, 1.0, y_hi):
        if y_lo <= y <= y_hi:
            parts.append(f'<line x1="{MARGIN}" x2="{WIDTH - MARGIN}" y1="{py(y):.1f}" y2="{py(y):.1f}" '
                         f'stroke="#ddd"/><text x="{MARGIN - 6}" y="{py(y) + 4:.1f}" text-anchor="end">{y:g}</text>')
    for exponent in range(math.floor(x_lo), math.ceil(x_hi) + 1):
        if x_lo <= exponent <= x_hi:
            parts.append(f'<text x="{px(exponent):.1f}" y="{HEIGHT - MARGIN + 16}" text-anchor="middle">'
                         f'{10.0 ** exponent:g}</text>')
    parts.append(f'<text x="{WIDTH / 2}" y="{HEIGHT - 12}" text-anchor="middle">fraction of edges kept</text>')
    parts.append(f'<text x="14" y="{HEIGHT / 2}" transform="rotate(-90 14 {HEIGHT / 2})" '
                 f'text-anchor="middle">faithfulness</text>')
    path = " ".join(f"{'M' if i == 0 else 'L'}{px(x):.1f},{py(y):.1f}" for i, (x, y) in enumerate(zip(xs, ys)))
    if path:
        parts.append(f'<path d="{path}" fill="none" stroke="#1f77b4" stroke-width="2"/>')
    parts += [f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="#1f77b4"/>' for x, y in zip(xs, ys)]
    if note:
        parts.append(f'<text x="{WIDTH - MARGIN}" y="{MARGIN - 10}" text-anchor="end">{escape(note)}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"

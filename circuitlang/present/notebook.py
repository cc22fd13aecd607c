"""Circuits, diffs and reports in a Jupyter notebook: drawings (`_repr_svg_`) and tables
(`_repr_html_`) instead of frozensets of nodes and lists of per-example floats.

Circuits are core values, so this module registers their drawing with `core.display`
(imported by `import circuitlang`); diffs (present) and reports (eval) call the functions
here directly. Drawings need Graphviz's `dot`; without it a value shows as its short
`__repr__`. docs/python.md shows them.
"""

from __future__ import annotations

from html import escape
from typing import Iterable, Sequence

from ..core.display import register
from ..core.graph import CircuitGraph
from .render import RenderError, drawn, to_diff_dot, to_dot

MAX_DRAWN_EDGES = 2000  # as `circ render`: more takes Graphviz minutes


def circuit_svg(graph: CircuitGraph) -> str | None:
    """The circuit drawn as SVG text, or None (no `dot`, too big, or it failed)."""
    if len(graph.edges) > MAX_DRAWN_EDGES:
        return None
    try:
        return _svg_element(drawn(to_dot(graph), "svg"))
    except RenderError:
        return None


def diff_svg(diff) -> str | None:
    """A diff drawn as the union of its two circuits, coloured by side, or None."""
    if diff.graph_a is None or diff.graph_b is None or len(diff.graph_a.edges | diff.graph_b.edges) > MAX_DRAWN_EDGES:
        return None
    try:
        return _svg_element(drawn(to_diff_dot(diff.graph_a, diff.graph_b, labels=(diff.name_a, diff.name_b)), "svg"))
    except RenderError:
        return None


def _svg_element(data: bytes) -> str:
    """Graphviz's SVG document without its XML prolog and doctype, to sit inside HTML."""
    text = data.decode("utf-8")
    return text[text.index("<svg"):]


def table_html(header: Sequence[str], rows: Iterable[Sequence[object]], caption: str = "") -> str:
    """A small HTML table, every cell escaped; numbers right-aligned."""
    def cell(value: object, tag: str) -> str:
        align = ' style="text-align:right"' if isinstance(value, (int, float)) and not isinstance(value, bool) else ""
        text = f"{value:.4g}" if isinstance(value, float) else str(value)
        return f"<{tag}{align}>{escape(text)}</{tag}>"

    head = "".join(cell(h, "th") for h in header)
    body = "".join("<tr>" + "".join(cell(v, "td") for v in row) + "</tr>" for row in rows)
    title = f"<caption>{escape(caption)}</caption>" if caption else ""
    return f"<table>{title}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


register(CircuitGraph, "svg", circuit_svg)

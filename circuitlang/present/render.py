"""Render a `CircuitGraph` to Graphviz DOT text, and DOT to SVG/PNG/PDF with `dot`.

Why write DOT by hand: the text is small, deterministic (everything is emitted in
sorted order, so a rendered file diffs cleanly) and needs no Python graphviz package;
only turning it into pictures needs the system `dot` binary, called by `render_dot`.

Layout: the graph flows bottom to top (`rankdir=BT`): `embed` at the bottom, `logits`
at the top, one rank per layer (heads below the MLP of the same layer, which reads
them), and a left-hand axis naming the layers. Heads are blue ellipses, MLPs orange
boxes, embed/logits grey. Edge labels carry the channel (`q`, `k`, `v`) and `@POS`;
edges between the same pair that differ only in channel are merged (`q,k`). When
edges carry a numeric `score` annotation, pen width grows with |score|. Named groups
become clusters; `newrank=true` lets the per-layer ranks cut across them.

>>> from circuitlang.core.graph import EMBED, LOGITS, CircuitGraph, Edge, Node
>>> h = Node.attn(0, 1)
>>> g = CircuitGraph.from_edges([Edge(EMBED, h, "q"), Edge(EMBED, h, "k"), Edge(h, LOGITS)])
>>> text = to_dot(g)
>>> '"embed" -> "L0.H1"' in text and 'label="q,k"' in text
True
"""

from __future__ import annotations

import math
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Iterable, Mapping

from ..core.errors import CircuitlangError
from ..core.graph import EMBED, CircuitGraph, Edge, Node
from ..core.positions import Position

DOT_TIMEOUT_S = 120
# Graphviz's layout grows much faster than the edges: measured with `dot -Tsvg` on GPT-2
# circuits, 579 edges take 0.3 s, 1,590 take 6 s, 3,082 take 58 s and every edge of the
# model (32,491) runs past the timeout. Above this many edges a picture is refused unless
# forced (`circ render --force`); the .dot text is always written (it takes a second).
MAX_DRAW_EDGES = 2000
# From this many edges on, say that drawing is under way: it takes seconds.
SLOW_DRAW_EDGES = 500
DRAWN_FORMATS = ("svg", "png", "pdf")
INSTALL_HINT = ("Graphviz's `dot` is not installed: run `apt-get install -y graphviz` (as root) "
                "or see https://graphviz.org/download/")
RSVG_HINT = ("PNG and PDF plots need librsvg's `rsvg-convert`, which is not installed: run "
             "`apt-get install -y librsvg2-bin` (as root; `brew install librsvg` on macOS), or write a .svg")

_NODE_STYLE = {
    "embed": {"shape": "box", "style": "filled,bold", "fillcolor": "#e0e0e0"},
    "logits": {"shape": "box", "style": "filled,bold", "fillcolor": "#e0e0e0"},
    "head": {"shape": "ellipse", "style": "filled", "fillcolor": "#cfe2ff", "color": "#1f4e9c"},
    "mlp": {"shape": "box", "style": "filled,rounded", "fillcolor": "#ffd9a8", "color": "#b35900"},
}
_CHANNEL_ORDER = {"q": 0, "k": 1, "v": 2}
_CHANNEL_COLOR = {"q": "#1f77b4", "k": "#2ca02c", "v": "#9467bd"}
_DIFF_COLOR = {"both": "#404040", "a": "#d62728", "b": "#2ca02c", "mixed": "#b8860b"}
_SIDE_WORD = {"both": "both", "a": "A", "b": "B"}
_MIN_PEN, _MAX_PEN = 0.5, 5.0


class RenderError(CircuitlangError):
    """Rendering failed: `dot` is missing, failed, timed out, or the format is unknown."""


# -- public API ----------------------------------------------------------------------------
def to_dot(graph: CircuitGraph, *, title: str | None = None,
           groups: Mapping[str, Iterable[Node]] | None = None, ids: bool = False,
           muted: Iterable[Edge] = ()) -> str:
    """DOT text for `graph`. `title` defaults to the circuit's name and model ("" for none).

    `groups` maps a name to nodes drawn inside a labelled cluster; a node named by two
    groups goes in the first; nodes not in the graph are ignored.

    `ids=True` is for pages that click on the drawing (`circ serve`): every edge gets its
    own arrow (none merged) with the SVG id `e<i>`, i its index in `graph.sorted_edges()`,
    and every node the id `n<i>` (index in `graph.sorted_nodes()`). `muted` edges are
    drawn grey and dotted: switched off, but still there to switch back on.
    """
    if title is None:
        title = _default_title(graph)
    nodes = graph.sorted_nodes()
    max_score = _max_score(graph)
    lines = _header(title)
    lines += _rank_lines(nodes)
    node_ids = {n: f"n{i}" for i, n in enumerate(nodes)}
    lines += _cluster_lines(nodes, groups or {},
                            lambda n: {**_node_attrs(n), "id": node_ids[n]} if ids else _node_attrs(n))
    if not ids:
        for members, channels in _merge(graph.sorted_edges(), lambda e: _note_key(graph.annotations.get(e))):
            lines.append(_edge_line(members[0], _edge_attrs(members, channels, graph, max_score)))
        return "\n".join(lines + ["}"]) + "\n"
    off = frozenset(muted)
    for i, e in enumerate(graph.sorted_edges()):
        attrs = {**_edge_attrs([e], [e.channel], graph, max_score), "id": f"e{i}"}
        if e in off:
            attrs.update(color="#b0b0b0", fontcolor="#b0b0b0", style="dotted")
        lines.append(_edge_line(e, attrs))
    return "\n".join(lines + ["}"]) + "\n"


def to_class_dot(graph: CircuitGraph, groups: Mapping[str, Iterable[Node]], *, title: str | None = None,
                 embed: bool = True, labels: bool = True) -> str:
    """DOT text at class level, as Wang et al. draw IOI: each group one node (labelled
    with its size), every other component its own, and the edges between two classes
    merged into one arrow labelled with their channels and count (width grows with the
    count). `embed=False` leaves out `embed` and its edges; `labels=False` the arrows'
    labels. A node in two groups belongs to the first (the later group's label says how
    many of its members are drawn there); classes are ranked by layer (a group by its
    earliest member), in a stable order."""
    if title is None:
        title = _default_title(graph)
    classes = _classes(graph.sorted_nodes(), groups, embed)
    lines = _header(title) + _class_node_lines(classes, lambda name: {}, lambda name: "")
    for sender, receiver, edges in _class_arrows(graph.sorted_edges(), classes):
        lines.append(f"  {_q(sender)} -> {_q(receiver)} [{_attrs(_arrow_attrs(edges, labels))}];")
    return "\n".join(lines + ["}"]) + "\n"


def to_class_diff_dot(a: CircuitGraph, b: CircuitGraph, groups: Mapping[str, Iterable[Node]], *,
                      names: tuple[str, str] = ("a", "b"), embed: bool = True, labels: bool = True) -> str:
    """DOT text overlaying two circuits at class level: the classes and arrows of
    `to_class_dot` drawn for the union of both, each coloured as `to_diff_dot` colours a
    node or edge when all it stands for is on one side (in both: grey; only in A: red,
    dashed; only in B: green). A class or arrow that mixes sides gets a neutral colour and
    says in its label how many of its members are on each side (`both 5, B 2`): a merged
    arrow must not look shared when most of its edges are not. `names` name A and B."""
    node_side = {n: _side(n, a.nodes, b.nodes) for n in a.nodes | b.nodes}
    edge_side = {e: _side(e, a.edges, b.edges) for e in a.edges | b.edges}
    classes = _classes(sorted(node_side, key=Node.sort_key), groups, embed)

    def class_counts(name: str) -> dict[str, int]:
        return _side_counts(node_side[n] for n in classes.members[name])

    def style(name: str) -> dict[str, str]:
        status = _status(class_counts(name))
        return _diff_node_attrs(status) if status != "mixed" else {
            "color": _DIFF_COLOR["mixed"], "fontcolor": _DIFF_COLOR["mixed"], "style": "filled,dotted",
            "penwidth": "2.5"}

    def note(name: str) -> str:
        counts = class_counts(name)
        return _counts_text(counts) if _status(counts) == "mixed" else ""

    lines = _header(f"{names[0]} vs {names[1]}, at class level")
    lines += _class_node_lines(classes, style, note)
    for sender, receiver, edges in _class_arrows(sorted(edge_side, key=Edge.sort_key), classes):
        counts = _side_counts(edge_side[e] for e in edges)
        status = _status(counts)
        attrs = _arrow_attrs(edges, labels, "" if status != "mixed" else f" ({_counts_text(counts)})")
        attrs.update(color=_DIFF_COLOR[status], fontcolor=_DIFF_COLOR[status])
        attrs["tooltip"] += f" ({_counts_text(counts)})"
        if status == "a":
            attrs["style"] = "dashed"
        lines.append(f"  {_q(sender)} -> {_q(receiver)} [{_attrs(attrs)}];")
    lines += _legend(names, mixed=True)
    return "\n".join(lines + ["}"]) + "\n"


@dataclass(frozen=True)
class _Classes:
    """The nodes of a class-level drawing: each drawn node's class (its first group, else
    its own name), the classes in drawing order (by rank of their earliest member, then
    name), and for a group how many of its drawn members went to an earlier group."""

    home: Mapping[Node, str]
    members: Mapping[str, tuple[Node, ...]]
    order: tuple[str, ...]
    grouped: frozenset[str]
    elsewhere: Mapping[str, Mapping[str, int]]

    def of(self, node: Node) -> str | None:
        """`node`'s class; None for a node not drawn (embed under `embed=False`)."""
        return self.home.get(node)

    def first(self, name: str) -> Node:
        return self.members[name][0]


def _classes(nodes: list[Node], groups: Mapping[str, Iterable[Node]], embed: bool) -> _Classes:
    """Assign the drawn `nodes` (sorted) to classes; see `_Classes`."""
    drawn_nodes = [n for n in nodes if embed or n != EMBED]
    present = set(drawn_nodes)
    home: dict[Node, str] = {}
    elsewhere: dict[str, dict[str, int]] = {}
    for name, group in groups.items():
        for n in sorted(set(group) & present, key=Node.sort_key):
            if n in home and home[n] != name:
                elsewhere.setdefault(name, {}).setdefault(home[n], 0)
                elsewhere[name][home[n]] += 1
            home.setdefault(n, name)
    for n in drawn_nodes:
        home.setdefault(n, str(n))
    members: dict[str, list[Node]] = {}
    for n in drawn_nodes:
        members.setdefault(home[n], []).append(n)
    order = sorted(members, key=lambda name: (members[name][0].sort_key(), name))
    return _Classes(MappingProxyType(home), MappingProxyType({k: tuple(v) for k, v in members.items()}),
                    tuple(order), frozenset(name for name in members if name in groups),
                    MappingProxyType({k: MappingProxyType(v) for k, v in elsewhere.items() if k in members}))


def _class_node_lines(classes: _Classes, style_of, note_of) -> list[str]:
    """One `rank=same` row per rank, then each class's declaration: a group labelled with
    its size (and where its other members are drawn), bold; `style_of(name)` adds to or
    overrides the style, `note_of(name)` (when not "") is a last line of the label."""
    lines = []
    for rank in sorted({_rank_of(classes.first(name)) for name in classes.order}):
        row = " ".join(_q(name) for name in classes.order if _rank_of(classes.first(name)) == rank)
        lines.append(f'  {{rank="same"; {row}}}')
    for name in classes.order:
        nodes = classes.members[name]
        style = dict(_NODE_STYLE[nodes[0].kind])
        label = name
        if name in classes.grouped:
            moved = "".join(f"; {count} more in {other}" for other, count in classes.elsewhere.get(name, {}).items())
            label = f"{name}\n({len(nodes)} {_kind_word(list(nodes))}{moved})"
            style["penwidth"] = "2"
        note = note_of(name)
        label += f"\n{note}" if note else ""
        lines.append(f"  {_q(name)} [{_attrs({'label': label, **style, **style_of(name)})}];")
    return lines


def _class_arrows(edges: Iterable[Edge], classes: _Classes) -> list[tuple[str, str, list[Edge]]]:
    """The edges between two drawn classes, one bunch per (sender, receiver) class pair, in
    drawing order; edges inside a class are drawn as the class, those of undrawn nodes not."""
    arrows: dict[tuple[str, str], list[Edge]] = {}
    for e in edges:
        sender, receiver = classes.of(e.sender), classes.of(e.receiver)
        if sender is not None and receiver is not None and sender != receiver:
            arrows.setdefault((sender, receiver), []).append(e)
    index = {name: i for i, name in enumerate(classes.order)}
    return [(s, r, arrows[s, r]) for s, r in sorted(arrows, key=lambda sr: (index[sr[1]], index[sr[0]]))]


def _arrow_attrs(edges: list[Edge], labels: bool, suffix: str = "") -> dict[str, str]:
    """A class arrow: width grows with the log of its edge count; label (when `labels`)
    the channels and count, then `suffix`; tooltip the count."""
    channels = sorted({e.channel for e in edges if e.channel}, key=lambda c: _CHANNEL_ORDER[c])
    attrs = {"penwidth": f"{1 + math.log2(len(edges)):.2f}",
             "tooltip": f"{len(edges)} edge{'s' if len(edges) != 1 else ''}"}
    if labels:
        attrs["label"] = (",".join(channels) + " " if channels else "") + f"×{len(edges)}" + suffix
    return attrs


def _default_title(graph: CircuitGraph) -> str:
    """The circuit's name and model ("" for an unnamed circuit)."""
    return graph.name + (f" ({graph.model})" if graph.model else "") if graph.name else ""


def _kind_word(nodes: list[Node]) -> str:
    kinds = {n.kind for n in nodes}
    word = "heads" if kinds == {"head"} else "MLPs" if kinds == {"mlp"} else "components"
    return word[:-1] if len(nodes) == 1 else word


def _side_counts(sides: Iterable[str]) -> dict[str, int]:
    """How many of some nodes or edges are in both, only in A, only in B (zeros left out)."""
    counts: dict[str, int] = {}
    for side in sides:
        counts[side] = counts.get(side, 0) + 1
    return {side: counts[side] for side in ("both", "a", "b") if side in counts}


def _status(counts: Mapping[str, int]) -> str:
    """The one side all are on, or `mixed`."""
    return next(iter(counts)) if len(counts) == 1 else "mixed"


def _counts_text(counts: Mapping[str, int]) -> str:
    """`both 5, B 2`: the per-side counts as a label says them."""
    return ", ".join(f"{_SIDE_WORD[side]} {n}" for side, n in counts.items())


def to_diff_dot(a: CircuitGraph, b: CircuitGraph, *, labels: tuple[str, str] = ("a", "b")) -> str:
    """DOT text overlaying two circuits: shared parts grey, only-in-A red dashed, only-in-B green."""
    nodes = sorted(a.nodes | b.nodes, key=Node.sort_key)
    node_side = {n: _side(n, a.nodes, b.nodes) for n in nodes}
    edge_side = {e: _side(e, a.edges, b.edges) for e in a.edges | b.edges}
    lines = _header(f"{labels[0]} vs {labels[1]}")
    lines += _rank_lines(nodes)
    lines += _cluster_lines(nodes, {}, lambda n: _node_attrs(n) | _diff_node_attrs(node_side[n]))
    for members, channels in _merge(sorted(edge_side, key=Edge.sort_key), lambda e: edge_side[e]):
        status = edge_side[members[0]]
        attrs = {"label": _edge_label(channels, members[0].position), "color": _DIFF_COLOR[status],
                 "fontcolor": _DIFF_COLOR[status], "tooltip": _tooltip(members)}
        if status == "a":
            attrs["style"] = "dashed"
        elif status == "b":
            attrs["penwidth"] = "2"
        lines.append(_edge_line(members[0], attrs))
    lines += _legend(labels)
    return "\n".join(lines + ["}"]) + "\n"


def dot_available() -> bool:
    """Whether Graphviz's `dot` is on PATH."""
    return shutil.which("dot") is not None


def output_format(out: Path) -> str:
    """The format an output file's suffix names (`svg`, `png`, `pdf`, `dot`); a RenderError
    for any other suffix, so that a command can refuse it before doing any work."""
    fmt = Path(out).suffix.lower().lstrip(".")
    if fmt == "gv":
        return "dot"
    if fmt != "dot" and fmt not in DRAWN_FORMATS:
        raise RenderError(f"cannot render to `{Path(out).name}`: use a .svg, .png, .pdf or .dot file")
    return fmt


def check_drawable(edges: int, out: Path, force: bool = False) -> None:
    """Refuse to draw a graph so big that Graphviz would run for minutes (more than
    MAX_DRAW_EDGES edges) unless `force`; .dot text is never refused."""
    fmt = output_format(out)
    if fmt in DRAWN_FORMATS and edges > MAX_DRAW_EDGES and not force:
        raise RenderError(
            f"the graph has {edges:,} edges; drawing more than {MAX_DRAW_EDGES:,} with Graphviz takes minutes "
            f"(3,000 edges about a minute; it gives up after {DOT_TIMEOUT_S} s)",
            f"write the .dot text instead (-o {Path(out).with_suffix('.dot').name}), draw a smaller circuit, "
            "or pass --force to try anyway")


def render_dot(dot_text: str, out: Path) -> None:
    """Write `dot_text` to `out` in the format its suffix names: .svg, .png, .pdf or .dot."""
    out = Path(out)
    fmt = output_format(out)
    if fmt == "dot":
        _write(out, dot_text.encode())
        return
    _write(out, drawn(dot_text, fmt))


def drawn(dot_text: str, fmt: str) -> bytes:
    """`dot_text` drawn by Graphviz in `fmt` (svg, png, pdf); a RenderError when `dot` is
    missing, fails or takes longer than DOT_TIMEOUT_S."""
    exe = shutil.which("dot")
    if exe is None:
        raise RenderError(INSTALL_HINT)
    return _run([exe, f"-T{fmt}"], dot_text.encode(), f"dot -T{fmt}",
                "the graph may be too big to draw: render a smaller circuit or write .dot")


def plot_format(out: Path) -> str:
    """The format a plot's file name asks for (`svg`, `png`, `pdf`); a RenderError for any
    other suffix, or for png/pdf when `rsvg-convert` is missing, so that a command can
    refuse it before it measures anything."""
    fmt = Path(out).suffix.lower().lstrip(".")
    if fmt not in DRAWN_FORMATS:
        raise RenderError(f"cannot write a plot to `{Path(out).name}`: use a .svg, .png or .pdf file")
    if fmt != "svg" and shutil.which("rsvg-convert") is None:
        raise RenderError(RSVG_HINT)
    return fmt


def plot_bytes(svg_text: str, fmt: str) -> bytes:
    """An SVG plot we drew ourselves (discover's curve, track's plot) in `fmt`: the text
    itself for svg; for png (at twice the SVG's size, so it stays sharp) and pdf, drawn by
    librsvg's `rsvg-convert`. Graphviz cannot do it: it loads SVG images only with its
    optional rsvg plugin, which the plain `graphviz` package lacks."""
    if fmt == "svg":
        return svg_text.encode()
    exe = shutil.which("rsvg-convert")
    if exe is None:
        raise RenderError(RSVG_HINT)
    return _run([exe, "-f", fmt, *(["-z", "2"] if fmt == "png" else [])], svg_text.encode(),
                f"rsvg-convert -f {fmt}", "the plot may be too big")


def _run(argv: list[str], data: bytes, what: str, too_slow: str) -> bytes:
    """Standard output of a converter fed `data`; a RenderError (one line) when it fails or
    runs longer than DOT_TIMEOUT_S (`too_slow` says why it might)."""
    try:
        done = subprocess.run(argv, input=data, capture_output=True, timeout=DOT_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise RenderError(f"`{what}` took longer than {DOT_TIMEOUT_S} s; {too_slow}") from None
    if done.returncode != 0:
        detail = " ".join(done.stderr.decode(errors="replace").split())
        raise RenderError(f"`{what}` failed (exit {done.returncode}): {detail}")
    return done.stdout


# -- DOT pieces ----------------------------------------------------------------------------
def _q(text: str) -> str:
    """A DOT double-quoted string (backslashes and quotes escaped)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _attrs(attrs: Mapping[str, str]) -> str:
    return ", ".join(f"{k}={_q(str(v))}" for k, v in attrs.items())


def _header(title: str) -> list[str]:
    lines = ["digraph circuit {",
             '  graph [rankdir="BT", newrank="true", ranksep="0.55", nodesep="0.3", fontname="Helvetica"];',
             '  node [fontname="Helvetica", fontsize="11"];',
             '  edge [fontname="Helvetica", fontsize="9", arrowsize="0.6"];']
    if title:
        lines.append(f'  graph [label={_q(title)}, labelloc="t", fontsize="14"];')
    return lines


def _rank_of(node: Node) -> tuple[int, int]:
    """Heads and the MLP of one layer get separate ranks: the MLP reads the heads."""
    return node.sort_key()[:2]


def _rank_name(rank: tuple[int, int]) -> str:
    layer, kind = rank
    return {0: "embed", 3: "logits"}.get(kind, f"L{layer}" + (" MLP" if kind == 2 else ""))


def _rank_lines(nodes: list[Node]) -> list[str]:
    """One `rank=same` row per rank present, anchored by a chain of axis labels."""
    ranks = sorted({_rank_of(n) for n in nodes})
    lines = []
    axis = [f"__rank_{i}" for i in range(len(ranks))]
    for name, rank in zip(axis, ranks):
        lines.append(f'  {_q(name)} [label={_q(_rank_name(rank))}, shape="plaintext", '
                     'fontcolor="#808080", fontsize="10"];')
    if len(axis) > 1:
        lines.append("  " + " -> ".join(_q(a) for a in axis) + ' [style="invis"];')
    for name, rank in zip(axis, ranks):
        members = " ".join(_q(str(n)) for n in nodes if _rank_of(n) == rank)
        lines.append(f'  {{rank="same"; {_q(name)} {members}}}')
    return lines


def _side(item: object, in_a: frozenset, in_b: frozenset) -> str:
    return ("both" if item in in_b else "a") if item in in_a else "b"


def _node_attrs(node: Node) -> dict[str, str]:
    return {"label": str(node), **_NODE_STYLE[node.kind]}


def _diff_node_attrs(status: str) -> dict[str, str]:
    if status == "a":
        return {"color": _DIFF_COLOR["a"], "fontcolor": _DIFF_COLOR["a"], "style": "filled,dashed",
                "penwidth": "2"}
    if status == "b":
        return {"color": _DIFF_COLOR["b"], "fontcolor": _DIFF_COLOR["b"], "penwidth": "2.5"}
    return {}


def _cluster_lines(nodes: list[Node], groups: Mapping[str, Iterable[Node]], attrs_of) -> list[str]:
    """Node declarations: grouped nodes inside `cluster_<name>`, the rest at top level."""
    home: dict[Node, str] = {}
    present = set(nodes)
    for name, members in groups.items():
        for n in members:
            if n in present:
                home.setdefault(n, name)
    lines = [f"  {_q(str(n))} [{_attrs(attrs_of(n))}];" for n in nodes if n not in home]
    for i, name in enumerate(groups):
        inside = [n for n in nodes if home.get(n) == name]
        if not inside:
            continue
        lines.append(f"  subgraph {_q(f'cluster_{i}_{name}')} {{")
        lines.append(f'    graph [label={_q(name)}, style="rounded,dashed", color="#7f7f7f", labelloc="b", '
                     'fontcolor="#404040", fontsize="11"];')
        lines += [f"    {_q(str(n))} [{_attrs(attrs_of(n))}];" for n in inside]
        lines.append("  }")
    return lines


def _merge(edges: list[Edge], extra_key) -> list[tuple[list[Edge], list[str | None]]]:
    """Group edges that differ only in channel (and agree on `extra_key(edge)`)."""
    bunches: dict[tuple, list[Edge]] = {}
    for e in edges:
        bunches.setdefault((e.sender, e.receiver, str(e.position or ""), extra_key(e)), []).append(e)
    out = []
    for key in sorted(bunches, key=lambda k: (k[1].sort_key(), k[0].sort_key(), k[2], k[3])):
        members = sorted(bunches[key], key=lambda e: _channel_rank(e.channel))
        out.append((members, [e.channel for e in members]))
    return out


def _channel_rank(channel: str | None) -> tuple[int, str]:
    return (_CHANNEL_ORDER.get(channel or "", 3), channel or "")


def _edge_label(channels: list[str | None], position: Position | None) -> str:
    return ",".join(c for c in channels if c) + (f"@{position}" if position is not None else "")


def _tooltip(members: list[Edge], score: float | None = None) -> str:
    text = "; ".join(str(e) for e in members)
    return text + (f" (score {score:.4g})" if score is not None else "")


def _edge_line(first: Edge, attrs: Mapping[str, str]) -> str:
    return f"  {_q(str(first.sender))} -> {_q(str(first.receiver))} [{_attrs(attrs)}];"


def _edge_attrs(members: list[Edge], channels: list[str | None], graph: CircuitGraph,
                max_score: float) -> dict[str, str]:
    color = _CHANNEL_COLOR.get(channels[0] or "", "#555555") if len(channels) == 1 else "#555555"
    attrs = {"label": _edge_label(channels, members[0].position), "color": color, "fontcolor": color}
    score = _score(graph.annotations.get(members[0]))
    if score is not None and max_score > 0:
        attrs["penwidth"] = f"{_MIN_PEN + (_MAX_PEN - _MIN_PEN) * abs(score) / max_score:.2f}"
    attrs["tooltip"] = _tooltip(members, score)
    return {k: v for k, v in attrs.items() if v != ""}


# -- scores and annotations ----------------------------------------------------------------
def _score(notes: Mapping[str, object] | None) -> float | None:
    """The finite numeric `score` annotation, if any (booleans are not scores)."""
    value = (notes or {}).get("score")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _max_score(graph: CircuitGraph) -> float:
    scores = [abs(s) for s in (_score(n) for n in graph.annotations.values()) if s is not None]
    return max(scores, default=0.0)


def _note_key(notes: Mapping[str, object] | None) -> str:
    """A comparable stand-in for an edge's annotations (edges merge only when these agree)."""
    return repr(sorted((notes or {}).items(), key=lambda kv: kv[0]))


def _legend(labels: tuple[str, str], mixed: bool = False) -> list[str]:
    """The diff's key: in both, only in A, only in B; `mixed` (class level) names the sides
    A and B, as the per-side counts do, and adds the neutral colour of a mix."""
    side = ("A: ", "B: ") if mixed else ("", "")
    rows = [("both", "in both", "solid"), ("a", f"only in {side[0]}{labels[0]}", "dashed"),
            ("b", f"only in {side[1]}{labels[1]}", "solid")]
    if mixed:
        rows.append(("mixed", "mixed: counts per side", "dotted"))
    lines = ['  subgraph "cluster_legend" {',
             '    graph [label="legend", labelloc="b", style="rounded", color="#bfbfbf"];']
    for key, text, style in rows:
        lines.append(f'    "__legend_{key}" [shape="box", style={_q(style)}, color={_q(_DIFF_COLOR[key])}, '
                     f'fontcolor={_q(_DIFF_COLOR[key])}, label={_q(text)}];')
    chain = " -> ".join(f'"__legend_{key}"' for key, _, _ in reversed(rows))
    lines.append(f'    {chain} [style="invis"];')
    lines.append("  }")
    return lines


def _write(out: Path, data: bytes) -> None:
    try:
        out.write_bytes(data)
    except OSError as exc:
        raise RenderError(f"cannot write {out}: {exc.strerror or exc}") from None

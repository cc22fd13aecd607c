"""Structural diff of two circuits: which nodes and edges one has that the other lacks.

Circuits are sets of edges, so a diff is two set differences; what this module adds is
a stable order (the IR's sort keys, i.e. order of computation) and readable output, so
that `circ diff` on two versions of a published circuit shows exactly what changed.
Annotations (scores) are not compared: two circuits with the same edges are equal.

>>> from circuitlang.core.graph import LOGITS, CircuitGraph, Edge, Node
>>> a = CircuitGraph.from_edges([Edge(Node.attn(9, 6), LOGITS)])
>>> b = CircuitGraph.from_edges([Edge(Node.attn(9, 9), LOGITS)])
>>> print(diff_graphs(a, b, "old.circ:ioi", "new.circ:ioi").to_text())
--- old.circ:ioi
+++ new.circ:ioi
- node L9.H6
+ node L9.H9
- L9.H6 -> logits
+ L9.H9 -> logits
1 node added, 1 removed; 1 edge added, 1 removed
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Mapping, TypeVar

from ..core.graph import CircuitGraph, Edge, Node
from ..core.models import ALIASES

T = TypeVar("T", Node, Edge)


@dataclass(frozen=True)
class CircuitDiff:
    """What changed from circuit A (`name_a`) to circuit B (`name_b`).

    "removed" means in A and not in B; "added" means in B and not in A. Each tuple is
    sorted by the IR's sort key.
    """

    name_a: str
    name_b: str
    nodes_added: tuple[Node, ...]
    nodes_removed: tuple[Node, ...]
    edges_added: tuple[Edge, ...]
    edges_removed: tuple[Edge, ...]
    # The models the two circuits are for, as their `model` lines name them (None: none).
    model_a: str | None = None
    model_b: str | None = None
    # the two circuits themselves, for drawing the diff (not part of its value)
    graph_a: CircuitGraph | None = field(default=None, compare=False, repr=False)
    graph_b: CircuitGraph | None = field(default=None, compare=False, repr=False)

    def __repr__(self) -> str:
        return f"CircuitDiff({self.name_a!r} -> {self.name_b!r}: {self.summary()})"

    def _repr_html_(self) -> str:
        """In a notebook: the union drawn with colours (where Graphviz is installed) and the listing."""
        from html import escape

        from .notebook import diff_svg

        svg = diff_svg(self) or ""
        return f"<div>{svg}<pre>{escape(self.to_text())}</pre></div>"

    @property
    def is_empty(self) -> bool:
        return not (self.nodes_added or self.nodes_removed or self.edges_added or self.edges_removed)

    def counts(self) -> dict[str, int]:
        return {"nodes_added": len(self.nodes_added), "nodes_removed": len(self.nodes_removed),
                "edges_added": len(self.edges_added), "edges_removed": len(self.edges_removed)}

    def summary(self) -> str:
        """`2 nodes added, 1 removed; 5 edges added, 3 removed`, or `no differences`."""
        if self.is_empty:
            return "no differences"
        return (f"{_plural(len(self.nodes_added), 'node')} added, {len(self.nodes_removed)} removed; "
                f"{_plural(len(self.edges_added), 'edge')} added, {len(self.edges_removed)} removed")

    def to_text(self) -> str:
        """A unified-diff-like listing: headers, `-`/`+` lines in computation order, a summary.

        Nodes come first (`- node L9.H6`), then edges (`+ L9.H9 -> logits`); within each,
        removals and additions are merged in computation order, so a replaced edge sits
        next to its replacement.
        """
        lines = [f"--- {self.name_a}{_model_note(self.model_a)}", f"+++ {self.name_b}{_model_note(self.model_b)}"]
        lines += _interleave(self.nodes_removed, self.nodes_added, Node.sort_key, "node ")
        lines += _interleave(self.edges_removed, self.edges_added, Edge.sort_key)
        lines.append(self.summary())
        return "\n".join(lines)

    def to_json(self) -> dict:
        """A JSON-ready dict: names (`a`, `b`), counts, and nodes/edges as their `.circ` strings."""
        return {
            "a": self.name_a,
            "b": self.name_b,
            "model_a": self.model_a,
            "model_b": self.model_b,
            "counts": self.counts(),
            "nodes_added": [str(n) for n in self.nodes_added],
            "nodes_removed": [str(n) for n in self.nodes_removed],
            "edges_added": [str(e) for e in self.edges_added],
            "edges_removed": [str(e) for e in self.edges_removed],
        }


def diff_graphs(a: CircuitGraph, b: CircuitGraph, name_a: str = "a", name_b: str = "b",
                models: tuple[str | None, str | None] = (None, None)) -> CircuitDiff:
    """The diff from `a` to `b`: what `b` adds to `a` and what it removes. `models` names
    the models of the two sides, for the headers and the JSON.

    >>> from circuitlang.core.graph import EMBED, LOGITS, CircuitGraph, Edge
    >>> g = CircuitGraph.from_edges([Edge(EMBED, LOGITS)])
    >>> diff_graphs(g, g).is_empty
    True
    """
    return CircuitDiff(
        name_a=name_a,
        name_b=name_b,
        nodes_added=_sorted(b.nodes - a.nodes, Node.sort_key),
        nodes_removed=_sorted(a.nodes - b.nodes, Node.sort_key),
        edges_added=_sorted(b.edges - a.edges, Edge.sort_key),
        edges_removed=_sorted(a.edges - b.edges, Edge.sort_key),
        model_a=models[0],
        model_b=models[1],
        graph_a=a,
        graph_b=b,
    )


def models_differ(model_a: str | None, model_b: str | None) -> str | None:
    """Why two circuits' models are not the same model, or None when they are. Node names
    such as `L9.H6` mean different components in different models, so a diff across
    models compares names, not mechanisms. Names are compared as written, after the
    table's aliases (`pythia-70m` is `EleutherAI/pythia-70m`).

    >>> models_differ("gpt2", "gpt2") is None
    True
    >>> models_differ("gpt2", "pythia-70m")
    'A is for gpt2 and B for pythia-70m'
    """
    if _canonical(model_a) == _canonical(model_b):
        return None
    return f"A is for {model_a or 'no model'} and B for {model_b or 'no model'}"


def _canonical(model: str | None) -> str | None:
    return ALIASES.get(model, model) if model is not None else None


def _model_note(model: str | None) -> str:
    return f" (model {model})" if model else ""


def pair_circuits(a: Mapping[str, CircuitGraph],
                  b: Mapping[str, CircuitGraph]) -> list[tuple[str | None, str | None]]:
    """Match the circuits of two files for diffing.

    Same-named circuits pair up; if each side has exactly one circuit they pair whatever
    their names. A circuit with no partner pairs with None. Order: A's circuits in A's
    order, then B's unmatched circuits in B's order.

    >>> pair_circuits({"ioi": 1, "ind": 2}, {"ioi": 3, "new": 4})
    [('ioi', 'ioi'), ('ind', None), (None, 'new')]
    >>> pair_circuits({"old": 1}, {"new": 2})
    [('old', 'new')]
    """
    if len(a) == 1 and len(b) == 1:
        return [(next(iter(a)), next(iter(b)))]
    pairs: list[tuple[str | None, str | None]] = [(name, name if name in b else None) for name in a]
    pairs += [(None, name) for name in b if name not in a]
    return pairs


def _sorted(items: Iterable[T], key) -> tuple[T, ...]:
    return tuple(sorted(items, key=key))


def _interleave(removed: tuple[T, ...], added: tuple[T, ...], key, prefix: str = "") -> list[str]:
    """`-` and `+` lines merged in sort order (removals first on ties), as a diff reads."""
    tagged = [(key(x), 0, f"- {prefix}{x}") for x in removed] + [(key(x), 1, f"+ {prefix}{x}") for x in added]
    return [line for _, _, line in sorted(tagged)]


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"

"""`circ diff`: what two circuits disagree on, as nodes and edges added and removed.

"Removed" is in A and not in B; "added" is in B and not in A. Circuits of two files are
paired by name, or taken as a pair when each file has exactly one.

>>> from circuitlang.graph import CircuitGraph, Edge, Node, LOGITS
>>> a = CircuitGraph.from_edges([Edge(Node.attn(9, 6), LOGITS)])
>>> b = CircuitGraph.from_edges([Edge(Node.attn(9, 9), LOGITS)])
>>> print(diff_graphs(a, b, "a.circ:c", "b.circ:c").to_text())
--- a.circ:c
+++ b.circ:c
- node L9.H6
+ node L9.H9
- L9.H6 -> logits
+ L9.H9 -> logits
1 node added, 1 removed; 1 edge added, 1 removed
"""

from __future__ import annotations

from dataclasses import dataclass

from .graph import CircuitGraph, Edge, Node


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


@dataclass(frozen=True)
class CircuitDiff:
    name_a: str
    name_b: str
    nodes_added: tuple[Node, ...]
    nodes_removed: tuple[Node, ...]
    edges_added: tuple[Edge, ...]
    edges_removed: tuple[Edge, ...]

    @property
    def is_empty(self) -> bool:
        return not (self.nodes_added or self.nodes_removed or self.edges_added or self.edges_removed)

    def summary(self) -> str:
        return (f"{_plural(len(self.nodes_added), 'node')} added, {len(self.nodes_removed)} removed; "
                f"{_plural(len(self.edges_added), 'edge')} added, {len(self.edges_removed)} removed")

    def to_text(self) -> str:
        lines = [f"--- {self.name_a}", f"+++ {self.name_b}"]
        lines += [f"- node {n}" for n in self.nodes_removed]
        lines += [f"+ node {n}" for n in self.nodes_added]
        lines += [f"- {e}" for e in self.edges_removed]
        lines += [f"+ {e}" for e in self.edges_added]
        lines.append("no differences" if self.is_empty else self.summary())
        return "\n".join(lines)

    def to_json(self) -> dict:
        return {
            "a": self.name_a,
            "b": self.name_b,
            "nodes_added": [str(n) for n in self.nodes_added],
            "nodes_removed": [str(n) for n in self.nodes_removed],
            "edges_added": [str(e) for e in self.edges_added],
            "edges_removed": [str(e) for e in self.edges_removed],
        }


def diff_graphs(a: CircuitGraph, b: CircuitGraph, name_a: str = "a", name_b: str = "b") -> CircuitDiff:
    """The difference from circuit A to circuit B."""
    return CircuitDiff(
        name_a, name_b,
        nodes_added=tuple(sorted(b.nodes - a.nodes, key=Node.sort_key)),
        nodes_removed=tuple(sorted(a.nodes - b.nodes, key=Node.sort_key)),
        edges_added=tuple(sorted(b.edges - a.edges, key=Edge.sort_key)),
        edges_removed=tuple(sorted(a.edges - b.edges, key=Edge.sort_key)),
    )


def pair_circuits(a: dict[str, CircuitGraph], b: dict[str, CircuitGraph]) -> list[tuple[str | None, str | None]]:
    """Circuits to compare: by name; one each is a pair whatever the names; the rest alone."""
    if len(a) == 1 and len(b) == 1:
        return [(next(iter(a)), next(iter(b)))]
    pairs: list[tuple[str | None, str | None]] = [(name, name) for name in a if name in b]
    pairs += [(name, None) for name in a if name not in b]
    pairs += [(None, name) for name in b if name not in a]
    return pairs

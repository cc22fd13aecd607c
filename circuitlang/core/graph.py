"""The circuit IR: nodes, edges and `CircuitGraph`, the value `lower` produces.

A circuit is a set of edges `sender -> receiver[.channel][@position]` plus the nodes it
names. Set algebra (union, intersection, difference) is exact set algebra on edges,
which is why the graph keeps frozensets rather than a networkx graph; `to_networkx()`
gives a `networkx.MultiDiGraph` (one edge per channel and position) for analysis and
rendering. `Node` and `Edge` are named tuples, not dataclasses: a GPT-2-small graph has
32,491 edges and tuples are built and hashed several times faster.

An edge's position is a `Position` value (`@S1+1` is `Position("S1", 1)`); positions are
compared as written (`@END` and `@-1` are different edges even if a task puts END last):
a circuit does not know its task.

>>> a = Edge(Node.attn(0, 1), Node.attn(1, 2), "k")
>>> str(a)
'L0.H1 -> L1.H2.k'
>>> g = CircuitGraph.from_edges([a])
>>> sorted(str(n) for n in g.nodes)
['L0.H1', 'L1.H2']
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Iterable, Mapping, NamedTuple

from .positions import Position

EMBED_LAYER = -1
LOGITS_LAYER = 1 << 30

# Order of node kinds inside one layer: attention heads run before the MLP.
_KIND_RANK = {"embed": 0, "head": 1, "mlp": 2, "logits": 3}


class Node(NamedTuple):
    """A model component: `embed`, `L{layer}.H{head}`, `L{layer}.MLP` or `logits`.

    Field order makes tuple order the order of computation.
    """

    layer: int
    kind: str
    head: int = -1

    @staticmethod
    def attn(layer: int, head: int) -> "Node":
        """The attention head `L{layer}.H{head}`."""
        return Node(layer, "head", head)

    @staticmethod
    def mlp(layer: int) -> "Node":
        return Node(layer, "mlp", -1)

    @property
    def is_head(self) -> bool:
        return self.kind == "head"

    @property
    def is_sender(self) -> bool:
        return self.kind != "logits"

    @property
    def is_receiver(self) -> bool:
        return self.kind != "embed"

    def sort_key(self) -> tuple[int, int, int]:
        return (self.layer, _KIND_RANK[self.kind], self.head)

    def __str__(self) -> str:
        if self.kind == "head":
            return f"L{self.layer}.H{self.head}"
        if self.kind == "mlp":
            return f"L{self.layer}.MLP"
        return self.kind

    def __repr__(self) -> str:
        return f"Node({str(self)!r})"  # `Node('logits')`, not its layer sentinel


EMBED = Node(EMBED_LAYER, "embed")
LOGITS = Node(LOGITS_LAYER, "logits")


_CHANNEL_RANK = {None: 0, "q": 1, "k": 2, "v": 3}


class Edge(NamedTuple):
    """One term of a receiver's input: `sender -> receiver[.channel][@position]`."""

    sender: Node
    receiver: Node
    channel: str | None = None
    position: Position | None = None

    def sort_key(self) -> tuple:
        position = "" if self.position is None else str(self.position)
        return (self.receiver.sort_key(), _CHANNEL_RANK[self.channel], self.sender.sort_key(), position)

    @property
    def target(self) -> str:
        """The receiving end as written in .circ: `L1.H2.k @END`."""
        text = str(self.receiver) + (f".{self.channel}" if self.channel else "")
        return text + (f" @{self.position}" if self.position is not None else "")

    def __str__(self) -> str:
        return f"{self.sender} -> {self.target}"

    def __repr__(self) -> str:
        return f"Edge({str(self)!r})"


Annotations = Mapping[str, object]


@dataclass(frozen=True)
class CircuitGraph:
    """A lowered circuit: its nodes, its edges, and per-edge annotations (e.g. scores).

    `level` is "node" for circuits written as a list of nodes (all edges among them),
    else "edge". Equality and the content hash look at model, nodes and edges only:
    two circuits with the same edges are the same circuit whatever they are called.
    """

    nodes: frozenset[Node]
    edges: frozenset[Edge]
    model: str | None = None
    name: str = field(default="", compare=False)
    level: str = field(default="edge", compare=False)
    doc: str | None = field(default=None, compare=False)
    annotations: Mapping[Edge, Annotations] = field(default_factory=dict, compare=False, hash=False)

    @staticmethod
    def from_edges(edges: Iterable[Edge], nodes: Iterable[Node] = (), **kwargs: object) -> "CircuitGraph":
        """A circuit of these edges; its nodes are their endpoints plus `nodes`.

        Annotations, if given, are kept for the circuit's edges only, read-only.
        """
        edge_set = frozenset(edges)
        node_set = set(nodes)
        for e in edge_set:
            node_set.add(e.sender)
            node_set.add(e.receiver)
        notes = kwargs.pop("annotations", None) or {}
        kept = MappingProxyType({e: a for e, a in notes.items() if e in edge_set})  # type: ignore[union-attr]
        return CircuitGraph(frozenset(node_set), edge_set, annotations=kept, **kwargs)  # type: ignore[arg-type]

    # -- set algebra -----------------------------------------------------------------
    # A union keeps every node of both sides; every other operation keeps the nodes
    # that still have an edge (a node that lost all its edges is no longer in the circuit).
    def union(self, other: "CircuitGraph") -> "CircuitGraph":
        notes = {**other.annotations, **self.annotations}
        return self._derive(self.nodes | other.nodes, self.edges | other.edges, notes, other)

    def intersection(self, other: "CircuitGraph") -> "CircuitGraph":
        edges = self.edges & other.edges
        return self._derive(_endpoints(edges), edges, self.annotations, other)

    def difference(self, other: "CircuitGraph") -> "CircuitGraph":
        edges = self.edges - other.edges
        return self._derive(_endpoints(edges), edges, self.annotations, other)

    def without_nodes(self, nodes: Iterable[Node]) -> "CircuitGraph":
        """Remove these nodes and every edge touching them."""
        drop = frozenset(nodes)
        edges = frozenset(e for e in self.edges if e.sender not in drop and e.receiver not in drop)
        return self._derive(_endpoints(edges), edges, self.annotations)

    def without_inputs(self, ports: Iterable[tuple[Node, str | None]]) -> "CircuitGraph":
        """Remove the edges into these receiver channels (`L9.H6.q`)."""
        drop = frozenset(ports)
        edges = frozenset(e for e in self.edges if (e.receiver, e.channel) not in drop)
        return self._derive(_endpoints(edges), edges, self.annotations)

    def restricted_to(self, nodes: Iterable[Node]) -> "CircuitGraph":
        """The subgraph induced by these nodes."""
        keep = frozenset(nodes)
        edges = frozenset(e for e in self.edges if e.sender in keep and e.receiver in keep)
        return self._derive(_endpoints(edges), edges, self.annotations)

    __or__ = union
    __and__ = intersection
    __sub__ = difference

    def _derive(self, nodes: frozenset[Node], edges: frozenset[Edge], notes: Mapping[Edge, Annotations],
                other: "CircuitGraph | None" = None) -> "CircuitGraph":
        level = "node" if self.level == "node" and (other is None or other.level == "node") else "edge"
        kept = {e: a for e, a in notes.items() if e in edges}
        return CircuitGraph(nodes, edges, self.model or (other.model if other else None), "", level,
                            None, MappingProxyType(kept))

    def renamed(self, name: str, doc: str | None = None) -> "CircuitGraph":
        return CircuitGraph(self.nodes, self.edges, self.model, name, self.level, doc, self.annotations)

    # -- views ---------------------------------------------------------------------------
    def sorted_edges(self) -> list[Edge]:
        return sorted(self.edges, key=Edge.sort_key)

    def sorted_nodes(self) -> list[Node]:
        return sorted(self.nodes, key=Node.sort_key)

    def canonical_text(self) -> str:
        """One line per node and edge in a fixed order: what the content hash covers."""
        lines = [f"model {self.model or '-'}"]
        lines += [f"node {n}" for n in self.sorted_nodes()]
        lines += [f"edge {e}" for e in self.sorted_edges()]
        return "\n".join(lines) + "\n"

    @property
    def content_hash(self) -> str:
        """sha256 of `canonical_text()`: equal circuits have equal hashes however written."""
        return hashlib.sha256(self.canonical_text().encode()).hexdigest()

    def to_networkx(self):  # -> networkx.MultiDiGraph
        """A `networkx.MultiDiGraph`: node keys are `str(node)`, one edge per channel/position
        (positions as written, `S1+1`)."""
        import networkx as nx

        g = nx.MultiDiGraph(name=self.name, model=self.model, level=self.level)
        for n in self.sorted_nodes():
            g.add_node(str(n), kind=n.kind, layer=n.layer if n.kind in ("head", "mlp") else None,
                       head=n.head if n.kind == "head" else None)
        for e in self.sorted_edges():
            position = None if e.position is None else str(e.position)
            g.add_edge(str(e.sender), str(e.receiver), key=(e.channel, position), channel=e.channel,
                       position=position, **dict(self.annotations.get(e, {})))
        return g

    def __len__(self) -> int:
        return len(self.edges)

    def __str__(self) -> str:
        return f"circuit {self.name or '<anonymous>'}: {len(self.nodes)} nodes, {len(self.edges)} edges"

    def __repr__(self) -> str:
        """Short: name, model and size (the default would print every node and edge)."""
        model = f", model={self.model!r}" if self.model else ""
        return f"CircuitGraph({self.name or '<anonymous>'!r}{model}, {len(self.nodes)} nodes, {len(self.edges)} edges)"

    def _repr_svg_(self) -> str | None:
        """The circuit drawn, in a notebook (present.notebook draws it with Graphviz)."""
        from .display import shown

        return shown(self, "svg")


def _endpoints(edges: Iterable[Edge]) -> frozenset[Node]:
    out: set[Node] = set()
    for e in edges:
        out.add(e.sender)
        out.add(e.receiver)
    return frozenset(out)

"""Static graph analysis of a circuit with networkx: what reaches `logits`, what `embed`
feeds, the edges a circuit cannot use, pruning them, and the paths between two nodes.

Why it matters (docs/evaluation.md, "Semantics"): a receiver R reads

    input_R = abl_input_R + sum over circuit edges (S -> R) of (out_S - abl_S)

so a node changes the metric only through circuit edges, and

- **dead ends**: a node with no path to `logits` through the circuit changes nothing
  the metric reads, under every ablation: the edges into it and out of it can be removed
  without changing m(C) at all;
- **unfed nodes**: a node with no path from `embed` through the circuit computes on the
  all-ablated input only. Under resample ablation that input is the corrupted run's, so
  the node's output is its ablated value and every edge out of it carries exactly zero.
  Under mean or zero ablation it is not: the node computes f(mean input) or f(constants),
  which differs from the mean of f or from 0, so its edges carry a term that is the same
  for every prompt (a constant, not nothing). Removing those edges is exact under
  resample ablation only; `prune(..., unfed=False)` keeps them.

Positions are not analysed: a path counts whatever the positions of its edges (an edge
into `logits` at a position other than END carries nothing, which this module does not
know). That errs on the safe side: only circuits with no path at all are flagged.

Graphs are `networkx.DiGraph`s on `Node` values, one arc per (sender, receiver) pair
whatever the channels; the circuit's edges give the channels of each hop. Under
grouped-query attention (`kv_group` > 1 query heads per key/value head) an edge into a
group's shared key or value input, written with the group's first head (`L3.H0.k`),
reaches every head of the group (docs/models.md): it gets an arc to each, and the first
head is a node of its own only where it has edges of its own. Core code: no torch, no
lang.

>>> from circuitlang.core.graph import EMBED, LOGITS, Edge, Node, CircuitGraph
>>> a, b = Node.attn(0, 1), Node.attn(1, 2)
>>> g = CircuitGraph.from_edges([Edge(EMBED, b, "q"), Edge(b, LOGITS), Edge(a, b, "k"), Edge(EMBED, a, "v")])
>>> sorted(map(str, unusable_edges(g)))
[]
>>> g2 = CircuitGraph.from_edges([Edge(EMBED, b, "q"), Edge(b, LOGITS), Edge(a, b, "k")])
>>> [str(n) for n in unfed_nodes(g2)], sorted(map(str, unusable_edges(g2)))
(['L0.H1'], ['L0.H1 -> L1.H2.k'])
>>> sorted(map(str, unusable_edges(g2, unfed=False)))
[]
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import islice
from typing import Iterable

from .graph import EMBED, LOGITS, CircuitGraph, Edge, Node


# The ablations under which a node on the all-ablated input computes exactly its ablated
# value (the ablated values are one consistent run of the model: the corrupted prompt's),
# so that edges out of nodes no path from `embed` feeds carry nothing.
UNFED_EXACT = frozenset({"resample"})


def receivers(edge: Edge, kv_group: int = 1) -> tuple[Node, ...]:
    """The heads (or MLP, or `logits`) whose input the edge is a term of: every head of
    the key/value group for an edge into a shared key or value input, else its receiver."""
    r = edge.receiver
    if kv_group > 1 and r.is_head and edge.channel in ("k", "v"):
        first = r.head - r.head % kv_group
        return tuple(Node.attn(r.layer, h) for h in range(first, first + kv_group))
    return (r,)


def digraph(graph: CircuitGraph, kv_group: int = 1):  # -> networkx.DiGraph
    """The circuit as a `networkx.DiGraph` on `Node`s: one arc per sender and receiver
    (channels and positions collapsed; `receivers` under grouped-query attention); every
    node of the circuit, isolated ones included."""
    import networkx as nx

    g = nx.DiGraph()
    g.add_nodes_from(graph.sorted_nodes())
    arcs = {(e.sender, r) for e in graph.edges for r in receivers(e, kv_group)}
    g.add_nodes_from(sorted({r for _, r in arcs} - set(graph.nodes), key=Node.sort_key))
    g.add_edges_from(sorted(arcs, key=_pair_key))
    return g


def _pair_key(pair: tuple[Node, Node]) -> tuple:
    return (pair[0].sort_key(), pair[1].sort_key())


def _with_edges(graph: CircuitGraph, kv_group: int = 1) -> set[Node]:
    """The nodes with edges of their own: senders, and receivers of an input of their own
    (not the first head of a key/value group only named by its shared input)."""
    return {e.sender for e in graph.edges} | {e.receiver for e in graph.edges if len(receivers(e, kv_group)) == 1}


def reaching_logits(graph: CircuitGraph, g=None) -> frozenset[Node]:
    """The nodes with a path to `logits` through the circuit (`logits` itself included when
    it is in the circuit); `g` is the circuit's `digraph` if already built."""
    import networkx as nx

    g = digraph(graph) if g is None else g
    return frozenset(nx.ancestors(g, LOGITS) | {LOGITS}) if LOGITS in g else frozenset()


def fed_by_embed(graph: CircuitGraph, g=None) -> frozenset[Node]:
    """The nodes with a path from `embed` through the circuit (`embed` included when it is
    in the circuit)."""
    import networkx as nx

    g = digraph(graph) if g is None else g
    return frozenset(nx.descendants(g, EMBED) | {EMBED}) if EMBED in g else frozenset()


def dead_ends(graph: CircuitGraph, g=None, kv_group: int = 1) -> list[Node]:
    """Nodes with edges whose output cannot reach `logits` through the circuit, in order of
    computation (isolated nodes are left out: they have no edges to remove)."""
    reach = reaching_logits(graph, digraph(graph, kv_group) if g is None else g)
    return sorted((n for n in _with_edges(graph, kv_group) if n not in reach), key=Node.sort_key)


def unfed_nodes(graph: CircuitGraph, g=None, kv_group: int = 1) -> list[Node]:
    """Nodes with edges that no path from `embed` feeds through the circuit, in order of
    computation: they compute on the all-ablated input only."""
    fed = fed_by_embed(graph, digraph(graph, kv_group) if g is None else g)
    return sorted((n for n in _with_edges(graph, kv_group) if n not in fed), key=Node.sort_key)


def unusable_edges(graph: CircuitGraph, unfed: bool = True, kv_group: int = 1) -> frozenset[Edge]:
    """The edges that cannot change the metric: into an input no node that reaches `logits`
    reads (under every ablation), and, with `unfed`, out of a node no path from `embed`
    feeds (exact under resample ablation only; under mean and zero ablation such an edge
    carries a prompt-independent term)."""
    g = digraph(graph, kv_group)
    reach = reaching_logits(graph, g)
    fed = fed_by_embed(graph, g) if unfed else None
    return frozenset(e for e in graph.edges
                     if not any(r in reach for r in receivers(e, kv_group))
                     or (fed is not None and e.sender not in fed))


def prune(graph: CircuitGraph, unfed: bool = True, kv_group: int = 1) -> CircuitGraph:
    """The circuit without `unusable_edges`, keeping its name, doc and the annotations of
    the edges kept. With `unfed`, what is left is exactly the edges on some path from
    `embed` to `logits`. Removing edges into dead ends changes no node that reaches
    `logits`, so one pass suffices."""
    drop = unusable_edges(graph, unfed, kv_group)
    if not drop:
        return graph
    kept = graph - CircuitGraph.from_edges(drop)
    return kept.renamed(graph.name, graph.doc)


# -- paths ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Hop:
    """One step of a path: into `receiver` through these circuit edges (one per channel and
    position by which the previous node feeds it)."""

    receiver: Node
    edges: tuple[Edge, ...]

    def __str__(self) -> str:
        ends = []
        for e in self.edges:
            end = e.target[len(str(e.receiver)):].lstrip(".")
            ends.append(end if e.receiver == self.receiver else f"{end} (shared: {e.target})")
        ends = list(dict.fromkeys(ends))
        if ends == [""]:
            return str(self.receiver)
        joiner = ", " if any(" " in end for end in ends) else ","
        return f"{self.receiver}.{ends[0]}" if len(ends) == 1 else f"{self.receiver}.{{{joiner.join(ends)}}}"


@dataclass(frozen=True)
class PathListing:
    """Paths from one node to another through a circuit, shortest first.

    `count` is the number of node paths, `edge_count` the number of edge paths (a hop
    through q, k and v counts three times); `paths` holds at most `limit` of them.
    """

    source: Node
    target: Node
    count: int
    edge_count: int
    paths: tuple[tuple[Hop, ...], ...]
    limit: int

    @property
    def truncated(self) -> bool:
        return len(self.paths) < self.count

    def text(self, path: tuple[Hop, ...]) -> str:
        return " -> ".join([str(self.source), *(str(h) for h in path)])


def _hops(graph: CircuitGraph, kv_group: int) -> dict[tuple[Node, Node], list[Edge]]:
    """The circuit's edges by (sender, receiving node), in canonical order."""
    out: dict[tuple[Node, Node], list[Edge]] = {}
    for e in graph.sorted_edges():
        for r in receivers(e, kv_group):
            out.setdefault((e.sender, r), []).append(e)
    return out


def _between(g, source: Node, target: Node):
    """The sub-DAG of `g` of the nodes on some path from `source` to `target` (empty if none),
    built in order of computation so that a depth-first search lists paths in that order."""
    import networkx as nx

    out = nx.DiGraph()
    if source not in g or target not in g:
        return out
    keep = (nx.descendants(g, source) | {source}) & (nx.ancestors(g, target) | {target})
    if source in keep and target in keep:
        out.add_nodes_from(sorted(keep, key=Node.sort_key))
        out.add_edges_from(sorted(((a, b) for a, b in g.edges if a in keep and b in keep), key=_pair_key))
    return out


def count_paths(graph: CircuitGraph, source: Node, target: Node, kv_group: int = 1) -> tuple[int, int]:
    """(node paths, edge paths) from `source` to `target`, counted over networkx's
    topological order: exact, without listing them (there can be astronomically many)."""
    return _count(_between(digraph(graph, kv_group), source, target), _hops(graph, kv_group), source, target)


def _count(g, hops: dict[tuple[Node, Node], list[Edge]], source: Node, target: Node) -> tuple[int, int]:
    import networkx as nx

    if source not in g:
        return 0, 0
    if source == target:
        return 1, 1
    nodes, edges = {source: 1}, {source: 1}
    for n in nx.topological_sort(g):
        for m in g.successors(n):
            nodes[m] = nodes.get(m, 0) + nodes.get(n, 0)
            edges[m] = edges.get(m, 0) + edges.get(n, 0) * len(hops[(n, m)])
    return nodes.get(target, 0), edges.get(target, 0)


def find_paths(graph: CircuitGraph, source: Node, target: Node, limit: int = 50, kv_group: int = 1) -> PathListing:
    """The paths from `source` to `target` through the circuit, shortest first (ties in
    order of computation), at most `limit`, with the total counts.

    Paths of each length are listed with `networkx.all_simple_paths` on the sub-DAG of
    nodes that lie on some source-target path, one length at a time and only until `limit`
    are found: a circuit with millions of paths is never enumerated in full.
    """
    import networkx as nx

    g = _between(digraph(graph, kv_group), source, target)
    hops = _hops(graph, kv_group)
    count, edge_count = _count(g, hops, source, target)
    found: list[tuple[Node, ...]] = []
    if count and source != target:
        length = nx.shortest_path_length(g, source, target)
        while len(found) < min(limit, count) and length < g.number_of_nodes():
            exact = (tuple(p) for p in nx.all_simple_paths(g, source, target, cutoff=length) if len(p) == length + 1)
            found += islice(exact, limit - len(found))
            length += 1
    paths = tuple(tuple(Hop(b, tuple(hops[(a, b)])) for a, b in zip(p, p[1:])) for p in found[:limit])
    return PathListing(source, target, count, edge_count, paths, limit)


def node_named(graph: CircuitGraph, text: str) -> Node | None:
    """The circuit's node written `text` (`embed`, `L1.H2`, `L0.MLP`, `logits`), or None."""
    return next((n for n in graph.nodes if str(n) == text.strip()), None)


def names(nodes: Iterable[Node]) -> list[str]:
    """Nodes as text, in order of computation."""
    return [str(n) for n in sorted(nodes, key=Node.sort_key)]


__all__ = ["UNFED_EXACT", "receivers", "digraph", "reaching_logits", "fed_by_embed", "dead_ends", "unfed_nodes",
           "unusable_edges", "prune", "Hop", "PathListing", "count_paths", "find_paths", "node_named", "names"]

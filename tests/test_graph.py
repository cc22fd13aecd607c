"""CircuitGraph: set-algebra laws (hypothesis), content hash, writer round trip, networkx view."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

import circuitlang as cl
from circuitlang.core.graph import EMBED, LOGITS, CircuitGraph, Edge, Node
from circuitlang.core.models import KNOWN_SHAPES
from circuitlang.core.positions import Position
from circuitlang.core.shapes import feeds
from circuitlang.lang.write import graph_to_circ
from tests.conftest import examples

SHAPE = KNOWN_SHAPES["attn-only-2l"]
NODES = SHAPE.all_nodes()
ALL_EDGES = [
    Edge(s, r, ch, pos)
    for r in NODES if r.is_receiver
    for s in NODES if s.is_sender and feeds(s, r, SHAPE)
    for ch in (("q", "k", "v") if r.is_head else (None,))
    for pos in (None, Position("END"))
]

circuits = st.builds(
    lambda edges: CircuitGraph.from_edges(edges, model="attn-only-2l"),
    st.lists(st.sampled_from(ALL_EDGES), max_size=25),
)


@given(circuits, circuits)
def test_union_and_intersection_commute(a: CircuitGraph, b: CircuitGraph) -> None:
    assert a | b == b | a
    assert a & b == b & a


@given(circuits, circuits, circuits)
def test_union_and_intersection_associate_and_distribute(a, b, c) -> None:
    assert (a | b) | c == a | (b | c)
    assert ((a & b) & c).edges == (a & (b & c)).edges
    assert (a & (b | c)).edges == ((a & b) | (a & c)).edges


@given(circuits, circuits)
def test_difference_and_bounds(a: CircuitGraph, b: CircuitGraph) -> None:
    assert not (a - a).edges
    assert a.edges <= (a | b).edges
    assert (a & b).edges <= a.edges
    assert ((a - b) | (a & b)).edges == a.edges
    assert not ((a - b) & b).edges
    assert a | a == a


@given(circuits)
def test_nodes_cover_edge_endpoints(a: CircuitGraph) -> None:
    for derived in (a & a, a - CircuitGraph.from_edges([]), a.without_nodes([Node.attn(0, 0)])):
        assert {e.sender for e in derived.edges} | {e.receiver for e in derived.edges} <= derived.nodes


@given(st.lists(st.sampled_from(ALL_EDGES), max_size=25), st.randoms())
def test_content_hash_ignores_order_and_name(edges: list[Edge], rng) -> None:
    shuffled = list(edges)
    rng.shuffle(shuffled)
    a = CircuitGraph.from_edges(edges, model="m", name="a")
    b = CircuitGraph.from_edges(shuffled, model="m", name="b")
    assert a.content_hash == b.content_hash
    assert a == b


def test_content_hash_sees_model_and_edges() -> None:
    edge = Edge(EMBED, LOGITS)
    base = CircuitGraph.from_edges([edge], model="gpt2")
    assert base.content_hash != CircuitGraph.from_edges([edge], model="gpt2-medium").content_hash
    assert base.content_hash != CircuitGraph.from_edges([edge, Edge(Node.attn(0, 0), LOGITS)],
                                                       model="gpt2").content_hash


@examples(60, deadline_ms=None)
@given(st.lists(st.sampled_from(ALL_EDGES), min_size=1, max_size=25),
       st.lists(st.floats(-5, 5, allow_nan=False), min_size=25, max_size=25))
def test_written_circuit_compiles_back_to_the_same_graph(edges: list[Edge], scores: list[float]) -> None:
    notes = {e: {"score": s} for e, s in zip(sorted(set(edges), key=Edge.sort_key), scores)}
    graph = CircuitGraph(CircuitGraph.from_edges(edges).nodes, frozenset(edges), "attn-only-2l", "found",
                         annotations=notes)
    text = graph_to_circ(graph)
    result = cl.compile_text(text, "found.circ")
    assert result.ok, result.diagnostics
    back = result.circuits["found"]
    assert back == graph
    assert {e: dict(n) for e, n in back.annotations.items()} == notes


def test_networkx_view_has_one_edge_per_channel_and_position() -> None:
    graph = cl.compile_text("model gpt2\ncircuit c { L0.H0 -> L1.H0, logits @END }").circuits["c"]
    nx_graph = graph.to_networkx()
    assert nx_graph.number_of_edges() == len(graph.edges) == 4
    assert nx_graph.nodes["L0.H0"]["kind"] == "head"
    assert {d["channel"] for _, _, d in nx_graph.edges(data=True)} == {"q", "k", "v", None}

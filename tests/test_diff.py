"""Tests for circuitlang.present.diff: set differences in a stable order, text and JSON output, pairing."""

from __future__ import annotations

import json

import circuitlang
from circuitlang.core.graph import EMBED, LOGITS, CircuitGraph, Edge, Node
from circuitlang.core.positions import Position
from circuitlang.present.diff import CircuitDiff, diff_graphs, pair_circuits

H96, H99, H100, M8 = Node.attn(9, 6), Node.attn(9, 9), Node.attn(10, 0), Node.mlp(8)
A = CircuitGraph.from_edges([
    Edge(EMBED, M8), Edge(M8, H96, "q", Position("END")), Edge(M8, H96, "k"), Edge(H96, LOGITS), Edge(M8, LOGITS),
])
B = CircuitGraph.from_edges([
    Edge(EMBED, M8), Edge(M8, H96, "q"), Edge(M8, H99, "q", Position("END")), Edge(H99, LOGITS), Edge(H100, LOGITS),
    Edge(M8, LOGITS),
])


def test_diff_of_a_circuit_with_itself_is_empty():
    d = diff_graphs(A, A)
    assert d.is_empty
    assert d.to_text().splitlines()[-1] == "no differences"
    again = CircuitGraph.from_edges(reversed(sorted(A.edges)))
    assert diff_graphs(A, again).is_empty


def test_counts_and_contents_on_a_hand_made_example():
    d = diff_graphs(A, B, "a.circ:ioi", "b.circ:ioi")
    assert d.nodes_added == (H99, H100)
    assert d.nodes_removed == ()
    assert set(d.edges_removed) == {Edge(M8, H96, "q", Position("END")), Edge(M8, H96, "k"), Edge(H96, LOGITS)}
    assert set(d.edges_added) == {Edge(M8, H96, "q"), Edge(M8, H99, "q", Position("END")), Edge(H99, LOGITS),
                                  Edge(H100, LOGITS)}
    assert d.summary() == "2 nodes added, 0 removed; 4 edges added, 3 removed"


def test_node_removal_and_singular_summary():
    d = diff_graphs(CircuitGraph.from_edges([Edge(H96, LOGITS)]), CircuitGraph.from_edges([Edge(H99, LOGITS)]))
    assert d.nodes_removed == (H96,) and d.nodes_added == (H99,)
    assert d.summary() == "1 node added, 1 removed; 1 edge added, 1 removed"


def test_diff_is_antisymmetric():
    forward, backward = diff_graphs(A, B, "a", "b"), diff_graphs(B, A, "b", "a")
    assert forward.nodes_added == backward.nodes_removed and forward.nodes_removed == backward.nodes_added
    assert forward.edges_added == backward.edges_removed and forward.edges_removed == backward.edges_added


def test_tuples_are_sorted_by_the_ir_sort_keys():
    d = diff_graphs(CircuitGraph.from_edges([]), B)
    assert list(d.edges_added) == sorted(B.edges, key=Edge.sort_key)
    assert list(d.nodes_added) == sorted(B.nodes, key=Node.sort_key)


def test_text_has_headers_markers_and_summary():
    text = diff_graphs(A, B, "a.circ:ioi", "b.circ:ioi").to_text()
    lines = text.splitlines()
    assert lines[:2] == ["--- a.circ:ioi", "+++ b.circ:ioi"]
    assert "+ node L9.H9" in lines and "+ node L10.H0" in lines
    assert "- L9.H6 -> logits" in lines and "+ L9.H9 -> logits" in lines
    assert "- L8.MLP -> L9.H6.q @END" in lines and "+ L8.MLP -> L9.H6.q" in lines
    assert lines[-1] == "2 nodes added, 0 removed; 4 edges added, 3 removed"
    body = lines[2:-1]
    assert all(ln[:2] in ("- ", "+ ") for ln in body) and len(body) == 2 + 4 + 3
    assert body.index("+ node L10.H0") < body.index("- L9.H6 -> logits")  # nodes before edges


def test_json_round_trip_keeps_counts_and_strings():
    d = diff_graphs(A, B, "a.circ:ioi", "b.circ:ioi")
    data = json.loads(json.dumps(d.to_json()))
    assert data["a"] == "a.circ:ioi" and data["b"] == "b.circ:ioi"
    assert data["counts"] == {"nodes_added": 2, "nodes_removed": 0, "edges_added": 4, "edges_removed": 3}
    assert {k: len(data[k]) for k in data["counts"]} == data["counts"]
    assert data["edges_removed"] == [str(e) for e in d.edges_removed]
    assert "L10.H0" in data["nodes_added"]


def test_diff_is_frozen_and_compares_by_value():
    d = diff_graphs(A, B)
    assert d == diff_graphs(A, B)
    assert isinstance(d, CircuitDiff)
    try:
        d.name_a = "x"  # type: ignore[misc]
    except AttributeError:
        pass
    else:
        raise AssertionError("CircuitDiff should be frozen")


def test_compiled_circuits_diff():
    a = circuitlang.compile_text("model gpt2\ncircuit c { embed -> L0.H1.q \n L0.H1 -> logits }").circuits["c"]
    b = circuitlang.compile_text("model gpt2\ncircuit c { embed -> L0.H1.k \n L0.H1 -> logits }").circuits["c"]
    d = diff_graphs(a, b)
    assert [str(e) for e in d.edges_removed] == ["embed -> L0.H1.q"]
    assert [str(e) for e in d.edges_added] == ["embed -> L0.H1.k"]
    assert not d.nodes_added and not d.nodes_removed


def test_pairing_by_name_with_leftovers():
    a = {"ioi": A, "ind": A, "old": A}
    b = {"new": B, "ioi": B, "ind": B}
    assert pair_circuits(a, b) == [("ioi", "ioi"), ("ind", "ind"), ("old", None), (None, "new")]


def test_single_circuits_pair_whatever_their_names():
    assert pair_circuits({"acdc": A}, {"hanna": B}) == [("acdc", "hanna")]
    assert pair_circuits({"x": A}, {"y": B, "z": B}) == [("x", None), (None, "y"), (None, "z")]
    assert pair_circuits({}, {"y": B}) == [(None, "y")]
    assert pair_circuits({}, {}) == []

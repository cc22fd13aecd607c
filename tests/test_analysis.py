"""Static graph analysis (circuitlang.core.analysis) and its warnings W311/W312
(circuitlang.lang.analysis): reachability, unusable edges, pruning, paths; grouped-query
attention; the standard library stays free of these warnings. No model, no torch."""

from __future__ import annotations

import random
from pathlib import Path

import networkx as nx
import pytest

import circuitlang as cl
from circuitlang.core import analysis as A
from circuitlang.core.graph import EMBED, LOGITS, CircuitGraph, Edge, Node
from circuitlang.core.models import KNOWN_SHAPES
from circuitlang.core.shapes import all_edges

ROOT = Path(__file__).resolve().parent.parent
H = Node.attn


def _graph(*edges: Edge, **kwargs) -> CircuitGraph:
    return CircuitGraph.from_edges(edges, **kwargs)


def _compile(text: str) -> cl.Compiled:
    return cl.compile_text(text, path="t.circ", check_files=False)


def _codes(result: cl.Compiled, *codes: str) -> list[tuple[int, int, str, str]]:
    return [(d.span.line, d.span.column, d.code, d.message) for d in result.diagnostics if d.code in codes]


# ---- core: reachability and pruning -------------------------------------------------------------

def test_dead_ends_unfed_nodes_and_unusable_edges() -> None:
    used = [Edge(EMBED, H(0, 1), "v"), Edge(H(0, 1), H(1, 2), "k"), Edge(EMBED, H(1, 2), "q"), Edge(H(1, 2), LOGITS)]
    dead = [Edge(EMBED, H(1, 0), "q"), Edge(H(0, 1), H(1, 0), "v")]  # L1.H0 feeds nothing
    unfed = [Edge(H(0, 3), H(1, 2), "v")]  # L0.H3 has no input in the circuit
    graph = _graph(*used, *dead, *unfed, annotations={used[0]: {"score": 0.5}}, name="c")
    assert A.dead_ends(graph) == [H(1, 0)]
    assert A.unfed_nodes(graph) == [H(0, 3)]
    assert A.reaching_logits(graph) == {EMBED, H(0, 1), H(0, 3), H(1, 2), LOGITS}
    assert A.fed_by_embed(graph) == {EMBED, H(0, 1), H(1, 0), H(1, 2), LOGITS}
    assert A.unusable_edges(graph, unfed=False) == frozenset(dead)
    assert A.unusable_edges(graph) == frozenset(dead + unfed)
    pruned = A.prune(graph)
    assert pruned.edges == frozenset(used) and pruned.name == "c" and pruned.annotations[used[0]] == {"score": 0.5}
    assert A.prune(graph, unfed=False).edges == frozenset(used + unfed)
    assert A.prune(pruned) is pruned  # nothing to remove: the same circuit


def test_pruned_circuit_is_exactly_the_edges_on_embed_to_logits_paths() -> None:
    """On random subsets of a model's edges: what `prune` keeps is what lies on a path
    from embed to logits, checked edge by edge with networkx's has_path; one pass suffices."""
    shape = KNOWN_SHAPES["attn-only-2l"]
    edges = all_edges(shape)
    rng = random.Random(0)
    for _ in range(50):
        graph = _graph(*rng.sample(edges, rng.randint(1, 60)))
        if rng.random() < 0.2:  # some without embed or without logits at all
            graph = graph.without_nodes([rng.choice([EMBED, LOGITS])])
        pruned = A.prune(graph)
        g = A.digraph(graph)
        ends = EMBED in g and LOGITS in g
        on_path = {e for e in graph.edges
                   if ends and nx.has_path(g, EMBED, e.sender) and nx.has_path(g, e.receiver, LOGITS)}
        assert pruned.edges == on_path
        assert A.prune(pruned).edges == pruned.edges
        assert not A.dead_ends(pruned) and not A.unfed_nodes(pruned)


def test_grouped_query_attention_edges_reach_every_head_of_the_group() -> None:
    """Under GQA (2 query heads per key/value head here) an edge into `L1.H0.k` is the
    shared key input of heads 0 and 1: it is usable when either reaches logits, and the
    group's first head is not a node of its own for it."""
    shared = Edge(H(0, 0), H(1, 0), "k")
    graph = _graph(Edge(EMBED, H(0, 0), "v"), shared, Edge(EMBED, H(1, 1), "q"), Edge(H(1, 1), LOGITS))
    assert A.receivers(shared, 2) == (H(1, 0), H(1, 1)) and A.receivers(shared) == (H(1, 0),)
    assert A.dead_ends(graph, kv_group=2) == [] and A.unusable_edges(graph, kv_group=2) == frozenset()
    # read without the shape, L1.H0 would feed nothing, and L0.H0 only it
    assert A.dead_ends(graph) == [H(0, 0), H(1, 0)] and A.unusable_edges(graph) == {shared, Edge(EMBED, H(0, 0), "v")}
    listing = A.find_paths(graph, H(0, 0), LOGITS, kv_group=2)
    assert [listing.text(p) for p in listing.paths] == ["L0.H0 -> L1.H1.k (shared: L1.H0.k) -> logits"]


# ---- core: paths ----------------------------------------------------------------------------------

def test_paths_of_the_induction_circuit() -> None:
    circuit = cl.load(ROOT / "stdlib/zoo/induction.circ").circuits["induction"]
    listing = A.find_paths(circuit, EMBED, LOGITS)
    assert (listing.count, listing.edge_count, listing.truncated) == (2, 5, False)
    assert [listing.text(p) for p in listing.paths] == [
        "embed -> L1.H1.{q,v} -> logits", "embed -> L0.H2.{q,k,v} -> L1.H1.k -> logits"]
    assert [str(e) for e in listing.paths[0][0].edges] == ["embed -> L1.H1.q", "embed -> L1.H1.v"]
    assert A.find_paths(circuit, LOGITS, EMBED).count == 0
    assert A.find_paths(circuit, H(0, 2), LOGITS).count == 1


def test_path_counts_match_networkx_enumeration_and_listings_are_shortest_first() -> None:
    shape = KNOWN_SHAPES["attn-only-3l"]
    edges = all_edges(shape)
    rng = random.Random(1)
    for _ in range(30):
        graph = _graph(*rng.sample(edges, rng.randint(5, 120)))
        g = A.digraph(graph)
        if EMBED not in g or LOGITS not in g:
            continue
        every = list(nx.all_simple_paths(g, EMBED, LOGITS))
        multiplicity = {}
        for e in graph.edges:
            multiplicity[(e.sender, e.receiver)] = multiplicity.get((e.sender, e.receiver), 0) + 1
        by_edges = sum(_product(multiplicity[(a, b)] for a, b in zip(p, p[1:])) for p in every)
        listing = A.find_paths(graph, EMBED, LOGITS, limit=7)
        assert (listing.count, listing.edge_count) == (len(every), by_edges)
        lengths = [len(p) for p in listing.paths]
        assert lengths == sorted(lengths) and len(listing.paths) == min(7, len(every))
        shortest = sorted(len(p) - 1 for p in every)[:len(lengths)]
        assert lengths == shortest


def _product(values) -> int:
    out = 1
    for v in values:
        out *= v
    return out


def test_paths_through_a_whole_model_are_counted_not_enumerated() -> None:
    """GPT-2 small, every edge: a path takes at most one of 12 heads per layer, then that
    layer's MLP or not: 13 x 2 = 26 node choices per layer, 26^12 paths; a head is entered
    through q, k or v, so by edges (1 + 36) x 2 = 74 per layer, 74^12."""
    full = _graph(*all_edges(KNOWN_SHAPES["gpt2"]))
    listing = A.find_paths(full, EMBED, LOGITS, limit=3)
    assert (listing.count, listing.edge_count) == (26 ** 12, 74 ** 12)
    assert listing.truncated and [listing.text(p) for p in listing.paths] == [
        "embed -> logits", "embed -> L0.H0.{q,k,v} -> logits", "embed -> L0.H1.{q,k,v} -> logits"]


# ---- lang: W311 and W312 ----------------------------------------------------------------------

def test_w311_and_w312_point_at_where_the_nodes_are_written() -> None:
    result = _compile("""model zoo:induction-2l
circuit induction {
    embed -> L0.H2.q, L0.H2.k, L0.H2.v
    L0.H2 -> L1.H1.k
    embed -> L1.H1.q, L1.H1.v
    L1.H1 -> logits
}
circuit broken {
    embed -> L1.H1.q, L1.H1.v
    L0.H2 -> L1.H1.k
    L0.H1 -> L1.H3.v
    L1.H1 -> logits
}
""")
    assert _codes(result, "W311", "W312") == [
        (10, 5, "W312", "no path from `embed` feeds `L0.H2` in circuit `broken`: it computes on the ablated "
                        "input only, so its edges carry nothing about the prompt"),
        (11, 5, "W311", "`L0.H1` has no path to `logits` in circuit `broken`: its edges cannot change the metric"),
        (11, 14, "W311", "`L1.H3` has no path to `logits` in circuit `broken`: its edges cannot change the metric"),
    ]
    assert result.ok


def test_whole_circuits_without_logits_or_embed_get_one_warning_on_their_name() -> None:
    result = _compile("model gpt2\ncircuit into { L0.H* -> L3.H0.q }\ncircuit movers { L9.H6, L9.H9 -> logits }\n")
    assert _codes(result, "W311", "W312") == [
        (2, 9, "W311", "circuit `into` has no edge into `logits`: none of its 12 edges can change the metric"),
        (3, 9, "W312", "circuit `movers` has no edge from `embed`: every node computes on the ablated input only, "
                       "so no edge carries anything about the prompt")]


def test_building_blocks_are_judged_in_the_circuits_that_use_them() -> None:
    text = """model gpt2
circuit part { L0.H1 -> L3.H0.q }
circuit whole {
    include part
    embed -> L0.H1.q, L3.H0.v
    L3.H0 -> logits
}
circuit unused_part { L0.H1 -> L3.H0.q }
"""
    assert [c[:3] for c in _codes(_compile(text), "W311", "W312")] == [(8, 9, "W311")]
    checked = _compile(text + "task t { data \"t.jsonl\" }\ncheck part on t { expect faithfulness >= 0.5 }\n")
    assert [c[:3] for c in _codes(checked, "W311", "W312")] == [(2, 9, "W311"), (8, 9, "W311")]


def test_node_level_circuits_files_with_errors_and_files_without_a_model_are_quiet() -> None:
    assert not _codes(_compile("model gpt2\ncircuit n { L9.H6, L9.H9 }\n"), "W311", "W312")
    broken = _compile("model gpt2\ncircuit c { L0.H1 -> L3.H0.q }\ncircuit d { L99.H0 -> logits }\n")
    assert not broken.ok and not _codes(broken, "W311", "W312")
    # without a model, grouped-query attention (which heads a k/v edge reaches) is unknown
    assert [d.code for d in _compile("circuit c { L0.H1 -> L3.H0.q }\n").diagnostics] == ["W213"]


def test_grouped_query_attention_shared_inputs_are_not_dead_ends() -> None:
    """gemma-2-2b: 2 query heads per key/value head; `L1.H1.k` is written `L1.H0.k` (W214)."""
    result = _compile("model google/gemma-2-2b\ncircuit c {\n    embed -> L0.H3.q, L0.H3.v, L1.H1.q\n"
                      "    L0.H3 -> L1.H1.k\n    L1.H1 -> logits\n}\n")
    assert {d.code for d in result.diagnostics} == {"W214"}


def test_the_standard_library_and_examples_have_no_w311_or_w312() -> None:
    files = sorted((ROOT / "stdlib").rglob("*.circ")) + sorted((ROOT / "examples").rglob("*.circ"))
    assert len(files) > 10
    found = [f"{d.span}: {d.code}" for f in files for d in cl.compile_file(f, check_files=False).diagnostics
             if d.code in ("W311", "W312")]
    assert not found


@pytest.mark.parametrize("name", ["W311", "W312"])
def test_codes_are_registered_as_warnings(name: str) -> None:
    from circuitlang.core.diagnostics import CODES

    assert CODES[name][0] == "warning" and CODES["E313"][0] == "error"

"""The GPT-2 circuits of the standard library (stdlib/gpt2/): IOI and Greater-Than.

Static: both files compile without diagnostics and are `circ fmt` fixed points; their
node and edge sets are counted by hand here, from the published head lists; `ioi_with_mlps`
is compared edge for edge with an independent re-implementation of auto-circuit's
`ioi_true_edges`; composition with the induction motif and the diff of the Greater-Than
variants come out as computed by hand. (tests/test_stdlib_sources.py re-implements ACDC's
and the authors' edge construction and compares the other circuits with it.) Generators:
the text prompts are deterministic and well formed, follow the sources' year distributions,
and every example prompt in the generators' docstrings is one they can make; the tokenizing
generators put every named position on the right token (with a small word-level tokenizer
standing in for GPT-2's) and refuse a model without a tokenizer. GPT-2 itself is needed only
by the `pretrained` test at the end.
"""

from __future__ import annotations

import math
import re
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import circuitlang as cl
from circuitlang.core.graph import EMBED, LOGITS, Edge, Node
from circuitlang.core.positions import Position
from circuitlang.eval.tasks.base import TaskError
from circuitlang.eval.tasks.registry import GENERATORS
from circuitlang.eval.tasks import stdlib as stdlib_tasks
from circuitlang.eval.tasks.stdlib import (
    greater_than,
    greater_than_data,
    greater_than_prompts,
    greater_than_years,
    ioi,
    ioi_data,
    ioi_prompts,
)
from circuitlang.lang.fmt import format_module
from circuitlang.lang.parse import parse_text
from circuitlang.present.diff import diff_graphs

ROOT = Path(__file__).resolve().parent.parent
IOI = ROOT / "stdlib/gpt2/ioi.circ"
GREATER_THAN = ROOT / "stdlib/gpt2/greater_than.circ"

# The published classes (Wang et al. 2022, as listed in ACDC's acdc/ioi/utils.py).
CLASSES = {
    "name_movers": [(9, 9), (9, 6), (10, 0)],
    "backup_name_movers": [(9, 0), (9, 7), (10, 1), (10, 2), (10, 6), (10, 10), (11, 2), (11, 9)],
    "negative_name_movers": [(10, 7), (11, 10)],
    "s_inhibition": [(7, 3), (7, 9), (8, 6), (8, 10)],
    "induction": [(5, 5), (5, 8), (5, 9), (6, 9)],
    "duplicate_token": [(0, 1), (0, 10), (3, 0)],
    "previous_token": [(2, 2), (4, 11)],
}
MOVERS = ["name_movers", "backup_name_movers", "negative_name_movers"]


def heads(*classes: str) -> set[Node]:
    return {Node.attn(layer, head) for c in classes for layer, head in CLASSES[c]}


@pytest.fixture(scope="module")
def ioi_file() -> cl.Compiled:
    return cl.compile_file(IOI)


@pytest.fixture(scope="module")
def gt_file() -> cl.Compiled:
    return cl.compile_file(GREATER_THAN)


# ---------------------------------------------------------------------------------
# Static
# ---------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [IOI, GREATER_THAN], ids=lambda p: p.name)
def test_compiles_without_diagnostics_and_is_a_fmt_fixed_point(path: Path) -> None:
    compiled = cl.compile_file(path)
    assert compiled.diagnostics == (), [str(d) for d in compiled.diagnostics]
    assert compiled.model == "gpt2"
    source = path.read_text(encoding="utf-8")
    module, diagnostics = parse_text(source, str(path))
    assert diagnostics == []
    assert format_module(module) == source


def test_ioi_groups_are_the_published_classes() -> None:
    text = "model gpt2\n\nimport stdlib.gpt2.ioi\n\n" + "\n".join(
        f"circuit {name} = ioi.{name}" for name in CLASSES) + "\ncircuit movers = ioi.movers\ncircuit all = ioi.heads\n"
    compiled = cl.compile_text(text, "groups.circ", base_dir=ROOT)
    assert compiled.diagnostics == ()
    for name in CLASSES:  # a group used as a circuit is its node-level circuit
        assert {n for n in compiled.circuits[name].nodes if n.is_head} == heads(name), name
    assert {n for n in compiled.circuits["movers"].nodes if n.is_head} == heads(*MOVERS)
    assert {n for n in compiled.circuits["all"].nodes if n.is_head} == heads(*CLASSES)
    assert len(heads(*CLASSES)) == 3 + 8 + 2 + 4 + 4 + 3 + 2 == 26


def test_ioi_nodes_are_the_26_heads_embed_and_logits(ioi_file: cl.Compiled) -> None:
    for name in ("ioi", "ioi_unpositioned"):
        assert ioi_file.circuits[name].nodes == heads(*CLASSES) | {EMBED, LOGITS}
    # Node level: the 26 heads and the 12 MLPs (the paper's knockout of the other 118 heads).
    mlps = {Node.mlp(i) for i in range(12)}
    assert ioi_file.circuits["ioi_nodes"].nodes == heads(*CLASSES) | mlps | {EMBED, LOGITS}
    assert ioi_file.circuits["ioi_acdc"].nodes == heads(*CLASSES) | mlps | {EMBED, LOGITS}
    assert ioi_file.circuits["ioi_nodes"].level == "node"


def test_ioi_edge_count_by_hand(ioi_file: cl.Compiled) -> None:
    counts = {
        "embed -> previous-token {q @S1+1, k @S1, v @S1}": 2 * 3,     # 2 heads x 3 channels
        "embed -> duplicate-token {q @S2, k @S1, v @S1}": 3 * 3,      # 3 heads x 3 channels
        "embed -> S-inhibition {q @END}": 4 * 1,                      # 4 heads x 1 channel
        "embed -> movers {k, v @IO}": (3 + 8 + 2) * 2,                # 13 movers x 2 channels
        "previous-token -> induction {k, v @S1+1}": 2 * 4 * 2,        # every pair is forward (L2/L4 -> L5/L6)
        "induction -> S-inhibition {k, v @S2}": 4 * 4 * 2,            # L5/L6 -> L7/L8
        "duplicate-token -> S-inhibition {k, v @S2}": 3 * 4 * 2,      # L0/L3 -> L7/L8
        "S-inhibition -> movers {q @END}": 4 * 13 * 1,                # L7/L8 -> L9..L11
        "movers -> logits @END": 13,
    }
    total = sum(counts.values())
    assert total == 6 + 9 + 4 + 26 + 16 + 32 + 24 + 52 + 13 == 182
    ioi_graph = ioi_file.circuits["ioi"]
    assert len(ioi_graph.edges) == total
    # ACDC's form: the same edges without positions, plus embed -> logits, which ACDC keeps.
    assert len(ioi_file.circuits["ioi_unpositioned"].edges) == total + 1
    strip = {Edge(e.sender, e.receiver, e.channel) for e in ioi_graph.edges}
    assert strip | {Edge(EMBED, LOGITS)} == set(ioi_file.circuits["ioi_unpositioned"].edges)
    assert Edge(EMBED, LOGITS) not in strip
    assert {str(e.position) for e in ioi_graph.edges} == {"S1+1", "S1", "S2", "END", "IO"}
    # Spot checks of channel and position.
    assert Edge(EMBED, Node.attn(2, 2), "q", Position("S1", 1)) in ioi_graph.edges
    assert Edge(EMBED, Node.attn(3, 0), "k", Position("S1")) in ioi_graph.edges
    assert Edge(Node.attn(4, 11), Node.attn(5, 5), "v", Position("S1", 1)) in ioi_graph.edges
    assert Edge(Node.attn(8, 10), Node.attn(11, 10), "q", Position("END")) in ioi_graph.edges
    assert Edge(Node.attn(10, 7), LOGITS, None, Position("END")) in ioi_graph.edges


def auto_circuit_ioi_true_edges() -> set[Edge]:
    """auto-circuit's ioi_true_edges(token_positions=True), written out independently.

    Per connection (15 of them, class by class as auto-circuit lists them): the senders are
    the class's heads (or embed) plus the MLPs of layers min_layer(sender class) ..
    max_layer(receiver class) - 1 (from 0 for embed; through 11 for logits, where
    auto-circuit's bound is the END token index, past the last layer); the receivers are
    the class's inputs at their positions plus those MLPs at every position of the
    connection; every (sender, receiver) pair that exists in GPT-2 is an edge.
    """
    conns = [
        ("INPUT", "previous_token", [("q", "S1+1"), ("k", "S1"), ("v", "S1")]),
        ("INPUT", "duplicate_token", [("q", "S2"), ("k", "S1"), ("v", "S1")]),
        ("INPUT", "s_inhibition", [("q", "END")]),
        ("INPUT", "negative_name_movers", [("k", "IO"), ("v", "IO")]),
        ("INPUT", "name_movers", [("k", "IO"), ("v", "IO")]),
        ("INPUT", "backup_name_movers", [("k", "IO"), ("v", "IO")]),
        ("previous_token", "induction", [("k", "S1+1"), ("v", "S1+1")]),
        ("induction", "s_inhibition", [("k", "S2"), ("v", "S2")]),
        ("duplicate_token", "s_inhibition", [("k", "S2"), ("v", "S2")]),
        ("s_inhibition", "negative_name_movers", [("q", "END")]),
        ("s_inhibition", "name_movers", [("q", "END")]),
        ("s_inhibition", "backup_name_movers", [("q", "END")]),
        ("negative_name_movers", "OUTPUT", [(None, "END")]),
        ("name_movers", "OUTPUT", [(None, "END")]),
        ("backup_name_movers", "OUTPUT", [(None, "END")]),
    ]

    def layer(node: Node) -> int:
        return node.layer

    def exists(sender: Node, receiver: Node) -> bool:  # GPT-2: sequential attention then MLP
        if sender == EMBED or receiver == LOGITS:
            return True
        if sender.is_head and receiver.kind == "mlp":
            return sender.layer <= receiver.layer
        return sender.layer < receiver.layer

    edges: set[Edge] = set()
    for source, target, channels in conns:
        senders = [EMBED] if source == "INPUT" else sorted(heads(source))
        src_layer = 0 if source == "INPUT" else min(layer(n) for n in senders)
        if target == "OUTPUT":
            receivers = [(LOGITS, None, "END")]
            dst_layer = 12
        else:
            receivers = [(n, ch, pos) for n in sorted(heads(target)) for ch, pos in channels]
            dst_layer = max(layer(n) for n in heads(target))
        mlps = [Node.mlp(i) for i in range(src_layer, dst_layer)]
        receivers += [(m, None, pos) for m in mlps for _, pos in channels]
        for s in senders + mlps:
            for r, ch, pos in receivers:
                if s != r and exists(s, r):
                    edges.add(Edge(s, r, ch, Position.parse(pos)))
    return edges


def test_ioi_with_mlps_is_auto_circuits_edge_set(ioi_file: cl.Compiled) -> None:
    with_mlps = ioi_file.circuits["ioi_with_mlps"]
    assert set(with_mlps.edges) == auto_circuit_ioi_true_edges()
    assert len(with_mlps.edges) == 869
    assert ioi_file.circuits["ioi"].edges <= with_mlps.edges
    mlp_edges = [e for e in with_mlps.edges if "mlp" in (e.sender.kind, e.receiver.kind)]
    assert len(mlp_edges) == 869 - 182
    # Every MLP edge runs forward and at a position of its connection.
    assert all(str(e.position) in {"S1+1", "S1", "S2", "END", "IO"} for e in with_mlps.edges)


def test_one_pass_through_by_hand(ioi_file: cl.Compiled) -> None:
    # movers -> logits @END through MLPs 9-11: 13 movers -> logits, 3 MLPs -> logits, the
    # 4 layer-9 movers -> MLPs 9, 10, 11, the 6 layer-10 movers -> MLPs 10, 11, the 3
    # layer-11 movers -> MLP 11, and MLP 9 -> 10, 9 -> 11, 10 -> 11.
    assert len(ioi_file.circuits["via_movers_logits"].edges) == 13 + 3 + 4 * 3 + 6 * 2 + 3 * 1 + 3 == 46


def test_ioi_task_and_checks(ioi_file: cl.Compiled) -> None:
    task = ioi_file.tasks["ioi_abc"]
    assert task.data == ("ioi", {"n": 256})
    assert (task.ablation, task.metric) == ("resample", "logit_diff")
    assert set(task.positions) == {"IO", "S1", "S2", "END"}
    assert [(c.circuit.name, [e.kind for e in c.expects]) for c in ioi_file.checks] == [
        ("ioi_nodes", ["faithfulness"]), ("ioi_with_mlps", ["faithfulness"])]


ACDC_GT = {Node.attn(0, 1), Node.attn(0, 3), Node.attn(0, 5), Node.attn(5, 5), Node.attn(6, 1), Node.attn(6, 9),
           Node.attn(7, 10), Node.attn(8, 11), Node.attn(9, 1)} | {Node.mlp(i) for i in (0, 1, 2, 3, 8, 9, 10, 11)}
# The authors' END part (circuit_discovery.py lines 280-293) and the nodes their whole
# circuit adds at YY (lines 401-412).
HANNA_END = {Node.attn(5, 1), Node.attn(5, 5), Node.attn(6, 9), Node.attn(7, 10), Node.attn(8, 8), Node.attn(8, 11),
             Node.attn(9, 1)} | {Node.mlp(i) for i in (8, 9, 10, 11)}
HANNA_YY = {Node.attn(0, 1), Node.attn(0, 3), Node.attn(0, 5)} | {Node.mlp(i) for i in range(4)}


def test_greater_than_variants_are_the_published_node_sets(gt_file: cl.Compiled) -> None:
    acdc, hanna, end = gt_file.circuits["acdc"], gt_file.circuits["hanna"], gt_file.circuits["hanna_end"]
    assert acdc.level == end.level == "node" and hanna.level != "node"
    assert acdc.nodes == ACDC_GT | {EMBED, LOGITS}
    assert end.nodes == HANNA_END | {EMBED, LOGITS}
    assert hanna.nodes == HANNA_END | HANNA_YY | {EMBED, LOGITS}
    # ACDC's edges reach MLPs 4-7 as well (its MLP -> MLP and MLP -> query edges).
    assert gt_file.circuits["acdc_edges"].nodes == ACDC_GT | {Node.mlp(i) for i in range(4, 8)} | {EMBED, LOGITS}
    # Node level: every edge among the nodes, embed and logits, counted receiver by receiver
    # (senders: embed plus every earlier node; a head counts 3 times, for q, k and v).
    end_edges = (3 + 3          # L5.H1, L5.H5 <- embed
                 + 3 * 3        # L6.H9 <- embed, 5.1, 5.5
                 + 4 * 3        # L7.H10 <- embed, 5.1, 5.5, 6.9
                 + 5 * 3 * 2    # L8.H8, L8.H11 <- embed, 5.1, 5.5, 6.9, 7.10
                 + 7            # L8.MLP <- embed and the 6 heads of layers 5-8
                 + 8 * 3        # L9.H1 <- embed, 6 heads, MLP8
                 + 9 + 10 + 11  # MLPs 9, 10, 11 <- embed, 7 heads and the earlier late MLPs
                 + 12)          # logits <- embed, 7 heads, 4 MLPs
    assert len(end.edges) == end_edges == 130
    acdc_edges = (3 * 3                       # L0.H1, .H3, .H5 <- embed
                  + 4 + 5 + 6 + 7             # MLPs 0-3 <- embed, the 3 L0 heads and the earlier MLPs
                  + 8 * 3                     # L5.H5 <- embed, 3 L0 heads, MLPs 0-3
                  + 9 * 3 * 2                 # L6.H1, L6.H9 <- those and 5.5
                  + 11 * 3                    # L7.H10 <- ... and 6.1, 6.9
                  + 12 * 3                    # L8.H11 <- ... and 7.10
                  + 13                        # L8.MLP <- ... and 8.11
                  + 14 * 3                    # L9.H1 <- ... and MLP8
                  + 15 + 16 + 17              # MLPs 9-11
                  + 18)                       # logits <- embed, 9 heads, 8 MLPs
    assert len(acdc.edges) == acdc_edges == 299


def test_hanna_edge_count_by_hand(gt_file: cl.Compiled) -> None:
    hanna = gt_file.circuits["hanna"]
    counts = {
        "7 heads, 4 MLPs -> logits @END": 7 + 4,
        "heads -> MLPs 8-11 @END (9.1 only into 9-11)": 6 * 4 + 3,
        "MLP -> later MLP among 8-11 @END": 6,
        "embed -> heads 0.1, 0.3, 0.5 (q, k, v) and MLPs 0-3 @YY": 9 + 4,
        "head 0.1 -> MLPs 0-3, MLP -> later MLP among 0-3 @YY": 4 + 6,
        "7 lower nodes -> 7 heads' k and v @YY": 7 * 7 * 2,
        "embed -> 7 queries @END": 7,
        "earlier of the 7 heads -> queries @END (6.9: 2, 7.10: 3, 8.8: 4, 8.11: 4, 9.1: 6)": 2 + 3 + 4 + 4 + 6,
        "MLP 8 -> 9.1.q @END": 1,
    }
    assert sum(counts.values()) == 44 + 121 + 27 == 192 == len(hanna.edges)
    assert {str(e.position) for e in hanna.edges} == {"YY", "END"}
    # Nothing reads the heads' keys or values at END, nor the queries at YY.
    for e in hanna.edges:
        if e.receiver in HANNA_END and e.receiver.is_head:
            assert (e.channel == "q") == (str(e.position) == "END"), e
    # The direct path embed -> heads at YY is not in it (circuit_discovery.py line 414).
    assert not [e for e in hanna.edges if e.sender == EMBED and e.receiver in HANNA_END and e.channel != "q"]


def test_greater_than_diff(gt_file: cl.Compiled) -> None:
    diff = diff_graphs(gt_file.circuits["acdc"], gt_file.circuits["hanna"], "acdc", "hanna")
    assert set(diff.nodes_added) == {Node.attn(5, 1), Node.attn(8, 8)}
    assert set(diff.nodes_removed) == {Node.attn(6, 1)}
    # The edges of `hanna` carry positions, those of `acdc` do not: none is shared.
    assert diff.counts()["edges_added"] == 192 and diff.counts()["edges_removed"] == 299
    diff = diff_graphs(gt_file.circuits["acdc_edges"], gt_file.circuits["hanna"], "acdc_edges", "hanna")
    assert set(diff.nodes_removed) == {Node.attn(6, 1)} | {Node.mlp(i) for i in range(4, 8)}
    task = gt_file.tasks["years_01"]
    assert task.data == ("greater_than", {"n": 256}) and set(task.positions) == {"YY", "END"}
    task = gt_file.tasks["years_01_acdc"]
    assert task.data == ("greater_than", {"n": 256, "source": "acdc"}) and set(task.positions) == {"YY", "END"}
    assert [(c.circuit.name, c.task.name) for c in gt_file.checks] == [("hanna", "years_01"),
                                                                       ("acdc_edges", "years_01_acdc")]


def test_compose_ioi_with_the_induction_motif() -> None:
    text = """model gpt2

import stdlib.gpt2.ioi
import stdlib.motifs.induction as m

circuit motif = m.induction(L5.H5, L6.H9)
circuit both = ioi.ioi | m.induction(L5.H5, L6.H9)
circuit free_motif = m.induction(L4.H11, L5.H5)
circuit both_free = ioi.ioi_unpositioned | m.induction(L4.H11, L5.H5)
circuit overlap = ioi.ioi_unpositioned & m.induction(L4.H11, L5.H5)
circuit no_overlap = ioi.ioi & m.induction(L5.H5, L6.H9)
"""
    compiled = cl.compile_text(text, "compose.circ", base_dir=ROOT)
    # `overlap` has no edge into logits on purpose (it is compared, not evaluated): a
    # warning about that (W311) is expected, nothing else.
    assert [str(d) for d in compiled.diagnostics if not (d.code == "W311" and "`overlap`" in d.message)] == []
    c = compiled.circuits
    # The motif: embed -> L5.H5 q, k, v (3); L5.H5 -> L6.H9.k (1); embed -> L6.H9 q, v (2);
    # L6.H9 -> logits (1).
    assert len(c["motif"].edges) == 3 + 1 + 2 + 1 == 7
    # Every edge of `ioi` has a position and no edge of the motif has one, and a position is
    # part of an edge's identity: the overlap is empty, 182 + 7 - 0.
    assert len(c["both"].edges) == 182 + 7 - 0
    assert c["both"].nodes == heads(*CLASSES) | {EMBED, LOGITS}  # L5.H5, L6.H9 are IOI heads already
    # Without positions, the motif on previous-token head 4.11 and induction head 5.5 shares
    # embed -> L4.H11 q, k, v (IOI's embed -> previous-token) and L4.H11 -> L5.H5.k (IOI's
    # previous-token -> induction): 183 + 7 - 4.
    assert len(c["free_motif"].edges) == 7
    assert len(c["both_free"].edges) == 183 + 7 - 4  # ioi_unpositioned has embed -> logits too
    assert not c["no_overlap"].edges
    assert c["overlap"].edges == {
        Edge(EMBED, Node.attn(4, 11), ch) for ch in "qkv"} | {Edge(Node.attn(4, 11), Node.attn(5, 5), "k")}


# ---------------------------------------------------------------------------------
# Prompt text (no tokenizer)
# ---------------------------------------------------------------------------------


def test_ioi_prompts_are_deterministic_and_well_formed() -> None:
    prompts = ioi_prompts(200, seed=3)
    assert prompts == ioi_prompts(200, seed=3)
    assert prompts != ioi_prompts(200, seed=4)
    names = set(ioi_data()["names"])
    orders = set()
    for p in prompts:
        clean, corrupt = p.clean.split(" "), p.corrupt.split(" ")
        w = p.words
        assert "[" not in p.clean + p.corrupt and p.clean.endswith(" to") and p.clean[0].isupper()
        assert clean[w["IO"]] == p.io and clean[w["S1"]] == clean[w["S2"]] == p.s and w["END"] == len(clean) - 1
        assert p.io != p.s and {p.io, p.s} <= names
        # ABC: three distinct names, none of them IO or S, at IO, S1, S2; the rest unchanged.
        abc = (corrupt[w["IO"]], corrupt[w["S1"]], corrupt[w["S2"]])
        assert abc == p.corrupt_names and len(set(abc)) == 3 and not set(abc) & {p.io, p.s} and set(abc) <= names
        assert len(corrupt) == len(clean)
        assert [i for i, (a, b) in enumerate(zip(clean, corrupt)) if a != b] == sorted(w[k] for k in ("IO", "S1", "S2"))
        # S2 comes last; ABBA names IO first, BABA names S first.
        assert w["S2"] > max(w["IO"], w["S1"])
        assert (w["IO"] < w["S1"]) == (p.order == "ABBA")
        orders.add(p.order)
        assert p.answer == " " + p.io and p.wrong == " " + p.s
    assert orders == {"ABBA", "BABA"}
    assert {p.template for p in prompts} == set(range(15))


def test_ioi_prompt_options() -> None:
    abba = ioi_prompts(20, seed=0, order="ABBA", templates=1)
    assert {p.order for p in abba} == {"ABBA"} and {p.template for p in abba} == {0}
    p = abba[0]
    assert re.fullmatch(r"Then, (\w+) and (\w+) went to the \w+\. (\w+) gave a \w+ to", p.clean)
    assert p.clean.startswith(f"Then, {p.io} and {p.s} went to the ")
    # The paper's running example is ABBA: "When Mary and John went to the store, John gave a drink to".
    five = ["Mary", "John", "Anna", "Paul", "Lisa"]
    assert all({q.io, q.s} <= set(five) for q in ioi_prompts(10, names=five))
    with pytest.raises(TaskError, match="order"):
        ioi_prompts(1, order="AB")
    with pytest.raises(TaskError, match="5 distinct names"):
        ioi_prompts(1, names=["Mary", "John", "Anna", "Paul"])
    with pytest.raises(TaskError, match="templates"):
        ioi_prompts(1, templates=16)


HANNA_TEXT = re.compile(r"The (\w+) lasted from the year (\d\d)(\d\d) to the year (\d\d)")
ACDC_TEXT = re.compile(r"The (\w+) lasted from the year (\d\d)(\d\d) to (\d\d)")


def test_greater_than_prompts_follow_the_authors_distribution_by_default() -> None:
    nouns = set(greater_than_data()["nouns"])
    prompts = greater_than_prompts(97 * 3, seed=1)
    assert prompts == greater_than_prompts(97 * 3, seed=1) and prompts != greater_than_prompts(97 * 3, seed=2)
    # Balanced as the authors' YearDataset: the k-th prompt's YY is the k-th of 02..98, in turn.
    assert [p.yy for p in prompts] == [2 + k % 97 for k in range(97 * 3)]
    # Start years from 1000-1899 (every century 10-18 is drawn from), each century's first and
    # last year dropped: without a tokenizer every year splits, so CC00 and CC99 go.
    assert {p.century for p in prompts} == set(range(10, 19))
    for p in prompts:
        m = HANNA_TEXT.fullmatch(p.clean)
        assert m and m.group(1) == p.noun in nouns and int(m.group(2)) == int(m.group(4)) == p.century
        assert int(m.group(3)) == p.yy and p.source == "hanna"
        assert p.corrupt == p.clean.replace(f" {p.year} ", f" {p.century}01 ")
        assert (p.answer, p.wrong) == (f"{p.yy + 1:02d}", f"{p.yy - 1:02d}")
        words = p.clean.split(" ")
        assert words[p.words["YY"]] == str(p.year) and p.words["END"] == len(words) - 1
    assert greater_than_years() == [cc * 100 + yy for cc in range(10, 19) for yy in range(2, 99)]


def test_greater_than_prompts_acdc_and_one_century() -> None:
    acdc = greater_than_prompts(400, seed=0, source="acdc")
    assert acdc == greater_than_prompts(400, seed=0, source="acdc")
    # ACDC: centuries 11-17, CC02..CC98 tested and each century's first and last dropped;
    # drawn uniformly (not in YY order), and the text ends "to CC".
    assert greater_than_years("acdc") == [cc * 100 + yy for cc in range(11, 18) for yy in range(3, 98)]
    assert {p.century for p in acdc} == set(range(11, 18)) and {p.yy for p in acdc} <= set(range(3, 98))
    assert [p.yy for p in acdc[:97]] != [2 + k for k in range(97)]
    for p in acdc:
        m = ACDC_TEXT.fullmatch(p.clean)
        assert m and int(m.group(2)) == int(m.group(4)) == p.century and p.source == "acdc"
        assert p.clean.split(" ")[p.words["YY"]] == str(p.year) and p.corrupt.endswith(f"{p.century}01 to {p.century}")
    one = greater_than_prompts(10, century=17)
    assert {p.century for p in one} == {17} and one[0].clean.endswith(" to the year 17")
    assert {p.year for p in greater_than_prompts(10, years=[1705, 1806])} == {1705, 1806}
    # The tokenizer's verdict on which years split: both sources drop each century's first
    # and last year that does.
    assert greater_than_years(century=17, splits=lambda year: year % 100 >= 40) == list(range(1741, 1799))
    assert greater_than_years("acdc", century=12, splits=lambda year: year % 2 == 0) == list(range(1204, 1297, 2))
    for bad in ({"years": [1701]}, {"years": [732]}, {"source": "wang"}, {"century": 7}, {"century": 17, "years": [1805]}):
        with pytest.raises(TaskError):
            greater_than_prompts(1, **bad)


def ioi_producible(text: str) -> bool:
    """Whether `ioi_prompts` can write `text`: one of the shipped templates in either order,
    with IO and S two different shipped names and a shipped place and object (the same one
    wherever the template repeats it)."""
    data = ioi_data()
    slots = {"[PLACE]": ("place", data["places"]), "[OBJECT]": ("obj", data["objects"])}
    for template in data["templates"]:
        pattern = re.escape(template)
        for slot, (group, words) in slots.items():
            pattern = pattern.replace(re.escape(slot), f"(?P<{group}>{'|'.join(words)})", 1)
            pattern = pattern.replace(re.escape(slot), f"(?P={group})")
        pattern = pattern.replace(re.escape("[S]"), r"(?P<s>\w+)", 1).replace(re.escape("[IO]"), r"(?P<io>\w+)")
        pattern = pattern.replace(re.escape("[S]"), r"(?P=s)")
        for order in (pattern, _swap_first_names(pattern)):  # BABA, ABBA
            m = re.fullmatch(order, text)
            if m and m["io"] != m["s"] and {m["io"], m["s"]} <= set(data["names"]):
                return True
    return False


def _swap_first_names(pattern: str) -> str:
    """The ABBA form of a BABA pattern: the first S slot and the IO slot trade places."""
    s_slot, io_slot = r"(?P<s>\w+)", r"(?P<io>\w+)"
    i, j = pattern.index(s_slot), pattern.index(io_slot)
    return pattern[:i] + io_slot + pattern[i + len(s_slot):j] + s_slot + pattern[j + len(io_slot):]


def greater_than_producible(text: str) -> bool:
    nouns = set(greater_than_data()["nouns"])
    for source, form in (("hanna", HANNA_TEXT), ("acdc", ACDC_TEXT)):
        m = form.fullmatch(text)
        if m and m.group(1) in nouns and m.group(2) == m.group(4):
            return int(m.group(2) + m.group(3)) in greater_than_years(source)
    return False


def _docstring_examples() -> list[str]:
    """The example prompts in the generators' docstrings: quoted text of six words or more."""
    import inspect

    docs = [inspect.getdoc(stdlib_tasks) or ""]
    docs += [inspect.getdoc(obj) or "" for _, obj in inspect.getmembers(stdlib_tasks)
             if (inspect.isfunction(obj) or inspect.isclass(obj)) and obj.__module__ == stdlib_tasks.__name__]
    quoted = re.findall(r'"([^"]+)"', " ".join(" ".join(d.split()) for d in docs))
    return sorted({q for q in quoted if len(q.split()) >= 6 and "{" not in q})


def test_docstring_examples_can_be_generated() -> None:
    examples = _docstring_examples()
    assert len(examples) >= 4, examples  # both IOI orders and both Greater-Than texts at least
    for text in examples:
        assert ioi_producible(text) or greater_than_producible(text), f"no generator makes {text!r}"
    # The check can fail: the paper's own running examples are not producible.
    assert not ioi_producible("When Mary and John went to the store, John gave a drink to")
    assert not greater_than_producible("The war lasted from the year 1732 to the year 17")
    assert ioi_producible("After Mary and John went to the store, John gave a drink to")
    assert not ioi_producible("After Mary and Mary went to the store, Mary gave a drink to")


# ---------------------------------------------------------------------------------
# Tokenizing generators
# ---------------------------------------------------------------------------------


class WordTokens:
    """A stand-in for a backend with a GPT-2-like tokenizer: a word keeps its leading space,
    punctuation is a token, a number is split in two-digit tokens (" 1732" -> " 17", "32"),
    and a word longer than 9 letters is split after 9 (so " Christopher" is two tokens and
    the IOI generator must skip it). Token ids are handed out on first sight."""

    PIECES = re.compile(r" ?[A-Za-z]{1,9}| ?\d\d|[^\sA-Za-z\d]+|\s+")

    def __init__(self, prepend_bos: bool = True):
        self.has_tokenizer, self.prepends_bos, self.n_ctx, self.d_vocab = True, prepend_bos, 64, 100_000
        self.vocab: dict[str, int] = {"<bos>": 0}

    def piece(self, token: int) -> str:
        return {v: k for k, v in self.vocab.items()}[token]

    def to_tokens(self, text: str, prepend_bos: bool) -> list[int]:
        ids = [self.vocab.setdefault(p, len(self.vocab)) for p in self.PIECES.findall(text)]
        return [0] * bool(prepend_bos) + ids


@pytest.mark.parametrize("bos", [True, False])
def test_ioi_generator_positions_point_at_the_names(bos: bool) -> None:
    model = WordTokens(prepend_bos=bos)
    data = ioi(model, n=40, seed=0)
    assert len(data) == 40 and data.name == "ioi"
    again = ioi(model, n=40, seed=0)
    assert torch.equal(data.clean, again.clean) and torch.equal(data.corrupt, again.corrupt)
    piece = model.piece
    for i in range(40):
        pos = {k: int(v[i]) for k, v in data.positions.items()}
        clean, corrupt = data.clean[i].tolist(), data.corrupt[i].tolist()
        assert (clean[0] == 0) == bos
        assert clean[pos["IO"]] == int(data.answer[i]) and clean[pos["S1"]] == clean[pos["S2"]] == int(data.wrong[i])
        assert piece(int(data.answer[i])).startswith(" ") and piece(int(data.answer[i])).strip().isalpha()
        assert piece(clean[pos["END"]]) == " to" and pos["S2"] > max(pos["IO"], pos["S1"])
        assert piece(clean[pos["S1"] + 1]) in {" and", " went", " had", " were", " got", " found"}
        abc = {corrupt[pos[k]] for k in ("IO", "S1", "S2")}
        assert len(abc) == 3 and not abc & {int(data.answer[i]), int(data.wrong[i])}
        end = pos["END"] + 1
        assert [j for j in range(end) if clean[j] != corrupt[j]] == sorted(pos[k] for k in ("IO", "S1", "S2"))
    names_seen = {piece(int(t)) for t in torch.cat([data.answer, data.wrong])}
    assert " Christopher" not in names_seen and " Christoph" not in names_seen  # two tokens: skipped


@pytest.mark.parametrize("source", ["hanna", "acdc"])
def test_greater_than_generator_positions_point_at_the_year(source: str) -> None:
    model = WordTokens()
    data = greater_than(model, n=30, seed=0, source=source)
    piece = model.piece
    centuries = set()
    for i in range(30):
        yy_at, end = int(data.positions["YY"][i]), int(data.positions["END"][i])
        clean, corrupt = data.clean[i].tolist(), data.corrupt[i].tolist()
        yy, cc = int(piece(clean[yy_at])), piece(clean[yy_at - 1])
        centuries.add(cc)
        assert re.fullmatch(r" 1[0-8]", cc) and piece(corrupt[yy_at]) == "01"
        assert (piece(int(data.answer[i])), piece(int(data.wrong[i]))) == (f"{yy + 1:02d}", f"{yy - 1:02d}")
        assert piece(clean[end]) == cc and clean[end + 1:] == [clean[end]] * (len(clean) - end - 1)  # padding
        assert [j for j in range(end + 1) if clean[j] != corrupt[j]] == [yy_at]
        assert piece(clean[end - 1]) == (" year" if source == "hanna" else " to")
        if source == "hanna":
            assert yy == 2 + i  # balanced: YY 02, 03, ... in turn
    assert len(centuries) > 3


class SomeYearsWhole(WordTokens):
    """WordTokens, except that the years 1500-1599, 1702-1719 and 1799 are one token each
    (" 1705"), as a tokenizer with those years in its vocabulary would write them."""

    def to_tokens(self, text: str, prepend_bos: bool) -> list[int]:
        whole = re.sub(r" (15\d\d|170[2-9]|171\d|1799)(?!\d)", lambda m: " Y" + m.group(1), text)
        ids = [self.vocab.setdefault(p, len(self.vocab)) for p in re.findall(r" Y\d{4}|" + self.PIECES.pattern, whole)]
        return [0] * bool(prepend_bos) + ids


def test_greater_than_generator_keeps_only_years_that_split() -> None:
    model = SomeYearsWhole()
    data = greater_than(model, n=200, seed=0, century=17)
    starts = sorted({int(model.piece(int(row[int(at)]))) for row, at in zip(data.clean, data.positions["YY"])})
    # 1702-1719 do not split; of those that do (1700, 1701, 1720-1798) the first and the last
    # are dropped, and YY 01 is never a start year.
    assert starts == list(range(20, 98))
    with pytest.raises(TaskError, match="no start year"):
        greater_than(model, n=4, century=15)
    every = greater_than(model, n=300, seed=0)
    cc = {model.piece(int(row[int(at) - 1])) for row, at in zip(every.clean, every.positions["YY"])}
    assert " 15" not in cc and " 17" in cc


def test_generators_are_registered() -> None:
    assert GENERATORS["ioi"] is ioi and GENERATORS["greater_than"] is greater_than


@pytest.mark.parametrize("generator", [ioi, greater_than])
def test_generators_need_a_tokenizer(generator) -> None:
    stub = SimpleNamespace(has_tokenizer=False, prepends_bos=True, n_ctx=1024, d_vocab=50257)
    with pytest.raises(TaskError, match="needs the model's tokenizer") as err:
        generator(stub, n=4)
    assert "JSONL" in (err.value.help or "")


def test_a_model_without_tokenizer_is_a_clear_problem(tmp_path: Path) -> None:
    path = tmp_path / "no_tokenizer.circ"
    path.write_text("model zoo:induction-2l\n\ncircuit c { L1.H1 -> logits }\n\n"
                    "task t { data ioi(n = 4) }\n\ncheck c on t {\n    expect faithfulness >= 0.5\n}\n")
    outcome = cl.check_file(path)
    assert not outcome.checks and len(outcome.problems) == 1
    assert "`ioi`" in outcome.problems[0].message and "tokenizer" in outcome.problems[0].message


def tiny_gpt2_directory(folder: Path) -> Path:
    """A Hugging Face GPT-2 directory (`save_pretrained`'s files) with 12 layers x 12
    heads like GPT-2 small, d_model 24, random weights, and a real tokenizer over the
    word pieces of WordTokens (no GPT-2 files needed): what a user's own model looks like."""
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    from circuitlang.eval.tasks.stdlib import greater_than_data

    words = ioi_data()["templates"] + ioi_data()["names"] + ioi_data()["places"] + ioi_data()["objects"]
    words += greater_than_data()["nouns"] + [f"{i:02d}" for i in range(100)]
    words += [f"The lasted from the year {cc}{i:02d} to the year {cc}" for cc in range(10, 19) for i in range(100)]
    vocab = {"<|endoftext|>": 0, "[UNK]": 1}
    for text in words:
        for w in text.split(" "):
            for p in WordTokens.PIECES.findall(w) + WordTokens.PIECES.findall(" " + w):
                vocab.setdefault(p, len(vocab))
    core = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.Split(Regex(WordTokens.PIECES.pattern), behavior="isolated")
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<|endoftext|>", eos_token="<|endoftext|>",
                                        pad_token="<|endoftext|>", unk_token="[UNK]")
    config = GPT2Config(n_layer=12, n_head=12, n_embd=24, vocab_size=len(vocab), n_positions=48,
                        activation_function="gelu_new", bos_token_id=0, eos_token_id=0, attn_implementation="eager")
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = GPT2LMHeadModel(config).eval()
        model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_circuits_evaluate_end_to_end_on_a_gpt2_shaped_model(ioi_file: cl.Compiled, gt_file: cl.Compiled,
                                                             tmp_path: Path) -> None:
    """The IOI and greater-than pipelines (generators, positions, circuits) on a random
    GPT-2-config model loaded from its directory the way `model "dir"` loads it: the
    numbers mean nothing, the plumbing is real."""
    from circuitlang.eval.evaluator import Evaluator
    from circuitlang.eval.loading import load_model
    from circuitlang.eval.session import Session

    folder = tiny_gpt2_directory(tmp_path / "tiny")
    loaded = load_model("tiny", quoted=True, base_dir=tmp_path)
    assert loaded.has_tokenizer and loaded.shape.n_heads == 12
    ioi_data_ = ioi(loaded, n=16, seed=0)
    unk = 1
    assert not (ioi_data_.clean == unk).any() and not (ioi_data_.corrupt == unk).any()
    names = ["ioi", "ioi_with_mlps", "ioi_unpositioned", "ioi_nodes"]
    f = Evaluator(Session(loaded, ioi_data_, "resample", batch_size=16)).faithfulness(
        [ioi_file.circuits[n] for n in names])
    assert torch.isfinite(f).all(), dict(zip(names, f.tolist()))
    years = greater_than(loaded, n=16, seed=0)
    assert not (years.clean == unk).any()
    f = Evaluator(Session(loaded, years, "resample", batch_size=16)).faithfulness(
        [gt_file.circuits["acdc"], gt_file.circuits["hanna"]])
    assert torch.isfinite(f).all()
    assert folder.is_dir()


# ---------------------------------------------------------------------------------
# GPT-2 itself (only where its weights are in the local Hugging Face cache)
# ---------------------------------------------------------------------------------


def gpt2_cached() -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False
    for repo in ("gpt2", "openai-community/gpt2"):
        found = [try_to_load_from_cache(repo, f) for f in ("config.json", "model.safetensors", "pytorch_model.bin")]
        if isinstance(found[0], str) and any(isinstance(x, str) for x in found[1:]):
            return True
    return False


@pytest.mark.pretrained
@pytest.mark.skipif(not gpt2_cached(), reason="GPT-2 small is not in the local Hugging Face cache (offline: nothing "
                                              "is downloaded); download it once to run this test")
def test_ioi_checks_run_on_gpt2() -> None:
    outcome = cl.check_file(IOI, batch_size=32)
    assert outcome.problems == (), outcome.problems
    assert len(outcome.checks) == 2
    for check in outcome.checks:
        report = check.circuit
        # GPT-2 small does IOI: the paper's F(M) is 3.56 on its own mix of templates.
        assert report.m_model > 1.0, report.m_model
        assert report.m_empty < report.m_model
        assert torch.isfinite(torch.tensor(report.faithfulness))
        print(f"{report.circuit}: faithfulness {report.faithfulness:.3f} (m(model) {report.m_model:.2f}, "
              f"m(empty) {report.m_empty:.2f}), passed {check.passed}")


def test_the_ioi_file_checks_end_to_end_on_a_gpt2_config_directory(tmp_path: Path) -> None:
    """stdlib/gpt2/ioi.circ as it is (task, generator, positions, circuits, checks) with
    only its `model` line pointing at a random GPT-2-config directory: every check runs
    and reports its numbers; whether they pass means nothing on random weights."""
    tiny_gpt2_directory(tmp_path / "tiny")
    text = IOI.read_text(encoding="utf-8").replace("\nmodel gpt2\n", '\nmodel "tiny"\n', 1)
    assert 'model "tiny"' in text
    (tmp_path / "ioi.circ").write_text(text.replace("ioi(n = 256)", "ioi(n = 32)"), encoding="utf-8")
    outcome = cl.check_file(tmp_path / "ioi.circ", batch_size=32)
    assert outcome.problems == (), outcome.problems
    assert len(outcome.checks) == 2
    for check in outcome.checks:
        assert math.isfinite(check.circuit.faithfulness)


def test_the_greater_than_file_checks_end_to_end_on_a_gpt2_config_directory(tmp_path: Path) -> None:
    """stdlib/gpt2/greater_than.circ as it is (the authors' and ACDC's year distributions,
    the positioned `hanna`, both checks) with only its `model` line pointing at a random GPT-2-config
    directory: every check runs and reports a finite number."""
    tiny_gpt2_directory(tmp_path / "tiny")
    text = GREATER_THAN.read_text(encoding="utf-8").replace("\nmodel gpt2\n", '\nmodel "tiny"\n', 1)
    assert 'model "tiny"' in text and text.count("greater_than(n = 256") == 2
    (tmp_path / "gt.circ").write_text(text.replace("greater_than(n = 256", "greater_than(n = 32"), encoding="utf-8")
    outcome = cl.check_file(tmp_path / "gt.circ", batch_size=32)
    assert outcome.problems == (), outcome.problems
    assert [(c.circuit.circuit, c.circuit.task) for c in outcome.checks] == [("hanna", "years_01"),
                                                                             ("acdc_edges", "years_01_acdc")]
    for check in outcome.checks:
        assert math.isfinite(check.circuit.faithfulness)

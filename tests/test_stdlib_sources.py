"""The standard library's published circuits against their sources' own construction logic.

Each source builds its circuit with code, not a list: ACDC's get_ioi_true_edges and
get_greaterthan_true_edges switch edges on and off in a hook-level graph of GPT-2; the
Greater-Than authors (hannamw/gpt2-greater-than, circuit_discovery.py) patch sets of paths
grown by "extenders"; auto-circuit's docstring_node_based_official_edges keeps the edges of
a set of heads. This file re-implements each procedure from its published description (our
code, written from reading the sources at the commits named below), produces the edge set,
and compares it with what the stdlib file lowers to. The tables are derived here, not
copied from the .circ files, so a change to either side that makes them disagree fails.

Sources read (commits fetched):
- ACDC, github.com/ArthurConmy/Automatic-Circuit-Discovery bc99ace8: acdc/TLACDCCorrespondence.py
  setup_from_model (lines 101-233), subnetwork_probing/train.py iterative_correspondence_from_mask
  (lines 39-96), acdc/ioi/utils.py (lines 161-289), acdc/greaterthan/utils.py (lines 221-323).
- hannamw/gpt2-greater-than 0e6dc8c: circuit_discovery.py lines 280-293 and 401-418,
  utils.py make_extender_factory (lines 369-403).
- UFO-101/auto-circuit 98db58c: auto_circuit/metrics/official_circuits/circuits/
  docstring_official.py lines 105-212.
"""

from __future__ import annotations

from itertools import combinations
from pathlib import Path

import pytest

import circuitlang as cl
from circuitlang.core.graph import EMBED, LOGITS, Edge, Node
from circuitlang.core.positions import Position

ROOT = Path(__file__).resolve().parent.parent
STDLIB = ROOT / "stdlib"


@pytest.fixture(scope="module")
def ioi_file() -> cl.Compiled:
    return cl.compile_file(STDLIB / "gpt2" / "ioi.circ")


@pytest.fixture(scope="module")
def gt_file() -> cl.Compiled:
    return cl.compile_file(STDLIB / "gpt2" / "greater_than.circ")


# ---------------------------------------------------------------------------------------------
# ACDC's hook-level graph
# ---------------------------------------------------------------------------------------------

ADDITION, DIRECT, PLACEHOLDER = "addition", "direct computation", "placeholder"


class HookGraph:
    """ACDC's correspondence of a GPT-2-shaped model (setup_from_model, use_pos_embed=False).

    Hook points: ("resid_pre",) is the embedding, ("resid_post",) the logits; per layer
    ("mlp_in", l) -> ("mlp_out", l); per head the inputs ("input", l, h, x) for x in q, k, v,
    each feeding ("hook", l, h, x), which feed ("result", l, h). Every sender (resid_pre, a
    result, an mlp_out) writes by ADDITION into every residual reader downstream of it: the
    MLP input of its own layer (for heads) and of later layers, the q/k/v inputs of later
    layers, resid_post. `edges` maps (child, parent) to the edge type; `present` is the set
    of edges switched on.
    """

    def __init__(self, n_layers: int = 12, n_heads: int = 12, mlps: bool = True):
        self.n_layers, self.n_heads = n_layers, n_heads
        self.edges: dict[tuple[tuple, tuple], str] = {}
        downstream: list[tuple] = [("resid_post",)]
        for layer in reversed(range(n_layers)):
            if mlps:
                for reader in downstream:
                    self.edges[reader, ("mlp_out", layer)] = ADDITION
                self.edges[("mlp_out", layer), ("mlp_in", layer)] = PLACEHOLDER
                downstream.append(("mlp_in", layer))
            inputs = []
            for head in reversed(range(n_heads)):
                for reader in downstream:
                    self.edges[reader, ("result", layer, head)] = ADDITION
                for x in "qkv":
                    self.edges[("result", layer, head), ("hook", layer, head, x)] = PLACEHOLDER
                    self.edges[("hook", layer, head, x), ("input", layer, head, x)] = DIRECT
                    inputs.append(("input", layer, head, x))
            downstream += inputs  # after the layer: a head never reads its own layer
        for reader in downstream:
            self.edges[reader, ("resid_pre",)] = ADDITION
        self.present: set[tuple[tuple, tuple]] = set()

    def switch(self, child: tuple, parent: tuple, on: bool) -> None:
        assert (child, parent) in self.edges, (child, parent)
        (self.present.add if on else self.present.discard)((child, parent))

    def mask(self, hook: tuple) -> None:
        """Every edge into or out of `hook` off (iterative_correspondence_from_mask)."""
        self.present -= {e for e in self.present if hook in e}

    def counts(self) -> dict[str, int]:
        out = {ADDITION: 0, DIRECT: 0, PLACEHOLDER: 0}
        for e in self.present:
            out[self.edges[e]] += 1
        return out

    def circuit_edges(self) -> set[Edge]:
        """The present ADDITION edges as circuitlang edges (the other two kinds lie inside a
        head or an MLP, which circuitlang does not write)."""
        out = set()
        for child, parent in self.present:
            if self.edges[child, parent] != ADDITION:
                continue
            sender = {"resid_pre": lambda: EMBED, "mlp_out": lambda: Node.mlp(parent[1]),
                      "result": lambda: Node.attn(parent[1], parent[2])}[parent[0]]()
            if child[0] == "resid_post":
                out.add(Edge(sender, LOGITS))
            elif child[0] == "mlp_in":
                out.add(Edge(sender, Node.mlp(child[1])))
            else:
                out.add(Edge(sender, Node.attn(child[1], child[2]), child[3]))
        return out


def head_inputs(layer: int, head: int, letters: str = "qkv") -> list[tuple]:
    return [("input", layer, head, x) for x in letters]


def test_hook_graph_is_gpt2s() -> None:
    """Sanity of the re-implementation: its ADDITION edges are exactly GPT-2's edges in
    circuitlang (every edge of the full model, the node-level circuit of every component)."""
    graph = HookGraph()
    graph.present = set(graph.edges)
    text = "model gpt2\ncircuit everything { L*.H*, L*.MLP }\n"
    everything = cl.compile_text(text, "all.circ").circuits["everything"]
    assert graph.circuit_edges() == set(everything.edges)
    assert graph.counts() == {ADDITION: len(everything.edges), DIRECT: 144 * 3, PLACEHOLDER: 144 * 3 + 12}


# ---------------------------------------------------------------------------------------------
# IOI: ACDC's get_ioi_true_edges (acdc/ioi/utils.py lines 161-289)
# ---------------------------------------------------------------------------------------------

# IOI_CIRCUIT, lines 161-197 (the heads ACDC comments out are left out, as there).
ACDC_IOI_CIRCUIT = {
    "name mover": [(9, 9), (10, 0), (9, 6)],
    "backup name mover": [(10, 10), (10, 6), (10, 2), (10, 1), (11, 2), (9, 7), (9, 0), (11, 9)],
    "negative": [(10, 7), (11, 10)],
    "s2 inhibition": [(7, 3), (7, 9), (8, 6), (8, 10)],
    "induction": [(5, 5), (5, 8), (5, 9), (6, 9)],
    "duplicate token": [(0, 1), (0, 10), (3, 0)],
    "previous token": [(2, 2), (4, 11)],
}
# special_connections, lines 246-262: (sender class, receiver class, receiver inputs).
ACDC_IOI_CONNECTIONS = [
    ("INPUT", "previous token", "qkv"), ("INPUT", "duplicate token", "qkv"), ("INPUT", "s2 inhibition", "q"),
    ("INPUT", "negative", "kv"), ("INPUT", "name mover", "kv"), ("INPUT", "backup name mover", "kv"),
    ("previous token", "induction", "kv"), ("induction", "s2 inhibition", "kv"),
    ("duplicate token", "s2 inhibition", "kv"), ("s2 inhibition", "negative", "q"),
    ("s2 inhibition", "name mover", "q"), ("s2 inhibition", "backup name mover", "q"),
    ("negative", "OUTPUT", ""), ("name mover", "OUTPUT", ""), ("backup name mover", "OUTPUT", ""),
]


def acdc_ioi_true_edges() -> HookGraph:
    graph = HookGraph()
    graph.present = set(graph.edges)
    circuit_heads = [head for heads in ACDC_IOI_CIRCUIT.values() for head in heads]
    assert len(circuit_heads) == 26
    # Lines 214-227: the q, k and v of every other head are masked, and with them (train.py
    # lines 57-70) their inputs and, once all three are, their result.
    for layer in range(12):
        for head in range(12):
            if (layer, head) not in circuit_heads:
                for x in "qkv":
                    graph.mask(("hook", layer, head, x))
                    graph.mask(("input", layer, head, x))
                graph.mask(("result", layer, head))
    # Lines 229-242: no circuit head reads embed or an earlier head, none writes to the logits.
    for layer, head in circuit_heads:
        for inp in head_inputs(layer, head):
            graph.switch(inp, ("resid_pre",), False)
            for earlier in range(layer):
                for other in range(12):
                    graph.present.discard((inp, ("result", earlier, other)))
        graph.switch(("resid_post",), ("result", layer, head), False)
    # Lines 264-286: the class-to-class edges, embed and every MLP standing for INPUT, the
    # logits and every MLP input for OUTPUT, each pair only forwards (layer_to > layer_from).
    for source, target, letters in ACDC_IOI_CONNECTIONS:
        if source == "INPUT":
            senders = [(-1, ("resid_pre",))] + [(m, ("mlp_out", m)) for m in range(12)]
        else:
            senders = [(layer, ("result", layer, head)) for layer, head in ACDC_IOI_CIRCUIT[source]]
        if target == "OUTPUT":
            receivers = [(13, ("resid_post",))] + [(m, ("mlp_in", m)) for m in range(12)]
        else:
            receivers = [(layer, inp) for layer, head in ACDC_IOI_CIRCUIT[target]
                         for inp in head_inputs(layer, head, letters)]
        for layer_from, sender in senders:
            for layer_to, receiver in receivers:
                if layer_to > layer_from:
                    graph.switch(receiver, sender, True)
    return graph


def test_ioi_acdc_is_get_ioi_true_edges(ioi_file: cl.Compiled) -> None:
    graph = acdc_ioi_true_edges()
    edges = graph.circuit_edges()
    assert set(ioi_file.circuits["ioi_acdc"].edges) == edges
    # The numbers the file states: 963 edges; ACDC's count (count_no_edges: every present
    # edge but the placeholders) adds the 78 q/k/v input -> q/k/v edges inside the 26 heads.
    assert len(edges) == 963
    counts = graph.counts()
    assert counts[DIRECT] == 26 * 3 and counts[ADDITION] + counts[DIRECT] == 1041


def test_ioi_unpositioned_is_acdcs_edges_without_mlps(ioi_file: cl.Compiled) -> None:
    edges = acdc_ioi_true_edges().circuit_edges()
    no_mlp = {e for e in edges if e.sender.kind != "mlp" and e.receiver.kind != "mlp"}
    assert set(ioi_file.circuits["ioi_unpositioned"].edges) == no_mlp
    assert len(no_mlp) == 183 and Edge(EMBED, LOGITS) in no_mlp
    # ... and `ioi` is the same heads-only set at positions, less embed -> logits
    # (auto-circuit, whose positions `ioi` follows, has no such edge).
    ioi = ioi_file.circuits["ioi"]
    assert {Edge(e.sender, e.receiver, e.channel) for e in ioi.edges} == no_mlp - {Edge(EMBED, LOGITS)}
    assert len(ioi.edges) == 182


# ---------------------------------------------------------------------------------------------
# Greater-Than: ACDC's get_greaterthan_true_edges (acdc/greaterthan/utils.py lines 221-323)
# ---------------------------------------------------------------------------------------------

ACDC_GT_CIRCUIT = {  # lines 221-229; None: the MLP of that layer
    "0305": [(0, 3), (0, 5)],
    "01": [(0, 1)],
    "MEARLY": [(0, None), (1, None), (2, None), (3, None)],
    "AMID": [(5, 5), (6, 1), (6, 9), (7, 10), (8, 11), (9, 1)],
    "MLATE": [(8, None), (9, None), (10, None), (11, None)],
}


def _hooks(layer: int, head: int | None, output: bool) -> list[tuple]:
    if head is None:
        return [("mlp_out" if output else "mlp_in", layer)]
    return [("result", layer, head)] if output else head_inputs(layer, head)


def acdc_greaterthan_true_edges() -> HookGraph:
    graph = HookGraph()  # every edge off (lines 234-239)
    for group in ("0305", "01", "MEARLY"):  # lines 265-271: embed into these
        for layer, head in ACDC_GT_CIRCUIT[group]:
            for inp in _hooks(layer, head, False):
                graph.switch(inp, ("resid_pre",), True)
    for group in ("AMID", "MLATE"):  # lines 273-278: these into the logits
        for layer, head in ACDC_GT_CIRCUIT[group]:
            graph.switch(("resid_post",), _hooks(layer, head, True)[0], True)
    for members in ACDC_GT_CIRCUIT.values():  # lines 280-286: MLP groups interconnected
        if members[0][1] is None:
            for (a, _), (b, _) in combinations(members, 2):
                graph.switch(("mlp_in", b), ("mlp_out", a), True)
    for group1, group2 in [("01", "MEARLY"), ("01", "AMID"), ("0305", "AMID"), ("MEARLY", "AMID"),
                           ("AMID", "MLATE")]:  # lines 241-247 and 288-296
        for l1, h1 in ACDC_GT_CIRCUIT[group1]:
            for l2, h2 in ACDC_GT_CIRCUIT[group2]:
                if l1 >= l2 and not (l1 == l2 and h1 is not None and h2 is None):
                    continue
                for inp in _hooks(l2, h2, False):
                    graph.switch(inp, _hooks(l1, h1, True)[0], True)
    for layer, head in sum(ACDC_GT_CIRCUIT.values(), []):  # lines 298-307: inside each head
        if head is not None:
            for x in "qkv":
                graph.switch(("hook", layer, head, x), ("input", layer, head, x), True)
                graph.switch(("result", layer, head), ("hook", layer, head, x), True)
    top = max(layer for layer, _ in ACDC_GT_CIRCUIT["AMID"])  # lines 311-315: MLPs below 9 chained
    for a in range(top):
        for b in range(a + 1, top):
            graph.switch(("mlp_in", b), ("mlp_out", a), True)
    for layer, head in ACDC_GT_CIRCUIT["AMID"]:  # lines 317-320: earlier MLPs into the queries
        for m in range(layer):
            graph.switch(("input", layer, head, "q"), ("mlp_out", m), True)
    return graph


def test_acdc_edges_is_get_greaterthan_true_edges(gt_file: cl.Compiled) -> None:
    graph = acdc_greaterthan_true_edges()
    edges = graph.circuit_edges()
    assert set(gt_file.circuits["acdc_edges"].edges) == edges
    # The numbers the file states: 235 edges, 42 of them touching MLPs 4-7 (26 MLP -> MLP and
    # 16 into the mid heads' queries); ACDC's own count adds the 27 edges inside the 9 heads,
    # and the dict it returns also holds the 27 placeholders q/k/v -> result.
    assert len(edges) == 235
    middle = [e for e in edges if 4 <= e.sender.layer <= 7 and e.sender.kind == "mlp"
              or e.receiver.kind == "mlp" and 4 <= e.receiver.layer <= 7]
    assert len(middle) == 42
    assert sum(e.receiver.kind == "mlp" for e in middle) == 26 and sum(e.channel == "q" for e in middle) == 16
    assert graph.counts() == {ADDITION: 235, DIRECT: 27, PLACEHOLDER: 27}
    # The node-level `acdc` is CIRCUIT's node set: MLPs 4-7 are not in it.
    circuit_nodes = {Node.mlp(layer) if head is None else Node.attn(layer, head)
                     for members in ACDC_GT_CIRCUIT.values() for layer, head in members}
    assert gt_file.circuits["acdc"].nodes == circuit_nodes | {EMBED, LOGITS}


# ---------------------------------------------------------------------------------------------
# Greater-Than: the authors' path patching (circuit_discovery.py lines 280-293, 401-418)
# ---------------------------------------------------------------------------------------------

YY, END = "YY", "END"  # YY comes before END in the prompt

# Named nodes as the authors' MLPHeadAndPosSpec: (layer, head or "mlp").
HANNA_HEADS = [(9, 1), (8, 11), (7, 10), (6, 9), (5, 5), (8, 8), (5, 1)]  # line 286, at END
HANNA_LATE = [(layer, "mlp") for layer in range(8, 12)]  # line 281, at END
HANNA_LOWER = [(3, "mlp"), (2, "mlp"), (1, "mlp"), (0, "mlp"), (0, 5), (0, 3), (0, 1)]  # line 404, at YY
HANNA_LOWER_NEXT = [(3, "mlp"), (2, "mlp"), (1, "mlp"), (0, "mlp"), (0, 1)]  # line 410, at YY


def _node(spec: tuple) -> Node:
    if spec == ("embed",):
        return EMBED
    if spec == ("logits",):
        return LOGITS
    layer, head = spec
    return Node.mlp(layer) if head == "mlp" else Node.attn(layer, head)


def _reads(receiver: tuple, sender: tuple) -> list[str | None]:
    """How a receiver (spec, position) reads a sender (spec, position) directly, in GPT-2
    split by position: the inputs it reads it through (None: an MLP or the logits)."""
    (r, r_pos), (s, s_pos) = receiver, sender
    if r == ("logits",):
        return [None] if s_pos == r_pos else []
    s_node, r_node = _node(s), _node(r)
    earlier = s_node == EMBED or s_node.layer < r_node.layer or (
        s_node.is_head and r_node.kind == "mlp" and s_node.layer == r_node.layer)
    if not earlier:
        return []
    if r_node.kind == "mlp":
        return [None] if s_pos == r_pos else []
    if s_pos == r_pos:
        return ["q", "k", "v"]
    return ["k", "v"] if (s_pos, r_pos) == (YY, END) else []  # keys and values of earlier positions


def _extend(paths: list[tuple], targets: list[tuple], position: str) -> list[tuple]:
    """make_extender_factory (utils.py lines 369-403): from each path's last node, through any
    of its inputs, to a target node that it reads directly (no other named node between)."""
    return [path + ((t, position),) for path in paths for t in targets if _reads(path[-1], (t, position))]


def hanna_paths() -> tuple[list[tuple], list[tuple]]:
    """The END part's paths (`ms`, lines 280-293) and the whole circuit's (`lms`, lines
    401-417, without line 418's clean queries), each from the logits down."""
    running = [((("logits",), END),)]
    ms = _extend(running, HANNA_HEADS, END)
    for _ in range(4):
        running = _extend(running, HANNA_LATE, END)
        ms += _extend(running, HANNA_HEADS, END)
    # embed_extender: the embedding. Only its YY position differs between a prompt and its
    # 01 version, so the keys and values of a layer-0 head at earlier positions are left out.
    running = _extend(ms, HANNA_LOWER, YY)
    lms = _extend(running, [("embed",)], YY)
    for _ in range(4):
        running = _extend(running, HANNA_LOWER_NEXT, YY)
        lms += _extend(running, [("embed",)], YY)
    return ms, lms


def _path_edges(paths: list[tuple]) -> set[Edge]:
    out = set()
    for path in paths:
        for receiver, sender in zip(path, path[1:]):
            for channel in _reads(receiver, sender):
                out.add(Edge(_node(sender[0]), _node(receiver[0]), channel, Position(sender[1])))
    return out


def test_hanna_is_the_authors_paths_plus_the_stated_queries(gt_file: cl.Compiled) -> None:
    ms, lms = hanna_paths()
    paths = _path_edges(lms)
    end_part = _path_edges(ms)
    assert end_part <= paths and len(end_part) == 44 and len(paths) == 44 + 121
    # Line 418 (the heads' whole clean queries at END) has no single-valued edge form; the
    # file's stated stand-in: embed and the circuit's own END nodes of earlier layers feed
    # each head's query at END.
    end_nodes = {_node(spec) for path in ms for spec, pos in path if pos == END} - {LOGITS}
    heads = [_node(h) for h in HANNA_HEADS]
    queries = {Edge(s, h, "q", Position(END)) for h in heads for s in end_nodes | {EMBED}
               if s == EMBED or s.layer < h.layer}
    assert len(queries) == 27
    hanna = gt_file.circuits["hanna"]
    assert set(hanna.edges) == paths | queries
    assert len(hanna.edges) == 192
    # The path chains reach every pair they should: e.g. head 0.1 -> MLP 0 -> MLP 3 -> 5.5's key,
    # and nothing from heads 0.3, 0.5 into the MLPs (line 410 leaves them out).
    assert Edge(Node.attn(0, 1), Node.mlp(0), None, Position(YY)) in paths
    assert not [e for e in paths if e.sender in (Node.attn(0, 3), Node.attn(0, 5)) and e.receiver.kind == "mlp"]
    # `hanna_end` is the END part's nodes (node level).
    assert gt_file.circuits["hanna_end"].nodes == end_nodes | {EMBED, LOGITS}


# ---------------------------------------------------------------------------------------------
# Docstring: auto-circuit's docstring_node_based_official_edges (lines 105-212)
# ---------------------------------------------------------------------------------------------

AUTO_CIRCUIT_DOCSTRING_HEADS = ["A1.4", "A2.0", "A3.0", "A3.6", "A0.5", "A1.2", "A0.2", "A0.4",
                                "A1.0", "A0.1", "A2.3"]  # lines 173-186


def test_docstring_auto_circuit_is_the_node_based_official_edges() -> None:
    # auto-circuit's edges of attn-only-4l without positions: "Resid Start" and every head
    # send to every later head's Q, K and V and to "Resid End"; the node-based set keeps the
    # edges whose sender is not a head or is one of the listed heads.
    heads = [(layer, head) for layer in range(4) for head in range(8)]
    kept = {(int(name[1]), int(name[3:])) for name in AUTO_CIRCUIT_DOCSTRING_HEADS}
    official = set()
    for sender in [None] + heads:
        if sender is not None and sender not in kept:
            continue
        src = EMBED if sender is None else Node.attn(*sender)
        official.add(Edge(src, LOGITS))
        for layer, head in heads:
            if sender is None or sender[0] < layer:
                official |= {Edge(src, Node.attn(layer, head), x) for x in "qkv"}
    # Edges into a head outside the set change nothing (that head sends nothing): drop them.
    live = {e for e in official if e.receiver == LOGITS or (e.receiver.layer, e.receiver.head) in kept}
    result = cl.compile_file(STDLIB / "attn_only_4l" / "docstring.circ")
    assert set(result.circuits["auto_circuit"].edges) == live
    assert len(official) - len(live) == 21 * 3 + sum(3 * sum(1 for lk, _ in kept if lk < layer)
                                                      for layer, h in heads if (layer, h) not in kept)
    # The six heads of the post are among them, plus 0.2, 0.4 and the extras 1.0, 0.1, 2.3.
    six = {n for n in result.circuits["docstring"].nodes if n.is_head}
    extra = {n for n in result.circuits["auto_circuit"].nodes if n.is_head} - six
    assert extra == {Node.attn(0, 2), Node.attn(0, 4), Node.attn(1, 0), Node.attn(0, 1), Node.attn(2, 3)}

"""EAP-IG's names for nodes and edges (`a9.h6`, `m3`, `input`, `logits`;
`a9.h6->a10.h0<q>`), and which names can name a circuit in .circ text.

>>> node_name(Node.attn(9, 6)), edge_name(Edge(Node.attn(9, 6), Node.attn(10, 0), "q"))
('a9.h6', 'a9.h6->a10.h0<q>')
"""

from __future__ import annotations

import re
from pathlib import Path

from ...core.graph import EMBED, LOGITS, Edge, Node

_HEAD = re.compile(r"a(\d+)\.h(\d+)")
_MLP = re.compile(r"m(\d+)")
_RECEIVER = re.compile(r"(.*?)(?:<([^<>]*)>)?")


def node_name(node: Node) -> str:
    """The EAP-IG name of a node: `input`, `a9.h6`, `m9`, `logits`.

    >>> node_name(Node.attn(9, 6)), node_name(Node.mlp(3)), node_name(EMBED)
    ('a9.h6', 'm3', 'input')
    """
    if node.kind == "head":
        return f"a{node.layer}.h{node.head}"
    if node.kind == "mlp":
        return f"m{node.layer}"
    return "input" if node.kind == "embed" else "logits"


def edge_name(edge: Edge) -> str:
    """The EAP-IG name of an edge: `a9.h6->a10.h0<q>` (positions have no name there).

    >>> edge_name(Edge(Node.attn(9, 6), Node.attn(10, 0), "q"))
    'a9.h6->a10.h0<q>'
    """
    suffix = f"<{edge.channel}>" if edge.channel else ""
    return f"{node_name(edge.sender)}->{node_name(edge.receiver)}{suffix}"


def parse_node_name(name: str) -> Node | None:
    """The node an EAP-IG name stands for (not checked against a model), or None."""
    if name == "input":
        return EMBED
    if name == "logits":
        return LOGITS
    if m := _HEAD.fullmatch(name):
        return Node.attn(int(m.group(1)), int(m.group(2)))
    if m := _MLP.fullmatch(name):
        return Node.mlp(int(m.group(1)))
    return None


def parse_edge_name(name: str) -> tuple[str, str, str | None] | str:
    """(sender, receiver, channel) names of `S->R<c>`, or a message saying what is wrong.

    >>> parse_edge_name("a0.h1->a1.h0<k>"), parse_edge_name("a0.h1-a1.h0")
    (('a0.h1', 'a1.h0', 'k'), 'no `->` between sender and receiver')
    """
    parts = name.split("->")
    if len(parts) != 2:
        return "no `->` between sender and receiver" if len(parts) < 2 else "more than one `->`"
    sender, rest = parts
    m = _RECEIVER.fullmatch(rest)
    receiver, channel = (m.group(1), m.group(2)) if m else (rest, None)
    if channel is not None and channel not in ("q", "k", "v"):
        return f"unknown input `<{channel}>` (a head's inputs are <q>, <k>, <v>)"
    if not sender or not receiver:
        return "empty sender or receiver"
    return sender, receiver, channel


def is_circuit_name(name: str) -> bool:
    """Whether `name` can name a circuit in .circ text."""
    return bool(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name)) and name not in _KEYWORDS \
        and not re.fullmatch(r"L\d+|H\d+", name)


def circuit_name_for(path: str | Path) -> str:
    """A legal circuit name from a file name: `ioi-eap.json` -> `ioi_eap`.

    >>> circuit_name_for("graphs/2 ioi-eap.json"), circuit_name_for("logits.json")
    ('c_2_ioi_eap', 'logits_circuit')
    """
    stem = re.sub(r"\W+", "_", Path(path).stem).strip("_") or "imported"
    if stem[0].isdigit() or re.fullmatch(r"[LH]\d.*", stem):
        stem = "c_" + stem
    if stem in _KEYWORDS:
        stem += "_circuit"
    return stem


_KEYWORDS = frozenset({"model", "import", "as", "group", "circuit", "include", "task", "check", "on", "with",
                       "expect", "embed", "logits", "q", "k", "v"})

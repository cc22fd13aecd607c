"""Write a `CircuitGraph` back out as .circ text (the inverse of `lower`, up to layout).

Edges are grouped by sender into one fan-out statement each, in computation order,
with each edge's annotations after its target, and the text is laid out by `fmt`, so
tools that find circuits (discovery, imports of other formats) write canonical files.

>>> from circuitlang.core.graph import CircuitGraph, Edge, Node, LOGITS, EMBED
>>> g = CircuitGraph.from_edges([Edge(EMBED, Node.attn(0, 1), "q"), Edge(Node.attn(0, 1), LOGITS)], name="c")
>>> print(graph_to_circ(g, "gpt2"), end="")
model gpt2
<BLANKLINE>
circuit c {
    embed -> L0.H1.q
    L0.H1 -> logits
}
"""

from __future__ import annotations

from collections import defaultdict
from typing import Iterable

from ..core.graph import CircuitGraph, Edge, Node
from . import syntax as S
from .fmt import format_module, model_name_needs_quotes


def _node_expr(node: Node) -> S.Expr:
    if node.kind == "head":
        return S.ComponentRef(S.IndexRange(node.layer, node.layer), S.IndexRange(node.head, node.head))
    if node.kind == "mlp":
        return S.ComponentRef(S.IndexRange(node.layer, node.layer), None)
    return S.NameRef((node.kind,))


def _value(value: object) -> S.Value:
    if isinstance(value, bool):
        return S.Ident("true" if value else "false")
    if isinstance(value, (int, float)):
        return S.Number(value)
    return S.String(str(value))


def _target(edge: Edge, graph: CircuitGraph) -> S.Target:
    expr: S.Expr = _node_expr(edge.receiver)
    if edge.channel:
        expr = S.Channel(expr, edge.channel)
    notes = graph.annotations.get(edge, {})
    annotations = tuple(S.KeyValue(k, _value(v)) for k, v in notes.items())
    position = S.Position(edge.position.anchor, edge.position.offset) if edge.position is not None else None
    return S.Target(expr, position, annotations)


def circuit_statement(graph: CircuitGraph, name: str | None = None) -> S.CircuitDef:
    """The syntax tree of one circuit: a fan-out statement per sender, isolated nodes listed."""
    by_sender: dict[Node, list[Edge]] = defaultdict(list)
    for edge in graph.sorted_edges():
        by_sender[edge.sender].append(edge)
    body: list[S.BodyStmt] = []
    for sender in sorted(by_sender, key=Node.sort_key):
        targets = tuple(_target(e, graph) for e in sorted(by_sender[sender], key=Edge.sort_key))
        body.append(S.EdgeStmt((_node_expr(sender),), targets))
    touched = {e.sender for e in graph.edges} | {e.receiver for e in graph.edges}
    isolated = [n for n in graph.sorted_nodes() if n not in touched]
    if isolated:
        body.append(S.NodeStmt(tuple(_node_expr(n) for n in isolated)))
    return S.CircuitDef(name or graph.name or "found", None, graph.doc, tuple(body))


def graph_to_circ(graph: CircuitGraph, model: str | None = None, header: Iterable[str] = ()) -> str:
    """A whole .circ file holding one circuit; `header` lines become leading comments."""
    return graphs_to_circ([graph], model or graph.model, header)


def graphs_to_circ(graphs: Iterable[CircuitGraph], model: str | None, header: Iterable[str] = ()) -> str:
    statements: list[S.Statement] = []
    if model:
        statements.append(S.ModelDecl(model, model_name_needs_quotes(model)))
    statements += [circuit_statement(g) for g in graphs]
    text = format_module(S.Module(tuple(statements)))
    # A header line with a line break in it (a command line, a path) stays all comment.
    parts = [part for line in header for part in (str(line).splitlines() or [""])]
    lines = [f"// {part}" if part else "//" for part in parts]
    return ("\n".join(lines) + "\n\n" if lines else "") + text

"""Writing EAP-IG/MIB graph JSON: `graph_to_mib` (a dict) and `graph_json_text` (its text,
one node or edge per line). The layout is described in `read.py`.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from typing import Mapping

from ...core.diagnostics import CircuitError, Diagnostic
from ...core.graph import LOGITS, CircuitGraph, Edge
from ...core.shapes import ModelShape, all_edges
from ...core.spans import Span
from .names import edge_name, node_name


def check_exportable(graph: CircuitGraph, shape: ModelShape | None, span: Span,
                     drop_positions: bool = False) -> list[Diagnostic]:
    """What stops `graph_to_mib` from writing this circuit exactly: no model (E607), positions
    (E608, or W609 when they are dropped). `span` is where the circuit is defined."""
    if shape is None:
        return [Diagnostic("E607", f"circuit `{graph.name}` has no model, so its graph cannot be written",
                           span, "no model", "add a `model` line")]
    positioned = [e for e in graph.edges if e.position is not None]
    if not positioned:
        return []
    merged = len({e._replace(position=None) for e in positioned})
    if drop_positions:
        return [Diagnostic("W609", f"positions dropped: {_count(len(positioned), 'edge')} with positions written "
                           f"as {_count(merged, 'edge')} (scores summed)", span, "has positions")]
    return [Diagnostic("E608", f"circuit `{graph.name}` has {_count(len(positioned), 'edge')} with positions; "
                       "EAP-IG/MIB graphs have none", span, "has positions",
                       "pass --drop-positions to write each edge once, whatever its positions")]


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def graph_to_mib(graph: CircuitGraph, shape: ModelShape, *, drop_positions: bool = False,
                 unscored: float | None = None) -> dict:
    """EAP-IG/MIB graph JSON (as a dict) for a circuit on a model of this shape.

    Every edge of the model is listed; `in_graph` is true for the circuit's edges; `score`
    is the edge's `score` annotation, else `unscored` (null by default). A node is in the
    graph when the circuit has it (`logits` always is, as in EAP-IG). Raises `CircuitError`
    (E608) for a circuit with positions unless `drop_positions`.
    """
    problems = [d for d in check_exportable(graph, shape, Span("<graph>", 1, 1, 1, 2), drop_positions)
                if d.is_error]
    if problems:
        raise CircuitError(problems)
    members: set[Edge] = set()
    scores: dict[Edge, float] = defaultdict(float)
    scored: set[Edge] = set()
    for edge in graph.edges:
        plain = edge._replace(position=None)
        members.add(plain)
        score = graph.annotations.get(edge, {}).get("score")
        if isinstance(score, (int, float)) and not isinstance(score, bool) and math.isfinite(score):
            scores[plain] += float(score)
            scored.add(plain)
    cfg: dict[str, object] = {"n_layers": shape.n_layers, "n_heads": shape.n_heads,
                              "parallel_attn_mlp": shape.parallel_attn_mlp, "d_model": shape.d_model,
                              "model_name": shape.name}
    if shape.attn_only:
        cfg["attn_only"] = True
    nodes = {node_name(n): {"in_graph": n in graph.nodes or n == LOGITS} for n in shape.all_nodes()}
    edges = {edge_name(e): {"score": scores[e] if e in scored else unscored, "in_graph": e in members}
             for e in all_edges(shape)}
    return {"cfg": cfg, "nodes": nodes, "edges": edges}


def graph_json_text(data: Mapping) -> str:
    """The JSON text: one node or edge per line (diffable, and diagnostics get useful lines).

    >>> print(graph_json_text({"cfg": {"n_layers": 1}, "nodes": {"input": {"in_graph": True}}, "edges": {}}))
    {
     "cfg": {"n_layers": 1},
     "nodes": {
      "input": {"in_graph": true}
     },
     "edges": {
     }
    }
    """
    lines = ["{", f' "cfg": {json.dumps(data["cfg"])},']
    for section, last in (("nodes", False), ("edges", True)):
        items = list(data[section].items())
        lines.append(f' "{section}": {{')
        lines += [f"  {json.dumps(k)}: {json.dumps(v)}{',' if i < len(items) - 1 else ''}"
                  for i, (k, v) in enumerate(items)]
        lines.append(" }" + ("" if last else ","))
    return "\n".join(lines + ["}"])

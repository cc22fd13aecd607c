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
    (E608, or W609 when they are dropped), scores whose sum over positions overflows (E612).
    `span` is where the circuit is defined."""
    if shape is None:
        return [Diagnostic("E607", f"circuit `{graph.name}` has no model, so its graph cannot be written",
                           span, "no model", "add a `model` line")]
    positioned = [e for e in graph.edges if e.position is not None]
    if not positioned:
        return []
    merged = len({e._replace(position=None) for e in positioned})
    if drop_positions:
        summed = _summed_scores(graph)
        overflow = sorted((e for e, v in summed.items() if not math.isfinite(v)), key=Edge.sort_key)
        if overflow:
            more = f" (and {_count(len(overflow) - 1, 'more edge')})" if len(overflow) > 1 else ""
            return [Diagnostic("E612", f"the scores of `{edge_name(overflow[0])}` over its positions sum to "
                               f"{summed[overflow[0]]}, which JSON cannot hold{more}", span,
                               "score sum overflows", "scale the scores down, or export without them")]
        return [Diagnostic("W609", f"positions dropped: {_count(len(positioned), 'edge')} with positions written "
                           f"as {_count(merged, 'edge')} (scores summed)", span, "has positions")]
    return [Diagnostic("E608", f"circuit `{graph.name}` has {_count(len(positioned), 'edge')} with positions; "
                       "EAP-IG/MIB graphs have none", span, "has positions",
                       "pass --drop-positions to write each edge once, whatever its positions")]


def _summed_scores(graph: CircuitGraph) -> dict[Edge, float]:
    """Each edge's finite `score` annotations summed over its positions (edges without one left out)."""
    scores: dict[Edge, float] = defaultdict(float)
    for edge in graph.edges:
        score = graph.annotations.get(edge, {}).get("score")
        if isinstance(score, (int, float)) and not isinstance(score, bool) and math.isfinite(score):
            scores[edge._replace(position=None)] += float(score)
    return dict(scores)


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def graph_to_mib(graph: CircuitGraph, shape: ModelShape, *, drop_positions: bool = False,
                 unscored: float | None = None) -> dict:
    """EAP-IG/MIB graph JSON (as a dict) for a circuit on a model of this shape.

    Every edge of the model is listed; `in_graph` is true for the circuit's edges; `score`
    is the edge's `score` annotation, else `unscored` (null by default). A node is in the
    graph when the circuit has it (`logits` always is, as in EAP-IG). Raises `CircuitError`
    (E608) for a circuit with positions unless `drop_positions`, E612 when summed scores
    overflow; ValueError for an `unscored` that is not a finite number (NaN is not JSON).
    """
    if unscored is not None and not math.isfinite(unscored):
        raise ValueError(f"unscored must be a finite number or None, not {unscored}")
    problems = [d for d in check_exportable(graph, shape, Span("<graph>", 1, 1, 1, 2), drop_positions)
                if d.is_error]
    if problems:
        raise CircuitError(problems)
    members = {edge._replace(position=None) for edge in graph.edges}
    scores = _summed_scores(graph)
    cfg: dict[str, object] = {"n_layers": shape.n_layers, "n_heads": shape.n_heads,
                              "parallel_attn_mlp": shape.parallel_attn_mlp, "d_model": shape.d_model,
                              "model_name": shape.name}
    if shape.attn_only:
        cfg["attn_only"] = True
    if unscored is not None:  # circuitlang's own key: `circ import` reads this score back as none
        cfg["unscored"] = unscored
    nodes = {node_name(n): {"in_graph": n in graph.nodes or n == LOGITS} for n in shape.all_nodes()}
    edges = {edge_name(e): {"score": scores.get(e, unscored), "in_graph": e in members}
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
    dumps = lambda value: json.dumps(value, allow_nan=False)  # noqa: E731 - NaN and Infinity are not JSON
    lines = ["{", f' "cfg": {dumps(data["cfg"])},']
    for section, last in (("nodes", False), ("edges", True)):
        items = list(data[section].items())
        lines.append(f' "{section}": {{')
        lines += [f"  {dumps(k)}: {dumps(v)}{',' if i < len(items) - 1 else ''}"
                  for i, (k, v) in enumerate(items)]
        lines.append(" }" + ("" if last else ","))
    return "\n".join(lines + ["}"])

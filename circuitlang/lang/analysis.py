"""W311 and W312: circuit nodes whose edges cannot do what a reader expects, found by
static graph analysis (circuitlang.core.analysis, with networkx).

Under edge patching (docs/evaluation.md, "Semantics") a receiver reads the circuit's
edges and the ablated value of every other one, so:

- **W311**: a node whose output has no path to `logits` through the circuit cannot
  change the metric, under any ablation: its edges, in and out, change nothing.
- **W312**: a node that no path from `embed` feeds computes on the all-ablated input
  only. Under resample ablation its output then equals its ablated value and its edges
  carry nothing; under mean or zero ablation they carry a term that is the same for every
  prompt. Either way they carry nothing about the prompt. A node that is also a dead end
  gets W311 only; `logits` never gets W312 (the nodes feeding it do).

Which circuits: every circuit of the file that no other circuit of the file is built
from, and every circuit a `check` names. Building blocks (`via_*` in
stdlib/gpt2/ioi.circ) are judged in the circuits that use them. Nodes are reported
where the circuit's body names them (an edge statement's source or target, an
`include`), grouped by that place; a circuit without `logits` (or without `embed`) gets
one warning on its name. Files with errors, and files without a model (W213), are not
analysed.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable, Iterable, Mapping

from ..core.analysis import dead_ends, digraph, unfed_nodes
from ..core.diagnostics import Diagnostic, has_errors
from ..core.graph import EMBED, LOGITS, CircuitGraph, Node
from . import syntax as S
from .lower import Lowerer, _Failed
from .resolve import Program, Symbol, Unit, body_exprs, circuit_scope, iter_exprs

_PATHS_HELP = "`circ paths FILE:CIRCUIT FROM TO` lists the paths the circuit has"


def graph_warnings(program: Program, circuits: Mapping[str, CircuitGraph],
                   diagnostics: Iterable[Diagnostic] = ()) -> list[Diagnostic]:
    """W311 and W312 for the file's circuits (none when the file has errors, or names no
    model: which heads an edge into a key or value input reaches depends on the model's
    grouped-query attention)."""
    unit = program.root
    if has_errors(list(diagnostics)) or unit.shape is None:
        return []
    definitions = {s.name: s for s in unit.module.statements
                   if isinstance(s, S.CircuitDef) and s.name in circuits and not s.is_motif}
    wanted = (set(definitions) - _used_by_others(unit, definitions)) | _checked(unit, definitions)
    out: list[Diagnostic] = []
    places = _Places(program)
    kv_group = unit.shape.kv_group
    for name in sorted(wanted, key=lambda n: definitions[n].span):
        out += _circuit_warnings(circuits[name], definitions[name], places, kv_group)
    return out


def _used_by_others(unit: Unit, definitions: Mapping[str, S.CircuitDef]) -> set[str]:
    """The circuits of the file that another circuit of the file is built from."""
    used: set[str] = set()
    for definition in definitions.values():
        scope = circuit_scope(unit, definition)
        exprs = [definition.expr] if definition.expr is not None else \
            [e for stmt in definition.body or () for e in body_exprs(stmt)]
        for expr in exprs:
            for sub in iter_exprs(expr):
                target = scope.lookup(sub) if isinstance(sub, S.NameRef) else None
                if isinstance(target, Symbol) and target.kind == "circuit" and target.unit is unit and \
                        target.name != definition.name and target.name in definitions:
                    used.add(target.name)
    return used


def _checked(unit: Unit, definitions: Mapping[str, S.CircuitDef]) -> set[str]:
    return {s.target.parts[0] for s in unit.module.statements
            if isinstance(s, S.CheckDef) and isinstance(s.target, S.NameRef) and len(s.target.parts) == 1
            and s.target.parts[0] in definitions}


def _circuit_warnings(graph: CircuitGraph, definition: S.CircuitDef, places: "_Places",
                      kv_group: int) -> list[Diagnostic]:
    if not graph.edges:
        return []
    name = definition.name
    if LOGITS not in graph.nodes:
        n = len(graph.edges)
        what = "its edge cannot" if n == 1 else f"none of its {n} edges can"
        return [Diagnostic("W311", f"circuit `{name}` has no edge into `logits`: {what} change the metric",
                           definition.name_span, "no path to logits",
                           "add the edges that carry its nodes' outputs to `logits`; as a building block of "
                           "another circuit, use it in that circuit")]
    g = digraph(graph, kv_group)
    dead = dead_ends(graph, g, kv_group)
    out = []
    for span, nodes in places.group(definition, dead, outputs=True):
        out.append(Diagnostic(
            "W311", f"{_listed(nodes)} {'has' if len(nodes) == 1 else 'have'} no path to `logits` in circuit "
            f"`{name}`: {'its' if len(nodes) == 1 else 'their'} edges cannot change the metric", span,
            "no path to logits", f"connect {'it' if len(nodes) == 1 else 'them'} to a node that reaches `logits`, "
            f"or remove {'its' if len(nodes) == 1 else 'their'} edges; {_PATHS_HELP}"))
    if EMBED not in graph.nodes:
        return out + [Diagnostic(
            "W312", f"circuit `{name}` has no edge from `embed`: every node computes on the ablated input only, "
            "so no edge carries anything about the prompt", definition.name_span, "not fed by embed",
            "under resample ablation its edges carry nothing, under mean or zero ablation a term that is the "
            "same for every prompt; add the edges that feed it from `embed`")]
    dead_set = set(dead)
    unfed = [n for n in unfed_nodes(graph, g, kv_group) if n not in dead_set and n != LOGITS]
    for span, nodes in places.group(definition, unfed, outputs=False):
        one = len(nodes) == 1
        out.append(Diagnostic(
            "W312", f"no path from `embed` feeds {_listed(nodes)} in circuit `{name}`: "
            f"{'it computes' if one else 'they compute'} on the ablated input only, so "
            f"{'its' if one else 'their'} edges carry nothing about the prompt", span, "not fed by embed",
            "under resample ablation these edges carry nothing, under mean or zero ablation a term that is the "
            f"same for every prompt; add the edges that feed {'it' if one else 'them'}. {_PATHS_HELP}"))
    return out


def _listed(nodes: list[Node]) -> str:
    names = [f"`{n}`" for n in nodes]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


class _Places:
    """Where a circuit's body names each node: the first edge statement source (for a
    node's output) or target (for its input) naming it, else an `include` that brings it,
    else the circuit's name. Expressions are evaluated again with a Lowerer of their own
    (its diagnostics, already reported by the pipeline, are dropped)."""

    def __init__(self, program: Program):
        self.lowerer = Lowerer(program)
        self.unit = program.root

    def group(self, definition: S.CircuitDef, nodes: list[Node], outputs: bool) -> list[tuple[S.Span, list[Node]]]:
        """`nodes` grouped by the place that names them, in file order."""
        if not nodes:
            return []
        where = self._find(definition, set(nodes), outputs)
        grouped: dict[S.Span, list[Node]] = {}
        for n in nodes:
            grouped.setdefault(where.get(n, definition.name_span), []).append(n)
        return sorted(grouped.items(), key=lambda item: item[0])

    def _find(self, definition: S.CircuitDef, nodes: set[Node], outputs: bool) -> dict[Node, S.Span]:
        """The first place naming each node: as a source when `outputs` (else as a target),
        then as the other end, then in an `include`."""
        if definition.body is None:
            return {}
        ctx = replace(self.lowerer.top_context(self.unit), scope=circuit_scope(self.unit, definition))
        edges = [stmt for stmt in definition.body if isinstance(stmt, S.EdgeStmt)]
        sources = [(e.span, e) for stmt in edges for e in stmt.sources]
        targets = [(t.span, t.expr) for stmt in edges for t in stmt.targets]
        places: list[tuple[S.Span, Callable[[], set[Node]]]] = [
            (span, lambda e=expr: {n for n, _ in self.lowerer.nodes_of(e, ctx)})
            for span, expr in (sources + targets if outputs else targets + sources)]
        places += [(stmt.span, lambda e=stmt.expr: set(self.lowerer.circuit_of(e, ctx).nodes))
                   for stmt in definition.body if isinstance(stmt, S.IncludeStmt)]
        found: dict[Node, S.Span] = {}
        for span, named in places:
            try:
                hits = named() & nodes
            except _Failed:  # reported by the pipeline already; the name span stands in
                continue
            for n in hits:
                found.setdefault(n, span)
            if len(found) == len(nodes):
                break
        return found

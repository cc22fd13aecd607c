"""`circ paths FILE:CIRCUIT FROM TO`: the paths from one node to another through a circuit.

Static (no model, no torch): it compiles the file and asks circuitlang.core.analysis,
which uses networkx. A path is a chain of nodes, each hop one or more circuit edges
(`L1.H1.{q,v}`: the previous node feeds L1.H1's query and value inputs). Paths are listed
shortest first, at most `--limit`; the total is always counted exactly.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..core.diagnostics import CircuitError, Diagnostic, did_you_mean
from ..core.spans import Span
from .common import UsageError, compile_or_fail, split_spec

EXAMPLES = """
\b
Examples:
  circ paths stdlib/zoo/induction.circ:induction embed logits
  circ paths stdlib/zoo/induction_trained.circ:found L0.H1 logits
  circ paths stdlib/gpt2/ioi.circ:ioi embed L9.H9 --limit 10 --format json
"""


@click.command("paths", epilog=EXAMPLES)
@click.argument("spec", metavar="FILE:CIRCUIT")
@click.argument("source", metavar="FROM")
@click.argument("target", metavar="TO")
@click.option("--limit", type=click.IntRange(1), default=50, show_default=True,
              help="List at most this many paths (the shortest); the total is still counted.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def paths_command(spec: str, source: str, target: str, limit: int, fmt: str) -> None:
    """List the paths from node FROM to node TO through a circuit.

    FROM and TO are nodes of the circuit as .circ writes them: `embed`, `L1.H2`, `L0.MLP`,
    `logits`. Each line is one chain of nodes; a hop into a head shows the inputs it
    reaches (`L1.H1.{q,v}`: two edges, one into the query and one into the value). Under
    edge patching only these paths carry anything from FROM to TO: a node with no path to
    `logits`, or none from `embed`, gets warning W311 or W312 from `circ check`.

    FILE alone is enough when it defines one circuit. Exit codes: 0 (also when there is no
    path), 1 for a file with errors or a name that is not in it (E301 unknown circuit,
    E313 node not in the circuit), 2 for usage errors.
    """
    from ..core.analysis import find_paths

    path, name = split_spec(spec)
    compiled = compile_or_fail(path)
    graph_name = _circuit_name(compiled, name, path)
    graph = compiled.circuits[graph_name]
    span = _name_span(compiled, graph_name, str(path))
    start = _node(graph, graph_name, source, span)
    end = _node(graph, graph_name, target, span)
    if start == end:
        raise UsageError(f"FROM and TO are the same node ({start})")
    kv_group = compiled.shape.kv_group if compiled.shape is not None else 1
    listing = find_paths(graph, start, end, limit, kv_group)
    if fmt == "json":
        click.echo(json.dumps({
            "file": str(path), "circuit": graph_name, "from": str(start), "to": str(end), "paths": listing.count,
            "edge_paths": listing.edge_count, "shown": len(listing.paths),
            "list": [{"text": listing.text(p), "nodes": [str(start)] + [str(h.receiver) for h in p],
                      "edges": [[str(e) for e in h.edges] for h in p]} for p in listing.paths]}, indent=2))
        return
    if not listing.count:
        why = f"; {start} comes after {end}" if start.sort_key() > end.sort_key() else ""
        click.echo(f"no path from {start} to {end} in circuit `{graph_name}`{why}")
        return
    noun = "path" if listing.count == 1 else "paths"
    edges = "" if listing.edge_count == listing.count else \
        f" ({listing.edge_count} counting each channel and position)"
    click.echo(f"{listing.count} {noun} from {start} to {end} in circuit `{graph_name}`{edges}:")
    for p in listing.paths:
        click.echo(f"  {listing.text(p)}")
    if listing.truncated:
        click.echo(f"showing the {len(listing.paths)} shortest of {listing.count} paths; --limit N shows more")


def _circuit_name(compiled, name: str | None, path: Path) -> str:
    """The circuit asked for; E301 (with did-you-mean) when the file has none of that name."""
    if name is None:
        if len(compiled.circuits) != 1:
            raise UsageError(f"{path} has {len(compiled.circuits)} circuits; name one as {path}:CIRCUIT")
        return next(iter(compiled.circuits))
    if name not in compiled.circuits:
        raise CircuitError([Diagnostic(
            "E301", f"no circuit `{name}` in {path}", Span(str(path), 0, 0, 0, 0), "",
            did_you_mean(name, compiled.circuits) or f"its circuits: {', '.join(compiled.circuits) or 'none'}")])
    return name


def _name_span(compiled, name: str, path: str) -> Span:
    """Where the circuit is defined (its name), for diagnostics about its nodes."""
    from ..lang import syntax as S

    module = compiled.program.root.module if compiled.program else None
    for stmt in module.statements if module else ():
        if isinstance(stmt, S.CircuitDef) and stmt.name == name:
            return stmt.name_span
    return Span(path, 0, 0, 0, 0)


def _node(graph, circuit: str, text: str, span: Span):
    """The circuit's node written `text`; E313 when it has none."""
    from ..core.analysis import names, node_named

    node = node_named(graph, text)
    if node is None:
        known = names(graph.nodes)
        raise CircuitError([Diagnostic(
            "E313", f"`{text}` is not a node of circuit `{circuit}`", span, f"circuit `{circuit}`",
            did_you_mean(text, known) or f"its nodes: {', '.join(known[:12])}{' ...' if len(known) > 12 else ''}")])
    return node

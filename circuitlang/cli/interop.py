"""`circ import` and `circ export`: the graph JSON of EAP-IG and MIB, to and from .circ."""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

import click

from .common import UsageError, check_writable, compile_or_fail, pick_circuit, split_spec, write_output

IMPORT_EXAMPLES = """
\b
Examples:
  circ import graph.json -o found.circ                 # the edges the file marks in_graph
  circ import graph.json --model gpt2 --top 50 -o top50.circ
  circ import scores.json --all --name scores -o scores.circ
"""

EXPORT_EXAMPLES = """
\b
Examples:
  circ export found.circ --to mib -o graph.json
  circ export stdlib/zoo/induction.circ:induction --to mib -o induction.json
  circ export positional.circ --to mib --drop-positions -o graph.json
"""


@click.command("import", epilog=IMPORT_EXAMPLES)
@click.argument("file", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Write the .circ file here (default: stdout).")
@click.option("--model", help="The model the graph is for (default: inferred from the file's cfg).")
@click.option("--name", "circuit_name", help="The circuit's name (default: from the file name).")
@click.option("--all", "take_all", is_flag=True, help="Import every edge listed, not only those in_graph.")
@click.option("--top", "top", type=click.IntRange(1), help="Import the K edges of largest |score|.")
def import_command(file: Path, output: Path | None, model: str | None, circuit_name: str | None,
                   take_all: bool, top: int | None) -> None:
    """Read a circuit from the graph JSON of EAP-IG or the MIB benchmark and write it as
    canonical .circ, each edge's score as `[score = s]`.

    Node names `input`, `a{l}.h{h}`, `m{l}`, `logits` become `embed`, `L{l}.H{h}`,
    `L{l}.MLP`, `logits`; `a9.h6->a10.h0<q>` becomes `L9.H6 -> L10.H0.q`. Problems in the
    file are diagnostics (codes E601-E610, docs/diagnostics.md) with line and column.
    """
    from ..lang.write import graph_to_circ
    from ..present.diagnostic_text import write_diagnostics
    from ..present.interop.names import circuit_name_for, is_circuit_name
    from ..present.interop.read import import_header, load_mib

    if take_all and top is not None:
        raise UsageError("--all and --top cannot be used together")
    if not file.is_file():
        raise UsageError(f"no such file: {file}")
    check_writable(output)
    _refuse_overwriting(file, output)
    include: str | int = "all" if take_all else ("in_graph" if top is None else top)
    name = circuit_name or circuit_name_for(file)
    if not is_circuit_name(name):
        raise UsageError(f"`{name}` cannot name a circuit (letters, digits and _, not a keyword)")
    graph, diagnostics = load_mib(file, model=model, include=include, name=name)
    write_diagnostics(diagnostics, "full", sys.stderr)
    if graph is None or any(d.is_error for d in diagnostics):
        sys.exit(1)
    text = graph_to_circ(graph, graph.model, import_header(str(file), graph, include, model is None))
    if output is None:
        click.echo(text, nl=False)
    else:
        write_output(output, text)
        click.echo(f"wrote {output} (circuit {name}: {len(graph.nodes)} nodes, {len(graph.edges)} edges)", err=True)


@click.command("export", epilog=EXPORT_EXAMPLES)
@click.argument("spec", metavar="FILE[:CIRCUIT]")
@click.option("--circuit", "circuit_name", help="Which circuit (default: the last one in the file; or FILE:CIRCUIT).")
@click.option("--to", "target", type=click.Choice(["mib", "eap-ig"]), default="mib", show_default=True,
              help="The format: MIB and EAP-IG share one graph JSON layout.")
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Write the JSON here (default: stdout).")
@click.option("--drop-positions", is_flag=True,
              help="Write an edge with positions once, scores summed (default: refuse, E608).")
@click.option("--unscored", default="0", show_default=True, metavar="NUMBER|null",
              help="The score written for edges without one. 0, because current EAP-IG's Graph.from_json "
              "cannot load null; `null` writes what the older EAP-IG wrote.")
def export_command(spec: str, circuit_name: str | None, target: str, output: Path | None,
                   drop_positions: bool, unscored: str) -> None:
    """Write a circuit as the graph JSON of EAP-IG and the MIB benchmark: every edge of the
    model, `in_graph` true for the circuit's edges, each edge's `score` annotation as its score.

    FILE:CIRCUIT names the circuit, as `circ diff` takes it (or --circuit; default: the
    file's last circuit). Edges without a score get --unscored (0: EAP-IG's loader needs a
    number; an edge in the graph is still in the graph, whatever its score).
    """
    from ..core.spans import Span
    from ..present.diagnostic_text import write_diagnostics
    from ..present.interop.write import check_exportable, graph_json_text, graph_to_mib

    file, named = split_spec(spec)
    if named and circuit_name and named != circuit_name:
        raise UsageError(f"{spec} and --circuit {circuit_name} name different circuits; give one")
    fill = _unscored(unscored)
    check_writable(output)
    _refuse_overwriting(file, output)
    result = compile_or_fail(file)
    graph = pick_circuit(result, named or circuit_name)
    symbol = result.program.root.symbols.get(graph.name) if result.program else None
    span = getattr(symbol.definition, "name_span", None) if symbol else None
    if span is None or not span.line:
        span = Span(str(file), 1, 1, 1, 2)
    problems = check_exportable(graph, result.shape, span, drop_positions)
    write_diagnostics(problems, "full", sys.stderr)
    if any(d.is_error for d in problems):
        sys.exit(1)
    text = graph_json_text(graph_to_mib(graph, result.shape, drop_positions=drop_positions, unscored=fill)) + "\n"
    if output is None:
        click.echo(text, nl=False)
    else:
        write_output(output, text)
        click.echo(f"wrote {output} ({target} graph JSON: {len(graph.edges)} edges in the circuit)", err=True)


def _refuse_overwriting(source: Path, output: Path | None) -> None:
    """-o naming the input file would replace what is being read."""
    if output is not None and output.exists() and source.exists() and os.path.samefile(output, source):
        raise UsageError(f"-o {output} is the input file; writing there would replace it", "write to another file")


def _unscored(text: str) -> float | None:
    """--unscored: `null` (None) or a finite number; NaN and infinity are not JSON."""
    if text.strip().lower() == "null":
        return None
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"--unscored {text}: not a number", "give a number such as 0, or null") from None
    if not math.isfinite(value):
        raise UsageError(f"--unscored {text}: must be a finite number (NaN and infinity are not JSON)",
                         "give a number such as 0, or null")
    return value

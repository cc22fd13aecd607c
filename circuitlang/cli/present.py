"""`circ fmt` (the canonical layout), `circ render` (a drawing) and `circ diff` (what two
circuits disagree on): the commands that show .circ files, with no model."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from .common import UsageError, circ_files, compile_or_fail, pick_circuit, split_spec

FMT_EXAMPLES = """
\b
Examples:
  circ fmt ioi.circ             # rewrite in place
  circ fmt --check stdlib/      # exit 1 if any file would change (for CI)
  cat ioi.circ | circ fmt -     # read stdin, write stdout
"""

RENDER_EXAMPLES = """
\b
Examples:
  circ render ioi.circ -o ioi.svg
  circ render stdlib/gpt2/ioi.circ --circuit ioi -o ioi.png
  circ render ioi.circ -o ioi.dot     # Graphviz source; needs no `dot`
"""

DIFF_EXAMPLES = """
\b
Examples:
  circ diff acdc.circ hanna.circ
  circ diff gt.circ:acdc gt.circ:hanna --format svg -o gt-diff.svg
  circ diff a.circ b.circ --format json
"""


@click.command("fmt", epilog=FMT_EXAMPLES)
@click.argument("paths", nargs=-1, required=True)
@click.option("--check", "check_only", is_flag=True, help="Change nothing; exit 1 if a file is not formatted.")
def fmt_command(paths: tuple[str, ...], check_only: bool) -> None:
    """Rewrite .circ files in the one canonical layout (comments kept, meaning unchanged).

    `-` reads standard input and writes the formatted text to standard output.
    """
    from ..lang.fmt import format_module
    from ..lang.parse import parse_file, parse_text
    from ..present.diagnostic_text import write_diagnostics

    if paths == ("-",):
        text = sys.stdin.read()
        module, diagnostics = parse_text(text, "<stdin>")
        errors = [d for d in diagnostics if d.is_error]
        if errors:
            write_diagnostics(errors, "full", sys.stderr, {"<stdin>": text})
            sys.exit(1)
        sys.stdout.write(format_module(module))
        return
    changed = failed = 0
    for file in circ_files(paths):
        module, diagnostics = parse_file(file)
        errors = [d for d in diagnostics if d.is_error]
        if errors:
            write_diagnostics(errors, "full", sys.stderr)
            failed += 1
            continue
        new = format_module(module)
        if new == module.source:
            continue
        changed += 1
        if check_only:
            click.echo(f"would reformat {file}")
        else:
            file.write_text(new, encoding="utf-8")
            click.echo(f"reformatted {file}")
    if not check_only and not changed and not failed:
        click.echo("all files already formatted", err=True)
    sys.exit(1 if failed or (check_only and changed) else 0)


@click.command(epilog=RENDER_EXAMPLES)
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--circuit", "circuit_name", help="Which circuit (default: the last one in the file).")
@click.option("-o", "--output", type=click.Path(path_type=Path),
              help="Output file: .svg, .png, .pdf or .dot (default: FILE's name with .svg).")
def render(file: Path, circuit_name: str | None, output: Path | None) -> None:
    """Draw a circuit: layers bottom to top, heads and MLPs distinct, q/k/v on edges,
    groups as boxes, scores as edge widths. SVG, PNG and PDF need Graphviz's `dot`.
    """
    from ..lang.lower import groups_of
    from ..present.render import to_dot

    result = compile_or_fail(file)
    graph = pick_circuit(result, circuit_name)
    output = output or Path(file.with_suffix(".svg").name)
    dot = to_dot(graph, title=f"{graph.name} ({result.model or 'no model'})",
                 groups=groups_of(result.program, graph.name))
    _render(dot, output)
    click.echo(f"wrote {output} ({len(graph.nodes)} nodes, {len(graph.edges)} edges)", err=True)


@click.command(epilog=DIFF_EXAMPLES)
@click.argument("a")
@click.argument("b")
@click.option("--circuit", "circuit_name", help="Compare only this circuit (present in both files).")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "svg"]), default="text", show_default=True)
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Write the SVG (or text/JSON) here.")
def diff(a: str, b: str, circuit_name: str | None, fmt: str, output: Path | None) -> None:
    """Show what two circuits disagree on: nodes and edges added and removed.

    A and B are files, or FILE:CIRCUIT to pick one circuit from each. Circuits are paired
    by name; two files with one circuit each are compared whatever the names. Exits 0 when
    the circuits are the same, 1 when they differ (like diff(1)).
    """
    from ..present.diff import diff_graphs, pair_circuits
    from ..present.render import to_diff_dot

    path_a, name_a = split_spec(a)
    path_b, name_b = split_spec(b)
    result_a, result_b = compile_or_fail(path_a), compile_or_fail(path_b)
    if name_a or name_b or circuit_name:
        pairs = [(name_a or circuit_name, name_b or circuit_name)]
        for side, result, name in (("A", result_a, pairs[0][0]), ("B", result_b, pairs[0][1])):
            if name is not None and name not in result.circuits:
                raise UsageError(f"no circuit `{name}` in {side} ({result.path}); it has: "
                                 f"{', '.join(result.circuits) or 'none'}")
        if pairs[0][0] is None or pairs[0][1] is None:
            pairs = [(pairs[0][0] or _only(result_a), pairs[0][1] or _only(result_b))]
    else:
        pairs = pair_circuits(result_a.circuits, result_b.circuits)
    diffs, lonely = [], []
    for left, right in pairs:
        if left is None or right is None:
            lonely.append((left, right))
            continue
        diffs.append(diff_graphs(result_a.circuits[left], result_b.circuits[right],
                                 f"{path_a}:{left}", f"{path_b}:{right}"))
    differs = bool(lonely) or any(not d.is_empty for d in diffs)
    if fmt == "svg":
        if len(diffs) != 1:
            raise UsageError("--format svg draws one pair of circuits: pick it with --circuit or FILE:CIRCUIT")
        (left, right), = [(p[0], p[1]) for p in pairs if p[0] and p[1]]
        target = output or Path("diff.svg")
        _render(to_diff_dot(result_a.circuits[left], result_b.circuits[right],
                            labels=(f"{path_a.name}:{left}", f"{path_b.name}:{right}")), target)
        click.echo(f"wrote {target}", err=True)
    else:
        if fmt == "json":
            text = json.dumps({"pairs": [d.to_json() for d in diffs],
                               "only_in_a": [l for l, r in lonely if l], "only_in_b": [r for l, r in lonely if r]},
                              indent=2)
        else:
            parts = [d.to_text() for d in diffs]
            parts += [f"only in {path_a}: circuit {l}" for l, r in lonely if l]
            parts += [f"only in {path_b}: circuit {r}" for l, r in lonely if r]
            text = "\n".join(parts)
        if output:
            output.write_text(text + "\n", encoding="utf-8")
        else:
            click.echo(text)
    sys.exit(1 if differs else 0)


def _render(dot: str, output: Path) -> None:
    """Draw with Graphviz; a missing or failing `dot` is a usage problem (exit 2)."""
    from ..present.render import RenderError, render_dot

    try:
        render_dot(dot, output)
    except RenderError as err:
        raise UsageError(err.message, err.help) from None


def _only(result) -> str:
    if len(result.circuits) != 1:
        raise UsageError(f"{result.path} has {len(result.circuits)} circuits; name one with FILE:CIRCUIT")
    return next(iter(result.circuits))

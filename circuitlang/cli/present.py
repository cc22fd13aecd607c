"""`circ fmt` (the canonical layout), `circ render` (a drawing) and `circ diff` (what two
circuits disagree on): the commands that show .circ files, with no model."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import click

from .common import UsageError, check_writable, circ_files, compile_or_fail, pick_circuit, split_spec, write_output

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
  circ diff gt.circ:acdc gt.circ:hanna --format svg --collapse -o gt-classes.png
"""


@click.command("fmt", epilog=FMT_EXAMPLES)
@click.argument("paths", nargs=-1, required=True)
@click.option("--check", "check_only", is_flag=True, help="Change nothing; exit 1 if a file is not formatted.")
def fmt_command(paths: tuple[str, ...], check_only: bool) -> None:
    """Rewrite .circ files in the one canonical layout (comments kept, meaning unchanged).

    `-` reads standard input and writes the formatted text to standard output. A file
    that does not parse is never changed; nor is one whose formatted text would not read
    back the same (a bug in fmt, reported as an error, exit 2).
    """
    if paths == ("-",):
        sys.exit(_fmt_stdin(check_only))
    changed = failed = broken = 0
    for file in circ_files(paths):
        try:
            outcome = _fmt_file(file, check_only)
        except UsageError as err:  # the file cannot be written: say so, go on with the others
            click.echo(f"error: {err.message}", err=True)
            if err.help:
                click.echo(f"  = help: {err.help}", err=True)
            failed += 1
            continue
        changed += outcome == "changed"
        failed += outcome == "failed"
        broken += outcome == "broken"
    if not check_only and not changed and not failed and not broken:
        click.echo("all files already formatted", err=True)
    sys.exit(2 if broken else 1 if failed or (check_only and changed) else 0)


def _fmt_file(file: Path, check_only: bool) -> str:
    """Format one file in place (or only say it would change); returns `unchanged`,
    `changed`, `failed` (it does not parse) or `broken` (fmt would change its meaning)."""
    from ..lang.parse import parse_file

    module, diagnostics = parse_file(file)
    new, status = _formatted(module, diagnostics)
    if new is None:
        return status
    if new == module.source:
        return "unchanged"
    if check_only:
        click.echo(f"would reformat {file}")
    else:
        check_writable(file, "fmt")
        write_output(file, new, "fmt")
        click.echo(f"reformatted {file}")
    return "changed"


def _fmt_stdin(check_only: bool) -> int:
    """`circ fmt -`: standard input read by the rules for files (a byte-order mark is
    dropped; NUL bytes, invalid UTF-8 and oversized input are E003, E002, E004)."""
    from ..lang.parse import parse_text
    from ..lang.source import read_stream
    from ..lang.syntax import Module

    text, diagnostics = read_stream(sys.stdin.buffer, "<stdin>")
    module = Module((), "<stdin>")
    if text is not None:
        module, diagnostics = parse_text(text, "<stdin>")
    new, status = _formatted(module, diagnostics)
    if new is None:
        return 2 if status == "broken" else 1
    if check_only:
        if new != text:
            click.echo("would reformat <stdin>")
            return 1
        return 0
    sys.stdout.write(new)
    return 0


def _formatted(module, diagnostics: list) -> tuple[str | None, str]:
    """The canonical text and `ok`; or None, after printing why, and `failed` (the file
    does not parse: its errors) or `broken` (fmt's output would not read back the same)."""
    from ..lang.fmt import FormatError, format_verified
    from ..present.diagnostic_text import write_diagnostics

    errors = [d for d in diagnostics if d.is_error]
    if errors:
        # The text as read, so the renderer never opens the path itself (a pipe would block).
        write_diagnostics(errors, "full", sys.stderr, {d.span.path: module.source for d in errors})
        return None, "failed"
    try:
        return format_verified(module), "ok"
    except FormatError as err:
        click.echo(f"error: {err.message}", err=True)
        click.echo(f"  = help: {err.help}", err=True)
        return None, "broken"


def _class_level_options(fn):
    """--no-embed and --no-labels, the options of a class-level drawing (render, diff)."""
    fn = click.option("--no-labels", is_flag=True, help="With --collapse: no channel/count labels on the arrows.")(fn)
    return click.option("--no-embed", is_flag=True, help="With --collapse: leave out embed and its edges.")(fn)


def _check_class_level(collapse: bool, no_embed: bool, no_labels: bool) -> None:
    if (no_embed or no_labels) and not collapse:
        raise UsageError("--no-embed and --no-labels go with --collapse")


@click.command(epilog=RENDER_EXAMPLES)
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--circuit", "circuit_name", help="Which circuit (default: the last one in the file).")
@click.option("-o", "--output", type=click.Path(path_type=Path),
              help="Output file: .svg, .png, .pdf or .dot (default: FILE's name with .svg).")
@click.option("--force", is_flag=True,
              help="Draw even a circuit of more than 2,000 edges (Graphviz may take minutes; .dot is always written).")
@click.option("--collapse", is_flag=True,
              help="Class level: each group one node, the edges between two classes one arrow with their count "
                   "(as IOI is drawn in the paper).")
@_class_level_options
def render(file: Path, circuit_name: str | None, output: Path | None, force: bool, collapse: bool, no_embed: bool,
           no_labels: bool) -> None:
    """Draw a circuit: layers bottom to top, heads and MLPs distinct, q/k/v on edges,
    groups as boxes, scores as edge widths; with --collapse, at class level (one node per
    group). SVG, PNG and PDF need Graphviz's `dot`.
    """
    from ..lang.lower import groups_of
    from ..present.render import to_class_dot, to_dot

    _check_class_level(collapse, no_embed, no_labels)
    output = output or Path(file.with_suffix(".svg").name)
    _check_output(output, picture=True)
    result = compile_or_fail(file)
    graph = pick_circuit(result, circuit_name)
    groups = groups_of(result.program, graph.name)
    title = f"{graph.name} ({result.model or 'no model'})"
    if collapse:
        _render(to_class_dot(graph, groups, title=title, embed=not no_embed, labels=not no_labels), output,
                len(graph.edges))
        click.echo(f"wrote {output} ({len(graph.nodes)} nodes, {len(graph.edges)} edges, at class level)", err=True)
        return
    _check_drawable(len(graph.edges), output, force)
    dot = to_dot(graph, title=title, groups=groups)
    _render(dot, output, len(graph.edges))
    click.echo(f"wrote {output} ({len(graph.nodes)} nodes, {len(graph.edges)} edges)", err=True)


@click.command(epilog=DIFF_EXAMPLES)
@click.argument("a")
@click.argument("b")
@click.option("--circuit", "circuit_name", help="Compare only this circuit (present in both files).")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "svg"]), default="text", show_default=True)
@click.option("-o", "--output", type=click.Path(path_type=Path),
              help="Write the drawing (.svg, .png, .pdf or .dot) or the text/JSON here.")
@click.option("--force", is_flag=True, help="Draw the SVG even for more than 2,000 edges (Graphviz may take minutes).")
@click.option("--collapse", is_flag=True,
              help="With --format svg: draw at class level, each group one node and the edges between two classes "
                   "one arrow, coloured by side; an arrow or group with members on several sides is drawn in a "
                   "neutral colour and labelled with the count on each side. Groups come from both files; a "
                   "group both define with different members is drawn with A's (a warning says so).")
@_class_level_options
def diff(a: str, b: str, circuit_name: str | None, fmt: str, output: Path | None, force: bool, collapse: bool,
         no_embed: bool, no_labels: bool) -> None:
    """Show what two circuits disagree on: nodes and edges added and removed.

    A and B are files, or FILE:CIRCUIT to pick one circuit from each. Circuits are paired
    by name; two files with one circuit each are compared whatever the names. Exits 0 when
    the circuits are the same, 1 when they differ (like diff(1)). Each side's model is
    shown (text headers, `model_a`/`model_b` in JSON); circuits of two different models
    are still compared (a fine-tuned checkpoint keeps its base model's node names), with
    a warning, since `L9.H6` then names two different heads.
    """
    from ..present.diff import diff_graphs, models_differ

    _check_class_level(collapse, no_embed, no_labels)
    if collapse and fmt != "svg":
        raise UsageError("--collapse draws the diff: add --format svg (-o names .svg, .png, .pdf or .dot)")
    if fmt == "svg":
        output = output or Path("diff.svg")
    _check_output(output, picture=fmt == "svg")
    path_a, name_a = split_spec(a)
    path_b, name_b = split_spec(b)
    result_a, result_b = compile_or_fail(path_a), compile_or_fail(path_b)
    models = (result_a.model, result_b.model)
    mismatch = models_differ(*models)
    if mismatch:
        click.echo(f"warning: the circuits are for different models: {mismatch}; the same node name "
                   "can mean different components", err=True)
    pairs = _diff_pairs(result_a, result_b, name_a, name_b, circuit_name)
    diffs, lonely = [], []
    for left, right in pairs:
        if left is None or right is None:
            lonely.append((left, right))
            continue
        diffs.append(diff_graphs(result_a.circuits[left], result_b.circuits[right],
                                 f"{path_a}:{left}", f"{path_b}:{right}", models))
    differs = bool(lonely) or any(not d.is_empty for d in diffs)
    if fmt == "svg":
        style = _DiffStyle(collapse, not no_embed, not no_labels)
        _diff_svg(result_a, result_b, pairs, (path_a, path_b), output, force, style)
    else:
        text = _diff_json(diffs, lonely, models, mismatch) if fmt == "json" else \
            _diff_text(diffs, lonely, path_a, path_b)
        if output:
            write_output(output, text + "\n", "-o")
        else:
            click.echo(text)
    sys.exit(1 if differs else 0)


def _diff_pairs(result_a, result_b, name_a, name_b, circuit_name) -> list:
    """Which circuits of A and B to compare: those named, else paired by name."""
    from ..present.diff import pair_circuits

    if not (name_a or name_b or circuit_name):
        return pair_circuits(result_a.circuits, result_b.circuits)
    pairs = [(name_a or circuit_name, name_b or circuit_name)]
    for side, result, name in (("A", result_a, pairs[0][0]), ("B", result_b, pairs[0][1])):
        if name is not None and name not in result.circuits:
            raise UsageError(f"no circuit `{name}` in {side} ({result.path}); it has: "
                             f"{', '.join(result.circuits) or 'none'}")
    return [(pairs[0][0] or _only(result_a), pairs[0][1] or _only(result_b))]


@dataclass(frozen=True)
class _DiffStyle:
    """How `circ diff --format svg` draws: at class level or not, with embed, with labels."""

    collapse: bool = False
    embed: bool = True
    labels: bool = True


def _diff_svg(result_a, result_b, pairs: list, paths: tuple[Path, Path], target: Path, force: bool,
              style: _DiffStyle = _DiffStyle()) -> None:
    """Draw the one pair of circuits compared, A's edges red, B's green; at class level
    with `style.collapse` (never too big to draw: one node per class)."""
    from ..lang.lower import groups_of
    from ..present.render import to_class_diff_dot, to_diff_dot

    if sum(1 for left, right in pairs if left and right) != 1:
        raise UsageError("--format svg draws one pair of circuits: pick it with --circuit or FILE:CIRCUIT")
    (left, right), = [(p[0], p[1]) for p in pairs if p[0] and p[1]]
    graph_a, graph_b = result_a.circuits[left], result_b.circuits[right]
    names = (f"{paths[0].name}:{left}", f"{paths[1].name}:{right}")
    edges = len(graph_a.edges | graph_b.edges)
    if style.collapse:
        groups = _diff_groups(groups_of(result_a.program, left), groups_of(result_b.program, right))
        _render(to_class_diff_dot(graph_a, graph_b, groups, names=names, embed=style.embed, labels=style.labels),
                target, edges)
        click.echo(f"wrote {target} (at class level)", err=True)
        return
    _check_drawable(edges, target, force)
    _render(to_diff_dot(graph_a, graph_b, labels=names), target, edges)
    click.echo(f"wrote {target}", err=True)


def _diff_groups(groups_a: dict, groups_b: dict) -> dict:
    """The groups a class-level diff collapses: A's, then those only B defines. A group
    both files define with different members is drawn with A's members, and a warning
    names it, so the picture never silently means two things by one name."""
    for name in sorted(groups_a.keys() & groups_b.keys()):
        if groups_a[name] != groups_b[name]:
            click.echo(f"warning: group `{name}` has different members in A and B; drawn with A's "
                       f"(only A's has {_names(groups_a[name] - groups_b[name])}; "
                       f"only B's has {_names(groups_b[name] - groups_a[name])})", err=True)
    return {**groups_a, **{name: nodes for name, nodes in groups_b.items() if name not in groups_a}}


def _names(nodes, most: int = 4) -> str:
    """A few node names, sorted, for a message (`none` for none, `...` past `most`)."""
    from ..core.graph import Node

    names = [str(n) for n in sorted(nodes, key=Node.sort_key)]
    return ", ".join(names[:most]) + (", ..." if len(names) > most else "") if names else "none"


def _diff_json(diffs: list, lonely: list, models: tuple, mismatch: str | None) -> str:
    """The diff as JSON: both models, whether they are the same, each pair, the circuits
    with no partner."""
    return json.dumps({"model_a": models[0], "model_b": models[1], "same_model": mismatch is None,
                       "pairs": [d.to_json() for d in diffs],
                       "only_in_a": [l for l, r in lonely if l], "only_in_b": [r for l, r in lonely if r]},
                      indent=2)


def _diff_text(diffs: list, lonely: list, path_a: Path, path_b: Path) -> str:
    """Each pair's listing, then the circuits with no partner."""
    parts = [d.to_text() for d in diffs]
    parts += [f"only in {path_a}: circuit {l}" for l, r in lonely if l]
    parts += [f"only in {path_b}: circuit {r}" for l, r in lonely if r]
    return "\n".join(parts)


def _check_output(output: Path | None, picture: bool) -> None:
    """Refuse, before any work, an output path that cannot be written and, for a picture,
    one whose suffix names no format (exit 2)."""
    from ..present.render import RenderError, output_format

    check_writable(output, "-o")
    if picture and output is not None:
        try:
            output_format(output)
        except RenderError as err:
            raise UsageError(err.message, err.help) from None


def _check_drawable(edges: int, output: Path, force: bool) -> None:
    """A graph too big to draw in reasonable time is refused unless --force (exit 2)."""
    from ..present.render import RenderError, check_drawable

    try:
        check_drawable(edges, output, force)
    except RenderError as err:
        raise UsageError(err.message, err.help) from None


def _render(dot: str, output: Path, edges: int = 0) -> None:
    """Draw with Graphviz; a missing or failing `dot` is a usage problem (exit 2)."""
    from ..present.render import DRAWN_FORMATS, SLOW_DRAW_EDGES, RenderError, output_format, render_dot

    try:
        if edges >= SLOW_DRAW_EDGES and output_format(output) in DRAWN_FORMATS:
            click.echo(f"drawing {edges:,} edges with Graphviz; this can take a while", err=True)
        render_dot(dot, output)
    except RenderError as err:
        raise UsageError(err.message, err.help) from None


def _only(result) -> str:
    if len(result.circuits) != 1:
        raise UsageError(f"{result.path} has {len(result.circuits)} circuits; name one with FILE:CIRCUIT")
    return next(iter(result.circuits))

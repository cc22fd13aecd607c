"""The `circ` command line: check, fmt, render, diff, import/export (and `circ models`).

Exit codes everywhere: 0 clean, 1 diagnostics (or failed hypotheses, or differences
for `diff`), 2 usage or internal error. An internal error prints one line; `--debug`
adds the traceback. Heavy imports (torch, transformer_lens) never happen here: the
static commands must start fast.
"""

from __future__ import annotations

import sys
import traceback
from pathlib import Path
from typing import Iterable

import click

from . import __version__
from .cli_discover import discover
from .cli_evaluate import echo_outcome_messages, evaluate_files, model_options, ProgressBar, run_options

EXAMPLES = {
    "check": """
\b
Examples:
  circ check stdlib/zoo/induction.circ    # static checks, then every hypothesis on the model
  circ check --static stdlib/             # every .circ file below a folder, no model loaded
  circ check --static --format concise a.circ b.circ
""",
    "eval": """
\b
Examples:
  circ eval stdlib/zoo/induction.circ --json report.json --markdown report.md
  circ eval mine.circ --circuit induction --task repeat_tokens
""",
    "fmt": """
\b
Examples:
  circ fmt ioi.circ             # rewrite in place
  circ fmt --check stdlib/      # exit 1 if any file would change (for CI)
  cat ioi.circ | circ fmt -     # read stdin, write stdout
""",
    "render": """
\b
Examples:
  circ render ioi.circ -o ioi.svg
  circ render stdlib/gpt2/ioi.circ --circuit ioi -o ioi.png
  circ render ioi.circ -o ioi.dot     # Graphviz source; needs no `dot`
""",
    "diff": """
\b
Examples:
  circ diff acdc.circ hanna.circ
  circ diff gt.circ:acdc gt.circ:hanna --format svg -o gt-diff.svg
  circ diff a.circ b.circ --format json
""",
}


class _Fail(Exception):
    """A usage problem found after parsing the options: message, exit 2."""


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="circ")
@click.option("--debug", is_flag=True, help="Show tracebacks of internal errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """circuitlang: write transformer circuits as text, check them against a model, compose,
    diff and render them.

    A .circ file names a model, the components of a circuit (heads `L9.H6`, MLPs `L3.MLP`,
    `embed`, `logits`), the edges between them, and the hypotheses claimed about them.
    Run `circ COMMAND --help` for each command; docs/language.md is the language reference.
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


def _circ_files(paths: Iterable[str]) -> list[Path]:
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*.circ") if p.is_file())
            if not found:
                raise _Fail(f"no .circ files under {raw}")
            files += found
        elif path.exists():
            files.append(path)
        else:
            raise _Fail(f"no such file or directory: {raw}")
    return files


# ---------------------------------------------------------------------------------
# check
# ---------------------------------------------------------------------------------


@cli.command(epilog=EXAMPLES["check"])
@click.argument("paths", nargs=-1, required=True)
@click.option("--static", "static", is_flag=True,
              help="Only parse and check against the model's shape; load no model and run no hypothesis.")
@click.option("--format", "fmt", type=click.Choice(["full", "concise", "json"]), default="full",
              show_default=True, help="How to print diagnostics (and, with json, the verdicts).")
@click.option("--strict", is_flag=True, help="Treat warnings as errors (exit 1).")
@model_options
def check(paths: tuple[str, ...], static: bool, fmt: str, strict: bool, device: str, dtype: str, batch_size: int,
          seed: int | None, skip_unavailable: bool) -> None:
    """Check .circ files, then evaluate their hypotheses on the model.

    PATHS are files or folders (searched for *.circ). First the static checks: syntax,
    names, imports, the model's shape, edges, tasks and checks, printed as diagnostics
    with file, line, column and a stable code (docs/diagnostics.md). Then, unless
    --static, every `check` block runs on the model the file names and each `expect`
    prints its measured value and pass or FAIL. Exits 1 if any file has an error or any
    hypothesis fails, so it can gate CI.
    """
    import json

    from .api import compile_file
    from .report import summary, write_diagnostics

    files = _circ_files(paths)
    compiled = [compile_file(file) for file in files]
    everything = [d for c in compiled for d in c.diagnostics]
    if fmt == "json" and static:
        write_diagnostics(everything, fmt)
    elif fmt != "json":
        write_diagnostics(everything, fmt)
        click.echo(summary(everything, len(files)), err=True)
    failed = any(d.is_error for d in everything) or (strict and bool(everything))
    if not static:
        options = run_options(device, dtype, batch_size, seed, skip_unavailable)
        outcomes, eval_failed = evaluate_files([c for c in compiled if c.ok], options, fmt, details=False)
        failed = failed or eval_failed
        if fmt == "json":
            from .eval_report import checks_json
            from .report import to_json

            click.echo(json.dumps({"diagnostics": [to_json(d) for d in everything],
                                   "files": [{**checks_json(o.path, o.checks, o.problems),
                                              "problems": [vars(p) for p in o.problems],
                                              "skipped": o.skipped} for o in outcomes]}, indent=2))
        elif outcomes:
            checks = sum(len(o.checks) for o in outcomes)
            passed = sum(c.passed for o in outcomes for c in o.checks)
            click.echo(f"{passed} of {checks} check(s) passed", err=True)
    sys.exit(1 if failed else 0)


@cli.command("eval", epilog=EXAMPLES["eval"])
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--json", "json_path", type=click.Path(path_type=Path), help="Write the full report as JSON here.")
@click.option("--markdown", "md_path", type=click.Path(path_type=Path), help="Write the report as Markdown here.")
@click.option("--circuit", "circuit_name", help="Evaluate this circuit (with --task) instead of the check blocks.")
@click.option("--task", "task_name", help="The task to evaluate --circuit on.")
@click.option("--completeness", "samples", type=click.IntRange(0), default=10, show_default=True,
              help="Random node subsets to try for completeness (unless a check sets `samples`).")
@model_options
def eval_command(file: Path, json_path: Path | None, md_path: Path | None, circuit_name: str | None,
                 task_name: str | None, samples: int, device: str, dtype: str, batch_size: int, seed: int | None,
                 skip_unavailable: bool) -> None:
    """Evaluate a file's circuits on its model and write a full report.

    For each `check` block: every expectation's verdict, the circuit's faithfulness,
    each edge's and node's contribution (minimality) and the completeness found, with
    per-example metric values in the JSON. With --circuit and --task, evaluates that
    pair without a check block.
    """
    from rich.console import Console

    from .check import CheckSpec
    from .eval_report import checks_json, dumps, markdown, print_terminal
    from .runner import FileOutcome, run_checks

    compiled = _compile_or_exit(file)
    options = run_options(device, dtype, batch_size, seed, skip_unavailable)
    options.full_report, options.completeness_samples = True, samples
    if circuit_name or task_name:
        if not (circuit_name and task_name):
            raise _Fail("--circuit and --task go together")
        if task_name not in compiled.tasks:
            raise _Fail(f"no task `{task_name}` in {file}; it has: {', '.join(compiled.tasks) or 'none'}")
        circuit = _pick_circuit(compiled, circuit_name)
        compiled.checks = [CheckSpec(circuit, compiled.tasks[task_name], ())]
    if not compiled.checks:
        raise _Fail(f"{file} has no check blocks; name a circuit and task with --circuit and --task")
    with ProgressBar() as bar:
        options.progress = bar
        outcome: FileOutcome = run_checks(compiled, options)
    console = Console()
    print_terminal(console, str(file), outcome.checks, details=True)
    echo_outcome_messages(outcome)
    if json_path:
        json_path.write_text(dumps({**checks_json(str(file), outcome.checks, outcome.problems),
                                    "problems": [vars(p) for p in outcome.problems]}) + "\n", encoding="utf-8")
        click.echo(f"wrote {json_path}", err=True)
    if md_path:
        md_path.write_text(markdown(str(file), outcome.checks), encoding="utf-8")
        click.echo(f"wrote {md_path}", err=True)
    sys.exit(0 if outcome.passed else 1)


# ---------------------------------------------------------------------------------
# fmt
# ---------------------------------------------------------------------------------


@cli.command("fmt", epilog=EXAMPLES["fmt"])
@click.argument("paths", nargs=-1, required=True)
@click.option("--check", "check_only", is_flag=True, help="Change nothing; exit 1 if a file is not formatted.")
def fmt_command(paths: tuple[str, ...], check_only: bool) -> None:
    """Rewrite .circ files in the one canonical layout (comments kept, meaning unchanged).

    `-` reads standard input and writes the formatted text to standard output.
    """
    from .fmt import format_module
    from .parse import parse_file, parse_text
    from .report import write_diagnostics

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
    for file in _circ_files(paths):
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


# ---------------------------------------------------------------------------------
# render and diff
# ---------------------------------------------------------------------------------


def _compile_or_exit(path: Path):
    from .api import compile_file
    from .report import write_diagnostics

    if not path.is_file():
        raise _Fail(f"no such file: {path}")
    result = compile_file(path, check_files=False)
    if not result.ok:
        write_diagnostics([d for d in result.diagnostics if d.is_error], "full", sys.stderr)
        sys.exit(1)
    return result


def _pick_circuit(result, name: str | None):
    try:
        return result.circuit(name)
    except KeyError as err:
        raise _Fail(str(err.args[0])) from None


@cli.command(epilog=EXAMPLES["render"])
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--circuit", "circuit_name", help="Which circuit (default: the last one in the file).")
@click.option("-o", "--output", type=click.Path(path_type=Path),
              help="Output file: .svg, .png, .pdf or .dot (default: FILE's name with .svg).")
def render(file: Path, circuit_name: str | None, output: Path | None) -> None:
    """Draw a circuit: layers bottom to top, heads and MLPs distinct, q/k/v on edges,
    groups as boxes, scores as edge widths. SVG, PNG and PDF need Graphviz's `dot`.
    """
    from .render import RenderError, render_dot, to_dot

    result = _compile_or_exit(file)
    graph = _pick_circuit(result, circuit_name)
    output = output or Path(file.with_suffix(".svg").name)
    from .lower import groups_of

    dot = to_dot(graph, title=f"{graph.name} ({result.model or 'no model'})",
                 groups=groups_of(result.program, graph.name))
    try:
        render_dot(dot, output)
    except RenderError as err:
        raise _Fail(str(err)) from None
    click.echo(f"wrote {output} ({len(graph.nodes)} nodes, {len(graph.edges)} edges)", err=True)


def _split_spec(spec: str) -> tuple[Path, str | None]:
    if ":" in spec and not Path(spec).exists():
        path, _, name = spec.rpartition(":")
        return Path(path), name or None
    return Path(spec), None


@cli.command(epilog=EXAMPLES["diff"])
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
    import json

    from .diff import diff_graphs, pair_circuits
    from .render import RenderError, render_dot, to_diff_dot

    path_a, name_a = _split_spec(a)
    path_b, name_b = _split_spec(b)
    result_a, result_b = _compile_or_exit(path_a), _compile_or_exit(path_b)
    if name_a or name_b or circuit_name:
        pairs = [(name_a or circuit_name, name_b or circuit_name)]
        for side, result, name in (("A", result_a, pairs[0][0]), ("B", result_b, pairs[0][1])):
            if name is not None and name not in result.circuits:
                raise _Fail(f"no circuit `{name}` in {side} ({result.path}); it has: "
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
            raise _Fail("--format svg draws one pair of circuits: pick it with --circuit or FILE:CIRCUIT")
        (left, right), = [(p[0], p[1]) for p in pairs if p[0] and p[1]]
        target = output or Path("diff.svg")
        try:
            render_dot(to_diff_dot(result_a.circuits[left], result_b.circuits[right],
                                   labels=(f"{path_a.name}:{left}", f"{path_b.name}:{right}")), target)
        except RenderError as err:
            raise _Fail(str(err)) from None
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


def _only(result) -> str:
    if len(result.circuits) != 1:
        raise _Fail(f"{result.path} has {len(result.circuits)} circuits; name one with FILE:CIRCUIT")
    return next(iter(result.circuits))


# ---------------------------------------------------------------------------------
# models
# ---------------------------------------------------------------------------------


@cli.command()
def models() -> None:
    """List the models whose shapes are known without weights (zoo and pretrained names)."""
    from .models import KNOWN_SHAPES

    width = max(len(n) for n in KNOWN_SHAPES)
    for name, shape in KNOWN_SHAPES.items():
        click.echo(f"{name:<{width}}  {shape.describe():<48}  {shape.source}")


@cli.command("stdlib")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def stdlib_command(fmt: str) -> None:
    """List the standard library: import name, model, circuits with node and edge counts, source.

    \b
    Example:
      circ stdlib
      # then, in a .circ file:  import stdlib.zoo.induction
    """
    import json

    from .library import list_stdlib

    entries = list_stdlib()
    if fmt == "json":
        click.echo(json.dumps([e.to_json() for e in entries], indent=2))
        return
    for entry in entries:
        click.echo(f"{entry.import_name}  (model {entry.model or 'any: motifs'})")
        if entry.source:
            click.echo(f"    source: {entry.source}")
        for name, nodes, edges in entry.circuits:
            click.echo(f"    circuit {name}: {nodes} nodes, {edges} edges")
        for name, params in entry.motifs:
            click.echo(f"    motif {name}({', '.join(params)})")



# ---------------------------------------------------------------------------------
# import / export: EAP-IG and MIB graph JSON (circuitlang/interop.py)
# ---------------------------------------------------------------------------------


@cli.command("import", epilog="""
\b
Examples:
  circ import graph.json -o found.circ                 # the edges the file marks in_graph
  circ import graph.json --model gpt2 --top 50 -o top50.circ
  circ import scores.json --all --name scores -o scores.circ
""")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Write the .circ file here (default: stdout).")
@click.option("--model", help="The model the graph is for (default: inferred from the file's cfg).")
@click.option("--name", "circuit_name", help="The circuit's name (default: from the file name).")
@click.option("--all", "take_all", is_flag=True, help="Import every edge listed, not only those in_graph.")
@click.option("--top", "top", type=click.IntRange(0), help="Import the K edges of largest |score|.")
def import_command(file: Path, output: Path | None, model: str | None, circuit_name: str | None,
                   take_all: bool, top: int | None) -> None:
    """Read a circuit from the graph JSON of EAP-IG or the MIB benchmark and write it as
    canonical .circ, each edge's score as `[score = s]`.

    Node names `input`, `a{l}.h{h}`, `m{l}`, `logits` become `embed`, `L{l}.H{h}`,
    `L{l}.MLP`, `logits`; `a9.h6->a10.h0<q>` becomes `L9.H6 -> L10.H0.q`. Problems in the
    file are diagnostics (codes E601-E610, docs/diagnostics.md) with line and column.
    """
    from .interop import circuit_name_for, import_header, is_circuit_name, load_mib
    from .report import write_diagnostics
    from .write import graph_to_circ

    if take_all and top is not None:
        raise _Fail("--all and --top cannot be used together")
    if not file.is_file():
        raise _Fail(f"no such file: {file}")
    include: str | int = "all" if take_all else ("in_graph" if top is None else top)
    name = circuit_name or circuit_name_for(file)
    if not is_circuit_name(name):
        raise _Fail(f"`{name}` cannot name a circuit (letters, digits and _, not a keyword)")
    graph, diagnostics = load_mib(file, model=model, include=include, name=name)
    write_diagnostics(diagnostics, "full", sys.stderr)
    if graph is None or any(d.is_error for d in diagnostics):
        sys.exit(1)
    text = graph_to_circ(graph, graph.model, import_header(str(file), graph, include, model is None))
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        click.echo(f"wrote {output} (circuit {name}: {len(graph.nodes)} nodes, {len(graph.edges)} edges)", err=True)


@cli.command("export", epilog="""
\b
Examples:
  circ export found.circ --to mib -o graph.json
  circ export stdlib/zoo/induction.circ --circuit induction --to mib -o induction.json
  circ export positional.circ --to mib --drop-positions -o graph.json
""")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--circuit", "circuit_name", help="Which circuit (default: the last one in the file).")
@click.option("--to", "target", type=click.Choice(["mib", "eap-ig"]), default="mib", show_default=True,
              help="The format: MIB and EAP-IG share one graph JSON layout.")
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Write the JSON here (default: stdout).")
@click.option("--drop-positions", is_flag=True,
              help="Write an edge with positions once, scores summed (default: refuse, E608).")
@click.option("--unscored", type=float, default=None,
              help="The score written for edges without one (default: null; some loaders want 0).")
def export_command(file: Path, circuit_name: str | None, target: str, output: Path | None,
                   drop_positions: bool, unscored: float | None) -> None:
    """Write a circuit as the graph JSON of EAP-IG and the MIB benchmark: every edge of the
    model, `in_graph` true for the circuit's edges, each edge's `score` annotation as its score.
    """
    from .interop import check_exportable, dumps, graph_to_mib
    from .report import write_diagnostics
    from .syntax import Span

    result = _compile_or_exit(file)
    graph = _pick_circuit(result, circuit_name)
    symbol = result.program.root.symbols.get(graph.name) if result.program else None
    span = getattr(symbol.definition, "name_span", None) if symbol else None
    if span is None or not span.line:
        span = Span(str(file), 1, 1, 1, 2)
    problems = check_exportable(graph, result.shape, span, drop_positions)
    write_diagnostics(problems, "full", sys.stderr)
    if any(d.is_error for d in problems):
        sys.exit(1)
    text = dumps(graph_to_mib(graph, result.shape, drop_positions=drop_positions, unscored=unscored)) + "\n"
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        click.echo(f"wrote {output} ({target} graph JSON: {len(graph.edges)} edges in the circuit)", err=True)

cli.add_command(discover)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI, turning internal errors into one line and exit code 2."""
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        cli.main(args=argv, prog_name="circ", standalone_mode=False)
    except click.exceptions.Exit as err:
        sys.exit(err.exit_code)
    except click.ClickException as err:
        err.show()
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(2)
    except _Fail as err:
        click.echo(f"error: {err}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except SystemExit:
        raise
    except BrokenPipeError:
        sys.exit(0)
    except Exception as err:  # noqa: BLE001 - the one place that turns crashes into exit 2
        if debug:
            traceback.print_exc()
        click.echo(f"internal error: {type(err).__name__}: {err} (rerun with --debug for the traceback)",
                   err=True)
        sys.exit(2)

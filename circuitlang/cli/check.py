"""`circ check` (static checks, then every hypothesis on the model) and `circ eval` (a full
report: verdicts, minimality, completeness, per-example values)."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import click

from .common import (
    ProgressBar,
    UsageError,
    circ_files,
    compile_or_fail,
    echo_outcome_messages,
    evaluation_options,
    model_options,
    pick_circuit,
)

CHECK_EXAMPLES = """
\b
Examples:
  circ check stdlib/zoo/induction.circ    # static checks, then every hypothesis on the model
  circ check --static stdlib/             # every .circ file below a folder, no model loaded
  circ check --static --format concise a.circ b.circ
"""

EVAL_EXAMPLES = """
\b
Examples:
  circ eval stdlib/zoo/induction.circ --json report.json --markdown report.md
  circ eval mine.circ --circuit induction --task repeat_tokens
"""


def _run_options(device: str, dtype: str, batch_size: int, seed: int | None, skip_unavailable: bool, **more):
    from ..eval.runner import RunOptions

    return RunOptions(device, dtype, batch_size, seed, skip_unavailable, **more)


def _evaluate_files(files, options, fmt: str):
    """Evaluate each clean file's checks; print verdicts; return (outcomes, failed)."""
    from rich.console import Console

    from ..eval.report import print_terminal
    from ..eval.runner import run_checks

    console = Console()
    outcomes = []
    failed = False
    for compiled in files:
        if not compiled.checks:
            continue
        with ProgressBar() as bar:
            outcome = run_checks(compiled, replace(options, progress=bar))
        outcomes.append(outcome)
        if fmt != "json":
            print_terminal(console, compiled.path, outcome.checks)
            echo_outcome_messages(outcome)
        failed = failed or not outcome.passed
    return outcomes, failed


@click.command(epilog=CHECK_EXAMPLES)
@click.argument("paths", nargs=-1, required=True)
@click.option("--static", "static", is_flag=True,
              help="Only parse and check against the model's shape; load no model and run no hypothesis.")
@click.option("--format", "fmt", type=click.Choice(["full", "concise", "json"]), default="full",
              show_default=True, help="How to print diagnostics (and, with json, the verdicts).")
@click.option("--strict", is_flag=True,
              help="Treat warnings as errors (exit 1): static warnings and the evaluation's (small effect, "
                   "ablation sensitivity).")
@model_options
@evaluation_options
def check(paths: tuple[str, ...], static: bool, fmt: str, strict: bool, device: str, dtype: str, batch_size: int,
          seed: int | None, skip_unavailable: bool, sensitivity: str, bootstrap: int) -> None:
    """Check .circ files, then evaluate their hypotheses on the model.

    PATHS are files or folders (searched for *.circ). First the static checks: syntax,
    names, imports, the model's shape, edges, tasks and checks, printed as diagnostics
    with file, line, column and a stable code (docs/diagnostics.md). Then, unless
    --static, every `check` block runs on the model the file names and each `expect`
    prints its measured value and pass or FAIL. Exits 1 if any file has an error or any
    hypothesis fails, so it can gate CI. Values come with 95% bootstrap intervals over
    the examples, and warnings say when a number is easy to misread (docs/evaluation.md).
    """
    from ..lang.pipeline import compile_file
    from ..present.diagnostic_text import summary, to_json, write_diagnostics

    files = circ_files(paths)
    compiled = [compile_file(file) for file in files]
    everything = [d for c in compiled for d in c.diagnostics]
    if fmt == "json" and static:
        write_diagnostics(everything, fmt)
    elif fmt != "json":
        write_diagnostics(everything, fmt)
        click.echo(summary(everything, len(files)), err=True)
    failed = any(d.is_error for d in everything) or (strict and bool(everything))
    if not static:
        options = _run_options(device, dtype, batch_size, seed, skip_unavailable, sensitivity=sensitivity,
                               bootstrap=bootstrap)
        outcomes, eval_failed = _evaluate_files([c for c in compiled if c.ok], options, fmt)
        warned = any(c.circuit.warnings for o in outcomes for c in o.checks)
        failed = failed or eval_failed or (strict and warned)
        if fmt == "json":
            from ..eval.report import checks_json

            click.echo(json.dumps({"diagnostics": [to_json(d) for d in everything],
                                   "files": [{**checks_json(o.path, o.checks, o.problems),
                                              "problems": [vars(p) for p in o.problems],
                                              "skipped": o.skipped} for o in outcomes]}, indent=2))
        elif outcomes:
            checks = sum(len(o.checks) for o in outcomes)
            passed = sum(c.passed for o in outcomes for c in o.checks)
            click.echo(f"{passed} of {checks} check(s) passed", err=True)
    sys.exit(1 if failed else 0)


@click.command("eval", epilog=EVAL_EXAMPLES)
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--json", "json_path", type=click.Path(path_type=Path), help="Write the full report as JSON here.")
@click.option("--markdown", "md_path", type=click.Path(path_type=Path), help="Write the report as Markdown here.")
@click.option("--circuit", "circuit_name", help="Evaluate this circuit (with --task) instead of the check blocks.")
@click.option("--task", "task_name", help="The task to evaluate --circuit on.")
@click.option("--completeness", "samples", type=click.IntRange(0), default=10, show_default=True,
              help="Random node subsets to try for completeness (unless a check sets `samples`).")
@model_options
@evaluation_options
def eval_command(file: Path, json_path: Path | None, md_path: Path | None, circuit_name: str | None,
                 task_name: str | None, samples: int, device: str, dtype: str, batch_size: int, seed: int | None,
                 skip_unavailable: bool, sensitivity: str, bootstrap: int) -> None:
    """Evaluate a file's circuits on its model and write a full report.

    For each `check` block: every expectation's verdict, the circuit's faithfulness,
    each edge's and node's contribution (minimality) and the completeness found, each
    with its 95% bootstrap interval, the ablation-sensitivity table and warnings, with
    per-example metric values in the JSON. With --circuit and --task, evaluates that
    pair without a check block.
    """
    from rich.console import Console

    from ..eval.report import checks_json, markdown, print_terminal, report_text
    from ..eval.runner import run_checks
    from ..lang.check import CheckSpec

    compiled = compile_or_fail(file)
    checks = compiled.checks
    if circuit_name or task_name:
        if not (circuit_name and task_name):
            raise UsageError("--circuit and --task go together")
        if task_name not in compiled.tasks:
            raise UsageError(f"no task `{task_name}` in {file}; it has: {', '.join(compiled.tasks) or 'none'}")
        checks = (CheckSpec(pick_circuit(compiled, circuit_name), compiled.tasks[task_name], ()),)
    if not checks:
        raise UsageError(f"{file} has no check blocks; name a circuit and task with --circuit and --task")
    with ProgressBar() as bar:
        options = _run_options(device, dtype, batch_size, seed, skip_unavailable, progress=bar, full_report=True,
                               completeness_samples=samples, sensitivity=sensitivity, bootstrap=bootstrap)
        outcome = run_checks(compiled, options, checks)
    print_terminal(Console(), str(file), outcome.checks, details=True)
    echo_outcome_messages(outcome)
    if json_path:
        json_path.write_text(report_text({**checks_json(str(file), outcome.checks, outcome.problems),
                                          "problems": [vars(p) for p in outcome.problems]}) + "\n", encoding="utf-8")
        click.echo(f"wrote {json_path}", err=True)
    if md_path:
        md_path.write_text(markdown(str(file), outcome.checks), encoding="utf-8")
        click.echo(f"wrote {md_path}", err=True)
    sys.exit(0 if outcome.passed else 1)

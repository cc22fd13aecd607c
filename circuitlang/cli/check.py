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
    override_option,
    check_writable,
    pick_circuit,
    split_spec,
    write_output,
)

CHECK_EXAMPLES = """
\b
Examples:
  circ check stdlib/zoo/induction.circ    # static checks, then every hypothesis on the model
  circ check stdlib/zoo/induction_phase.circ --model stdlib/zoo/induction_phase/step-00150   # on a checkpoint
  circ check --static stdlib/             # every .circ file below a folder, no model loaded
  circ check --static --format concise a.circ b.circ
  circ check found.circ --task stdlib/zoo/induction.circ:repeat_tokens_zero   # a file without checks
"""

EVAL_EXAMPLES = """
\b
Examples:
  circ eval stdlib/zoo/induction.circ --json report.json --markdown report.md
  circ eval mine.circ --circuit induction --task repeat_tokens
  circ eval found.circ --task stdlib/zoo/induction.circ:repeat_tokens       # every circuit of found.circ
"""


def _run_options(device: str, dtype: str, batch_size: int, seed: int | None, skip_unavailable: bool, **more):
    from ..eval.runner import RunOptions

    return RunOptions(device, dtype, batch_size, seed, skip_unavailable, **more)


def _console():
    from ..eval.report import console_for

    return console_for(sys.stdout)


def _task_option(spec: str | None, compiled=None):
    """The task `--task` names: `FILE:TASK` (a task of another file), or `TASK` of the
    file being evaluated (`compiled`); None without the option."""
    if spec is None:
        return None
    path, name = split_spec(spec)
    if name is not None and (compiled is None or path != Path(compiled.path)):
        source = compile_or_fail(path)
    elif compiled is not None:
        source, name = compiled, spec
    else:
        raise UsageError(f"--task {spec}: give FILE:TASK", "e.g. --task stdlib/zoo/induction.circ:repeat_tokens")
    if name not in source.tasks:
        raise UsageError(f"--task {spec}: no task `{name}` in {source.path}; it has: "
                         f"{', '.join(source.tasks) or 'none'}")
    return source.tasks[name]


def _checks_on(compiled, task, circuit_name: str | None) -> tuple:
    """One expectation-free check per circuit of the file (or just `circuit_name`) on `task`."""
    from ..lang.check import CheckSpec

    circuits = [pick_circuit(compiled, circuit_name)] if circuit_name else list(compiled.circuits.values())
    return tuple(CheckSpec(circuit, task, ()) for circuit in circuits)


def _evaluate_files(todo, options, fmt: str):
    """Evaluate each (compiled file, checks) pair; print verdicts; return (outcomes, failed)."""
    from ..eval.report import print_terminal
    from ..eval.runner import run_checks

    console = _console()
    outcomes = []
    failed = False
    for compiled, checks in todo:
        with ProgressBar() as bar:
            outcome = run_checks(compiled, replace(options, progress=bar), checks)
        outcomes.append(outcome)
        if fmt != "json":
            _say_override(compiled, options.model, outcome)
            print_terminal(console, compiled.path, outcome.checks)
            echo_outcome_messages(outcome)
        failed = failed or not outcome.passed
    return outcomes, failed


def _say_override(compiled, override, outcome) -> None:
    """With --model, say on stderr which model the verdicts below are about."""
    if override is not None and outcome.checks and compiled.model_ref is not None:
        loaded = outcome.checks[0].circuit.model
        named = override.name if loaded == override.name else f"{override.name} ({loaded})"
        click.echo(f"note: {compiled.path}: evaluated on --model {named}, not the file's model "
                   f"{compiled.model_ref.name}", err=True)


def _eval_summary(outcomes) -> str:
    """What the evaluation did, in one line: checks passed, files stopped or skipped."""
    checks = sum(len(o.checks) for o in outcomes)
    passed = sum(c.passed for o in outcomes for c in o.checks)
    stopped = sum(bool(o.problems) for o in outcomes)
    skipped = sum(bool(o.skipped) for o in outcomes)
    parts = [f"{passed} of {checks} check(s) passed"] if checks else []
    if stopped:
        parts.append(f"{stopped} file(s) not fully evaluated: see the error(s) above")
    if skipped:
        parts.append(f"{skipped} file(s) skipped: model not available")
    return "; ".join(parts) or "no check was evaluated"


def _file_status(compiled, outcome, static: bool) -> tuple[str, bool | None]:
    """A file's status in `check --format json` and its `passed` (null: nothing was judged)."""
    if not compiled.ok:
        return "errors", False
    if outcome is None:
        return ("static" if static else "nothing to evaluate"), None
    if outcome.skipped:
        return "skipped", None
    return ("passed", True) if outcome.passed else ("failed", False)


def _check_json(compiled_files, outcomes: dict, diagnostics, static: bool, passed: bool) -> dict:
    """`circ check --format json`: one object, with and without --static (docs/evaluation.md)."""
    from ..present.diagnostic_text import to_json

    files = []
    for compiled in compiled_files:
        outcome = outcomes.get(compiled.path)
        status, file_passed = _file_status(compiled, outcome, static)
        entry = {"file": compiled.path, "status": status, "passed": file_passed, "checks": [], "problems": [],
                 "skipped": None}
        if outcome is not None:
            from ..eval.report import checks_json

            entry.update({**checks_json(outcome.path, outcome.checks, outcome.problems),
                          "problems": [vars(p) for p in outcome.problems], "skipped": outcome.skipped})
            entry["status"], entry["passed"] = status, file_passed
        files.append(entry)
    return {"static": static, "passed": passed, "diagnostics": [to_json(d) for d in diagnostics], "files": files}


@click.command(epilog=CHECK_EXAMPLES)
@click.argument("paths", nargs=-1, required=True)
@click.option("--static", "static", is_flag=True,
              help="Only parse and check against the model's shape; load no model and run no hypothesis.")
@click.option("--format", "fmt", type=click.Choice(["full", "concise", "json"]), default="full",
              show_default=True, help="How to print diagnostics (and, with json, the verdicts).")
@click.option("--strict", is_flag=True,
              help="Treat warnings as errors (exit 1): static warnings and the evaluation's (small effect, "
                   "ablation sensitivity).")
@click.option("--task", "task_spec",
              help="Evaluate the file's circuits (or --circuit) on this task instead of the check blocks: FILE:TASK, "
                   "or TASK of each file; for files with circuits but no checks (e.g. from `circ discover`).")
@click.option("--circuit", "circuit_name", help="With --task: only this circuit of each file.")
@override_option
@model_options
@evaluation_options
def check(paths: tuple[str, ...], static: bool, fmt: str, strict: bool, task_spec: str | None,
          circuit_name: str | None, model_override, device: str, dtype: str, batch_size: int, seed: int | None,
          skip_unavailable: bool, sensitivity: str, bootstrap: int) -> None:
    """Check .circ files, then evaluate their hypotheses on the model.

    PATHS are files or folders (searched for *.circ). First the static checks: syntax,
    names, imports, the model's shape, edges, tasks and checks, printed as diagnostics
    with file, line, column and a stable code (docs/diagnostics.md). Then, unless
    --static, every `check` block runs on the model the file names and each `expect`
    prints its measured value and pass or FAIL. Exits 1 if any file has an error or any
    hypothesis fails, so it can gate CI. Values come with 95% bootstrap intervals over
    the examples, and warnings say when a number is easy to misread (docs/evaluation.md).
    With --task, each file's circuits are evaluated on that task instead (no expectations).
    """
    from ..lang.pipeline import compile_file
    from ..present.diagnostic_text import summary, write_diagnostics

    if circuit_name and not task_spec:
        raise UsageError("--circuit needs --task", "e.g. --circuit found --task stdlib/zoo/induction.circ:repeat_tokens")
    files = circ_files(paths)
    compiled = [compile_file(file) for file in files]
    everything = [d for c in compiled for d in c.diagnostics]
    if fmt != "json":
        write_diagnostics(everything, fmt)
        click.echo(summary(everything, len(files)), err=True)
    failed = any(d.is_error for d in everything) or (strict and bool(everything))
    outcomes = {}
    if not static:
        todo = [(c, _checks_on(c, _task_option(task_spec, c), circuit_name) if task_spec else c.checks)
                for c in compiled if c.ok]
        _say_nothing_to_evaluate([c for c, checks in todo if not checks], bool(task_spec), fmt)
        todo = [(c, checks) for c, checks in todo if checks]
        if todo:  # only now import the evaluator (torch): static-only runs start fast
            options = _run_options(device, dtype, batch_size, seed, skip_unavailable, sensitivity=sensitivity,
                                   bootstrap=bootstrap, model=model_override)
            done, eval_failed = _evaluate_files(todo, options, fmt)
            outcomes = {o.path: o for o in done}
            warned = any(c.circuit.warnings for o in done for c in o.checks)
            failed = failed or eval_failed or (strict and warned)
            if fmt != "json":
                click.echo(_eval_summary(done), err=True)
    if fmt == "json":
        click.echo(json.dumps(_check_json(compiled, outcomes, everything, static, not failed), indent=2,
                              allow_nan=False))
    sys.exit(1 if failed else 0)


def _say_nothing_to_evaluate(files, with_task: bool, fmt: str) -> None:
    """A clean file with nothing to run (no check blocks, or no circuits for --task) is
    named on stderr, so that `circ check found.circ` never passes silently."""
    if fmt == "json":
        return
    for compiled in files:
        what = "no circuits" if with_task else "no check blocks"
        hint = "" if with_task else "; evaluate its circuits on a task with --task FILE:TASK"
        click.echo(f"note: {compiled.path}: nothing to evaluate: {what}{hint}", err=True)


@click.command("eval", epilog=EVAL_EXAMPLES)
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--json", "json_path", type=click.Path(path_type=Path), help="Write the full report as JSON here.")
@click.option("--markdown", "md_path", type=click.Path(path_type=Path), help="Write the report as Markdown here.")
@click.option("--circuit", "circuit_name", help="Evaluate this circuit (with --task) instead of the check blocks.")
@click.option("--task", "task_name",
              help="Evaluate the file's circuits (or --circuit) on this task instead of the check blocks: a task of "
                   "the file, or FILE:TASK.")
@click.option("--completeness", "samples", type=click.IntRange(0), default=10, show_default=True,
              help="Random node subsets to try for completeness (unless a check sets `samples`).")
@override_option
@model_options
@evaluation_options
def eval_command(file: Path, json_path: Path | None, md_path: Path | None, circuit_name: str | None,
                 task_name: str | None, samples: int, model_override, device: str, dtype: str, batch_size: int,
                 seed: int | None, skip_unavailable: bool, sensitivity: str, bootstrap: int) -> None:
    """Evaluate a file's circuits on its model and write a full report.

    For each `check` block: every expectation's verdict, the circuit's faithfulness,
    each edge's and node's contribution (minimality) and the completeness found, each
    with its 95% bootstrap interval, the ablation-sensitivity table and warnings, with
    per-example metric values in the JSON. With --task (a task of the file, or
    FILE:TASK), evaluates every circuit of the file, or --circuit, on it without a
    check block.
    """
    from ..eval.report import checks_json, markdown, print_terminal, report_text
    from ..eval.runner import run_checks

    check_writable(json_path, "--json")  # before the evaluation, so a bad path loses no work
    check_writable(md_path, "--markdown")
    compiled = compile_or_fail(file)
    checks = compiled.checks
    if circuit_name and not task_name:
        raise UsageError("--circuit needs --task", f"e.g. --circuit {circuit_name} --task TASK or --task FILE:TASK")
    if task_name:
        checks = _checks_on(compiled, _task_option(task_name, compiled), circuit_name)
        if not checks:
            raise UsageError(f"{file} has no circuits to evaluate on --task {task_name}")
    if not checks:
        raise UsageError(f"{file} has no check blocks: nothing to evaluate",
                         "name a task with --task TASK or --task FILE:TASK (and a circuit with --circuit)")
    with ProgressBar() as bar:
        options = _run_options(device, dtype, batch_size, seed, skip_unavailable, progress=bar, full_report=True,
                               completeness_samples=samples, sensitivity=sensitivity, bootstrap=bootstrap,
                               model=model_override)
        outcome = run_checks(compiled, options, checks)
    _say_override(compiled, model_override, outcome)
    print_terminal(_console(), str(file), outcome.checks, details=True)
    echo_outcome_messages(outcome)
    if json_path:
        write_output(json_path, report_text({**checks_json(str(file), outcome.checks, outcome.problems),
                                             "problems": [vars(p) for p in outcome.problems],
                                             "skipped": outcome.skipped}) + "\n", "--json")
        click.echo(f"wrote {json_path}", err=True)
    if md_path:
        write_output(md_path, markdown(str(file), outcome.checks), "--markdown")
        click.echo(f"wrote {md_path}", err=True)
    sys.exit(0 if outcome.passed else 1)

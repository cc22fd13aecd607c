"""What the model-loading commands (`circ check`, `circ eval`) share: their options, a
progress bar, and printing an evaluation's verdicts and problems. Imports no torch
until an evaluation runs.
"""

from __future__ import annotations

import click


def model_options(fn):
    """Options shared by the commands that load a model."""
    options = [
        click.option("--device", default="cpu", show_default=True, help="Where to run: cpu, cuda, cuda:1, mps."),
        click.option("--dtype", type=click.Choice(["float32", "float64", "bfloat16", "float16"]), default="float32",
                     show_default=True),
        click.option("--batch-size", type=click.IntRange(1), default=32, show_default=True,
                     help="Examples per forward pass."),
        click.option("--seed", type=int, default=None, help="Override every task's seed."),
        click.option("--skip-unavailable", is_flag=True,
                     help="Report files whose model is not available offline as skipped, not failed."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def run_options(device: str, dtype: str, batch_size: int, seed: int | None, skip_unavailable: bool):
    from .runner import RunOptions

    return RunOptions(device, dtype, batch_size, seed, skip_unavailable)


class ProgressBar:
    """A rich progress bar on stderr for evaluations that take more than a moment."""

    def __init__(self, prefix: str = "evaluating ") -> None:
        from rich.console import Console
        from rich.progress import Progress

        self.progress = Progress(console=Console(stderr=True), transient=True)
        self.prefix = prefix
        self.tasks: dict[str, int] = {}

    def __call__(self, label: str, done: int, total: int) -> None:
        if label not in self.tasks:
            self.tasks[label] = self.progress.add_task(f"{self.prefix}{label}", total=total)
        self.progress.update(self.tasks[label], completed=done, total=total)

    def __enter__(self):
        self.progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.__exit__(*exc)


def echo_outcome_messages(outcome) -> None:
    """Problems (what stopped a check), a skipped model, and notes, on stderr."""
    for problem in outcome.problems:
        click.echo(f"error: {problem.where}: {problem.message}", err=True)
        if problem.help:
            click.echo(f"  = help: {problem.help}", err=True)
    if outcome.skipped:
        click.echo(f"skipped: {outcome.skipped}", err=True)
    for note in outcome.notes:
        click.echo(f"note: {note}", err=True)


def evaluate_files(files, options, fmt: str, details: bool):
    """Evaluate each clean file's checks; print verdicts; return (outcomes, failed)."""
    from rich.console import Console

    from .eval_report import print_terminal
    from .runner import run_checks

    console = Console()
    outcomes = []
    failed = False
    for compiled in files:
        if not compiled.checks:
            continue
        with ProgressBar() as bar:
            options.progress = bar
            outcome = run_checks(compiled, options)
        outcomes.append(outcome)
        if fmt != "json":
            print_terminal(console, compiled.path, outcome.checks, details=details)
            echo_outcome_messages(outcome)
        failed = failed or not outcome.passed
    return outcomes, failed



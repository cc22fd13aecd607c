"""What the commands share: the one failure path, finding and compiling files, the options
of the commands that load a model, a progress bar, and printing an evaluation's verdicts
and problems. Imports no torch: the static commands must start fast.

Failures: a command raises a `CircuitlangError` and `CircGroup` reports it once, the same
way for every command: a `CircuitError` prints its diagnostics (exit 1), a `UsageError`
prints `error: ...` (exit 2), any other `CircuitlangError` prints `error: ...` with its
help (exit 1). Anything else is an internal error (`main`, exit 2).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterable

import click

from ..core.diagnostics import CircuitError
from ..core.errors import CircuitlangError


class UsageError(CircuitlangError):
    """The command line asks for something impossible (exit 2)."""


def report_failure(err: CircuitlangError) -> int:
    """Print a failure on stderr; return the exit code."""
    if isinstance(err, CircuitError):
        from ..present.diagnostic_text import write_diagnostics

        write_diagnostics([d for d in err.diagnostics if d.is_error], "full", sys.stderr)
        return 1
    code = getattr(err, "code", None)
    click.echo(f"error{f'[{code}]' if code else ''}: {err.message}", err=True)
    if err.help:
        click.echo(f"  = help: {err.help}", err=True)
    return 2 if isinstance(err, UsageError) else 1


class CircGroup(click.Group):
    """The `circ` group: every command's CircuitlangError goes through `report_failure`."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except CircuitlangError as err:
            sys.exit(report_failure(err))


def check_writable(path: Path | None, option: str = "-o") -> None:
    """Refuse an output path that cannot be written, before any work is done: its folder
    is missing or not writable, or the path is a folder. A UsageError names the option."""
    if path is None or str(path) == "-":
        return
    import os

    folder = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise UsageError(f"{option} {path}: is a folder; give a file name")
    if not folder.is_dir():
        raise UsageError(f"{option} {path}: the folder {folder} does not exist", f"create it: mkdir -p {folder}")
    if path.exists() and not os.access(path, os.W_OK):
        raise UsageError(f"{option} {path}: the file is not writable")
    if not path.exists() and not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"{option} {path}: cannot write in the folder {folder}")


def write_output(path: Path, text: str | bytes, option: str = "-o") -> None:
    """Write text (UTF-8) or bytes to an output file, atomically: into a temporary file beside it, then
    renamed over it (keeping an existing file's permissions), so a full disk or a crash
    never leaves a user's file half written. An OS error becomes a UsageError naming the
    option, never an internal error."""
    import os
    import tempfile

    temporary = None
    try:
        folder = path.parent if str(path.parent) else Path(".")
        mode = path.stat().st_mode & 0o7777 if path.exists() else None
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
        with os.fdopen(handle, "wb") as stream:
            stream.write(text.encode("utf-8") if isinstance(text, str) else text)
        if mode is not None:
            os.chmod(temporary, mode)
        else:
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(temporary, 0o666 & ~umask)
        os.replace(temporary, path)
        temporary = None
    except OSError as err:
        raise UsageError(f"{option} {path}: cannot write: {err.strerror or err}") from None
    finally:
        if temporary is not None and os.path.exists(temporary):
            os.unlink(temporary)


def circ_files(paths: Iterable[str]) -> list[Path]:
    """The .circ files named: files as given, folders searched recursively for `*.circ`.

    A usage error (exit 2) names what is wrong with an argument: a missing path, a folder
    with no .circ file below it, or something that is neither a file nor a folder (a FIFO
    or a device would block or never end; `circ fmt -` reads standard input instead)."""
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*.circ") if p.is_file())
            if not found:
                raise UsageError(f"{raw} is a folder with no .circ files in it or below it",
                                 "name .circ files, or a folder that contains some")
            files += found
        elif path.is_file():
            files.append(path)
        elif path.exists():
            raise UsageError(f"{raw} is not a regular file or a folder", "name .circ files or folders")
        else:
            raise UsageError(f"no such file or directory: {raw}", _near_miss(path))
    return files


def _near_miss(path: Path) -> str | None:
    """Help for a missing path: the .circ file of that name when `.circ` was left off."""
    with_suffix = path.with_name(path.name + ".circ") if path.name else path
    return f"did you mean {with_suffix}?" if path.suffix != ".circ" and with_suffix.is_file() else None


def compile_or_fail(path: Path, check_files: bool = False):
    """The compiled file; raises CircuitError (its diagnostics are printed) if it has errors."""
    from ..lang.pipeline import compile_file

    if path.is_dir():
        raise UsageError(f"{path} is a folder; this command takes one .circ file",
                         "name a file in it, or use `circ check` for every file of a folder")
    if not path.is_file():
        raise UsageError(f"no such file: {path}")
    result = compile_file(path, check_files=check_files)
    if not result.ok:
        raise CircuitError(list(result.diagnostics))
    return result


def pick_circuit(result, name: str | None):
    """The named circuit of a compiled file (or its last one)."""
    try:
        return result.circuit(name)
    except KeyError as err:
        raise UsageError(str(err.args[0])) from None


def split_spec(spec: str) -> tuple[Path, str | None]:
    """`FILE:NAME` -> (FILE, NAME); a plain file -> (FILE, None)."""
    if ":" in spec and not Path(spec).exists():
        path, _, name = spec.rpartition(":")
        return Path(path), name or None
    return Path(spec), None


def model_options(fn):
    """Options shared by the commands that load a model. `--device` is checked as it is
    parsed (a device torch lacks here is a usage error naming the ones it has; torch is
    imported only for a device other than cpu); `--threads` sets `CIRC_THREADS`, which
    the loader reads (`eval.loading.thread_count`), so it is not a parameter of the commands."""

    def check_device(ctx: click.Context, param: click.Parameter, value: str) -> str:
        if value != "cpu":
            from ..eval.backends.base import ModelLoadError
            from ..eval.loading import check_device as check

            try:
                check(value)
            except ModelLoadError as err:
                raise UsageError(f"--device {value}: {err.message}", err.help) from None
        return value

    def set_threads(ctx: click.Context, param: click.Parameter, value: int | None) -> None:
        import os

        if value is not None:
            os.environ["CIRC_THREADS"] = str(value)

    options = [
        click.option("--device", default="cpu", show_default=True, callback=check_device,
                     help="Where to run: cpu, cuda, cuda:1, mps."),
        click.option("--threads", type=click.IntRange(1, 1024), envvar="CIRC_THREADS", callback=set_threads,
                     expose_value=False,
                     help="Torch threads for the model [env CIRC_THREADS; default: 1 for models under 12M "
                          "block weights (the zoo), else one per idle core]."),
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


def check_plot_name(path: Path | None, option: str) -> None:
    """Refuse, before any work is done, a plot name whose suffix is not .svg, .png or .pdf,
    or a .png/.pdf when the converter that draws them (rsvg-convert) is missing: a plot
    is written in the format its name says, never as SVG text in a .png."""
    from ..present.render import RenderError, plot_format

    if path is None or str(path) == "-":
        return
    try:
        plot_format(path)
    except RenderError as err:
        raise UsageError(f"{option} {path}: {err.message}", err.help) from None


def write_plot(path: Path, svg_text: str, option: str) -> None:
    """Write an SVG plot in the format `path`'s suffix names (see `check_plot_name`)."""
    from ..present.render import plot_bytes, plot_format

    write_output(path, plot_bytes(svg_text, plot_format(path)), option)


def override_option(fn):
    """`--model M`: run a file's checks on another model of its shape (a checkpoint of the
    same run, a retrained copy) instead of the model its `model` line names; a name as
    `model` lines take it, or a directory relative to the current folder. Passed on as a
    `ModelRef` (`model_override`), checked against the file's shape when it runs (E215)."""

    def to_ref(ctx: click.Context, param: click.Parameter, value: str | None):
        if value is None:
            return None
        from ..core.models import ModelRef

        return ModelRef(value, base_dir=Path.cwd())

    return click.option("--model", "model_override", callback=to_ref, metavar="MODEL",
                        help="Apply the file to this model instead of its `model` line: a known name, a cached "
                             "Hugging Face name or a checkpoint directory with the same layers and heads (E215 "
                             "otherwise).")(fn)


def evaluation_options(fn):
    """Options of the commands that judge hypotheses (`check`, `eval`)."""
    options = [
        click.option("--sensitivity", type=click.Choice(["auto", "on", "off"]), default="auto", show_default=True,
                     help="Measure each head and MLP, and the circuit's edges and nodes, under every ablation "
                          "(zero, mean, resample) and warn where the task's ablation may hide a mechanism. Costs "
                          "one forward pass per node and ablation, once per task; auto: only for models with at "
                          "most 64 heads and MLPs."),
        click.option("--bootstrap", "bootstrap", type=click.IntRange(0), default=1000, show_default=True,
                     help="Resamples of the examples for the 95% intervals (0: no intervals)."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


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
        code = f"[{problem.code}]" if problem.code else ""
        click.echo(f"error{code}: {problem.where}: {problem.message}", err=True)
        if problem.help:
            click.echo(f"  = help: {problem.help}", err=True)
    if outcome.skipped:
        click.echo(f"skipped: {outcome.skipped}", err=True)
    for note in outcome.notes:
        click.echo(f"note: {note}", err=True)

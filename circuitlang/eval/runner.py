"""Run a file's `check` blocks on its model: load the model once, build each task's data,
evaluate, and collect verdicts and problems. The CLI (`circ check`, `circ eval`) and
`circuitlang.check_file` use this.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Sequence

from ..core.errors import CircuitlangError
from ..core.models import ModelRef, ShapeError, check_fits, fit_override
from ..lang.check import CheckSpec, TaskSpec
from ..lang.pipeline import Compiled, load
from .backends.base import Backend, ModelLoadError
from .bootstrap import DRAWS
from .evaluator import Evaluator
from .loading import model_for
from .results import CheckReport
from .sensitivity import measure, robust_verdict, substitute
from .session import Session
from .tasks.base import TaskData, TaskError
from .tasks.registry import task_data


@dataclass(frozen=True)
class RunOptions:
    device: str = "cpu"
    dtype: str = "float32"
    batch_size: int = 32
    seed: int | None = None
    skip_unavailable: bool = False
    progress: Callable[[str, int, int], None] | None = None
    full_report: bool = False  # minimality and completeness even when no expectation asks
    completeness_samples: int = 10
    sensitivity: str = "auto"  # "auto", "on" or "off": each node under every ablation (eval/sensitivity.py)
    bootstrap: int = DRAWS  # resamples of the examples for intervals (0: none)
    model: ModelRef | None = None  # `--model`: another model of the file's shape (core.models.fit_override)


@dataclass(frozen=True)
class Problem:
    """Something that stopped a check from being evaluated (not a failed hypothesis)."""

    where: str
    message: str
    help: str | None = None
    code: str | None = None  # a diagnostic code where one applies (E215: --model of another shape)


@dataclass(frozen=True)
class FileOutcome:
    path: str
    checks: tuple[CheckReport, ...] = ()
    problems: tuple[Problem, ...] = ()
    skipped: str | None = None
    notes: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        return not self.problems and all(c.passed for c in self.checks)


def _where(compiled: Compiled, spec: CheckSpec | TaskSpec) -> str:
    return str(spec.span) if spec.span.line else compiled.path


class _Sessions:
    """One Session per (task, ablation, metric): task data is built once per task."""

    def __init__(self, backend: Backend, options: RunOptions):
        self.backend, self.options = backend, options
        self.data: dict[str, TaskData] = {}
        self.evaluators: dict[tuple, Evaluator] = {}

    def evaluator(self, task: TaskSpec, ablation: str, metric: str, epsilon: float) -> Evaluator:
        if task.name not in self.data:
            self.data[task.name] = task_data(task, self.backend, self.options.seed)
        key = (task.name, ablation, metric)
        if key not in self.evaluators:
            progress = self.options.progress
            session = Session(self.backend, self.data[task.name], ablation, metric, self.options.batch_size,
                              progress=(lambda done, total: progress(f"{task.name} ({ablation})", done, total)) if progress
                              else None)
            self.evaluators[key] = Evaluator(session, epsilon, self.options.bootstrap)
        evaluator = self.evaluators[key]
        evaluator.epsilon = epsilon
        return evaluator


def run_checks(compiled: Compiled, options: RunOptions, checks: Sequence[CheckSpec] | None = None,
               backend: Backend | None = None) -> FileOutcome:
    """Evaluate the checks of a compiled (error-free) file: `checks`, or the file's own, on
    the file's model, `options.model` (checked to have the file's shape), or `backend`
    (already loaded, e.g. one checkpoint of `circ track`, which checks its shape)."""
    checks = compiled.checks if checks is None else tuple(checks)
    if not checks:
        return FileOutcome(compiled.path)
    ref = options.model or compiled.model_ref
    where = "--model" if options.model is not None else str(ref.span) if ref is not None else compiled.path
    if options.model is not None and compiled.shape is not None and backend is None:
        try:
            fit_override(compiled.shape, compiled.model_ref.name, options.model)
        except ShapeError as err:
            return FileOutcome(compiled.path, problems=(Problem(compiled.path, err.message, err.help, err.code),))
    given = backend is not None
    try:
        backend = backend or model_for(ref, options.device, options.dtype)
    except ModelLoadError as err:
        if options.skip_unavailable:
            return FileOutcome(compiled.path, skipped=f"{where}: {err}")
        return FileOutcome(compiled.path, problems=(Problem(where, str(err), err.help),))
    static = compiled.shape
    if given and static is not None:
        try:
            check_fits(static, compiled.model_ref.name, backend.name, backend.shape)
        except ShapeError as err:
            return FileOutcome(compiled.path, problems=(Problem(compiled.path, err.message, err.help, err.code),))
    if static is not None:
        mine = (static.n_layers, static.n_heads, static.attn_only)
        theirs = (backend.shape.n_layers, backend.shape.n_heads, backend.shape.attn_only)
        if mine != theirs:
            return FileOutcome(compiled.path, problems=(Problem(
                where, f"the loaded model has {backend.shape.describe()} (attention-only: {theirs[2]}), "
                       f"but static checks used {mine[0]} x {mine[1]} (attention-only: {mine[2]})",
                "the shape table in circuitlang/core/models.py or the checkpoint's config.json is wrong"),))
    sessions = _Sessions(backend, options)
    reports: list[CheckReport] = []
    problems: list[Problem] = []
    notes: list[str] = []
    for spec in checks:
        ablation = str(spec.options.get("ablation", spec.task.ablation))
        metric = str(spec.options.get("metric", spec.task.metric))
        epsilon = float(spec.options.get("epsilon", 0.01))
        try:
            evaluator = sessions.evaluator(spec.task, ablation, metric, epsilon)
            report = evaluator.run_check(spec, options.full_report, options.completeness_samples, options.seed)
            report = _across_ablations(report, spec, ablation, metric, epsilon, sessions, options)
            reports.append(report)
            notes += [n for n in evaluator.session.notes if n not in notes]
        except TaskError as err:
            where_task = f"{err.path}:{err.line}" if err.path and err.line else (err.path or _where(compiled, spec.task))
            problems.append(Problem(where_task, f"task `{spec.task.name}`: {err}", err.help))
        except CircuitlangError as err:
            problems.append(Problem(_where(compiled, spec), str(err), err.help))
    return FileOutcome(compiled.path, tuple(reports), tuple(problems), None, tuple(notes))


def _across_ablations(report: CheckReport, spec: CheckSpec, ablation: str, metric: str, epsilon: float,
                      sessions: _Sessions, options: RunOptions) -> CheckReport:
    """Judge `expect robust` and add the ablation-sensitivity table and warnings."""

    def evaluator_for(other: str) -> Evaluator:
        return sessions.evaluator(spec.task, other, metric, epsilon)

    for index, expect in enumerate(spec.expects):
        if expect.kind == "robust":
            report = substitute(report, index, robust_verdict(expect, spec, report, ablation, evaluator_for,
                                                              options.seed))
    rows, warnings, notes = measure(evaluator_for, ablation, spec.circuit, options.sensitivity, report.circuit)
    circuit = replace(report.circuit, sensitivity=rows, warnings=report.circuit.warnings + warnings,
                      notes=report.circuit.notes + notes)
    return CheckReport(circuit, report.results)


def check_file(path: str | Path, model: "str | ModelRef | Backend | None" = None, **options) -> FileOutcome:
    """Compile a file and evaluate its checks; raises CircuitError if it does not compile.

    `model` applies the file to another model of its shape: a name or directory as
    `--model` takes it (relative to the current folder), or a loaded backend."""
    compiled = load(path)
    if isinstance(model, (str, ModelRef)):
        ref = model if isinstance(model, ModelRef) else ModelRef(model, base_dir=Path.cwd())
        return run_checks(compiled, RunOptions(**options, model=ref))
    return run_checks(compiled, RunOptions(**options), backend=model)

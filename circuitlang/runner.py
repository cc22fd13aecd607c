"""Run a file's `check` blocks on its model: load the model once, build each task's data,
evaluate, and collect verdicts and problems. The CLI (`circ check`, `circ eval`) and
`circuitlang.check_file` use this.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from .api import Compiled
from .backend import LoadedModel, ModelLoadError, load_model
from .check import CheckSpec, TaskSpec
from .evaluation import CheckReport, CircuitReport, EvaluationError, Evaluator, Session, task_data
from .positions import PositionError
from .tasks import TaskData, TaskError


@dataclass
class RunOptions:
    device: str = "cpu"
    dtype: str = "float32"
    batch_size: int = 32
    seed: int | None = None
    skip_unavailable: bool = False
    progress: Callable[[str, int, int], None] | None = None
    full_report: bool = False  # minimality and completeness even when no expectation asks
    completeness_samples: int = 10


@dataclass
class Problem:
    """Something that stopped a check from being evaluated (not a failed hypothesis)."""

    where: str
    message: str
    help: str | None = None


@dataclass
class FileOutcome:
    path: str
    checks: list[CheckReport] = field(default_factory=list)
    reports: list[CircuitReport] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    skipped: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problems and all(c.passed for c in self.checks)


_MODELS: dict[tuple, LoadedModel] = {}
DTYPES = {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16, "float16": torch.float16}


def _model(compiled: Compiled, options: RunOptions) -> LoadedModel:
    decl = compiled.program.root.module.model if compiled.program else None
    if decl is None:
        raise ModelLoadError("the file declares no model", "add `model NAME` at the top")
    key = (decl.name, decl.quoted, str(compiled.program.root.base_dir), options.device, options.dtype)
    if key not in _MODELS:
        _MODELS[key] = load_model(decl.name, decl.quoted, compiled.program.root.base_dir, options.device,
                                  DTYPES[options.dtype])
    return _MODELS[key]


def _where(compiled: Compiled, spec: CheckSpec | TaskSpec) -> str:
    return str(spec.span) if spec.span.line else compiled.path


class _Sessions:
    """One Session per (task, ablation, metric): task data is built once per task."""

    def __init__(self, loaded: LoadedModel, options: RunOptions):
        self.loaded, self.options = loaded, options
        self.data: dict[str, TaskData] = {}
        self.evaluators: dict[tuple, Evaluator] = {}

    def evaluator(self, task: TaskSpec, ablation: str, metric: str, epsilon: float) -> Evaluator:
        if task.name not in self.data:
            self.data[task.name] = task_data(task, self.loaded, self.options.seed)
        key = (task.name, ablation, metric)
        if key not in self.evaluators:
            progress = self.options.progress
            session = Session(self.loaded, self.data[task.name], ablation, metric, self.options.batch_size,
                              progress=(lambda done, total: progress(f"{task.name}", done, total)) if progress
                              else None)
            self.evaluators[key] = Evaluator(session, epsilon)
        evaluator = self.evaluators[key]
        evaluator.epsilon = epsilon
        return evaluator


def run_checks(compiled: Compiled, options: RunOptions) -> FileOutcome:
    """Evaluate every check of a compiled (error-free) file."""
    outcome = FileOutcome(compiled.path)
    if not compiled.checks:
        return outcome
    try:
        loaded = _model(compiled, options)
    except ModelLoadError as err:
        decl = compiled.program.root.module.model if compiled.program else None
        where = str(decl.span) if decl else compiled.path
        if options.skip_unavailable:
            outcome.skipped = f"{where}: {err}"
        else:
            outcome.problems.append(Problem(where, str(err), err.help))
        return outcome
    static = compiled.shape
    if static is not None:
        mine = (static.n_layers, static.n_heads, static.attn_only)
        theirs = (loaded.shape.n_layers, loaded.shape.n_heads, loaded.shape.attn_only)
        if mine != theirs:
            decl = compiled.program.root.module.model if compiled.program else None
            outcome.problems.append(Problem(
                str(decl.span) if decl else compiled.path,
                f"the loaded model has {theirs[0]} layers x {theirs[1]} heads (attention-only: {theirs[2]}), "
                f"but static checks used {mine[0]} x {mine[1]} (attention-only: {mine[2]})",
                "the shape table in circuitlang/models.py or the checkpoint's config.json is wrong"))
            return outcome
    sessions = _Sessions(loaded, options)
    for spec in compiled.checks:
        ablation = str(spec.options.get("ablation", spec.task.ablation))
        metric = str(spec.options.get("metric", spec.task.metric))
        epsilon = float(spec.options.get("epsilon", 0.01))
        try:
            evaluator = sessions.evaluator(spec.task, ablation, metric, epsilon)
            outcome.checks.append(evaluator.run_check(spec, options.full_report, options.completeness_samples,
                                                      options.seed))
            outcome.notes += [n for n in evaluator.session.notes if n not in outcome.notes]
        except TaskError as err:
            where = f"{err.path}:{err.line}" if err.path and err.line else (err.path or _where(compiled, spec.task))
            outcome.problems.append(Problem(where, f"task `{spec.task.name}`: {err}", err.help))
        except (EvaluationError, PositionError) as err:
            outcome.problems.append(Problem(_where(compiled, spec), str(err), getattr(err, "help", None)))
    return outcome


def run_file(path: Path, options: RunOptions) -> tuple[Compiled, FileOutcome]:
    from .api import compile_file

    compiled = compile_file(path)
    if not compiled.ok:
        return compiled, FileOutcome(str(path))
    return compiled, run_checks(compiled, options)


def check_file(path: str | Path, **options) -> FileOutcome:
    """Compile a file and evaluate its checks; raises CircuitError if it does not compile."""
    from .api import load

    compiled = load(path)
    return run_checks(compiled, RunOptions(**options))

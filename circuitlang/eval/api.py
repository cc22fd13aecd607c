"""`evaluate(circuit, model, task)`: one circuit's report for scripts and notebooks, with
the task's own settings, bootstrap intervals and the ablation-sensitivity warnings.

It sits above the evaluator and the sensitivity analysis (which builds on the
evaluator), so neither imports the other's caller.
"""

from __future__ import annotations

from dataclasses import replace

from ..core.ablations import DEFAULT as DEFAULT_ABLATION
from ..core.graph import CircuitGraph
from ..core.metrics import DEFAULT as DEFAULT_METRIC
from ..lang.check import TaskSpec
from .backends.base import Backend
from .bootstrap import DRAWS
from .evaluator import Evaluator
from .loading import load_model
from .results import CircuitReport
from .sensitivity import measure
from .session import EvaluationError, Session
from .tasks.base import TaskData
from .tasks.registry import task_data


def evaluate(circuit: CircuitGraph, model: "Backend | str", task: "TaskData | TaskSpec",
             ablation: str | None = None, metric: str | None = None, epsilon: float = 0.01,
             completeness_samples: int = 0, batch_size: int = 32, seed: int | None = None,
             sensitivity: str = "auto", bootstrap: int = DRAWS) -> CircuitReport:
    """Faithfulness, minimality and (optionally) completeness of one circuit, with
    bootstrap intervals and warnings.

    `model` is a loaded model (a backend, `circuitlang.load_model(...)`) or a name
    (`"zoo:induction-2l"`, `"gpt2"`); `task` is task data or a task from a compiled file
    (`circuitlang.load(path).tasks["name"]`). A task from a file brings its ablation,
    metric, seed and declared positions: `ablation`, `metric` and `seed` override them
    when given; a circuit using a position the task does not declare is an error.
    `sensitivity` ("auto", "on", "off") measures the model's heads and MLPs and the
    circuit's elements under every ablation and warns where the task's ablation may hide
    a mechanism ("auto": models with at most 64 heads and MLPs; eval/sensitivity.py).
    """
    override = seed  # only a seed given here overrides the data call's own (`induction(seed = 1)`)
    if isinstance(task, TaskSpec):
        _check_positions(circuit, task)
        ablation = task.ablation if ablation is None else ablation
        metric = task.metric if metric is None else metric
        seed = task.seed if seed is None else seed
    ablation = DEFAULT_ABLATION if ablation is None else ablation
    metric = DEFAULT_METRIC if metric is None else metric
    seed = 0 if seed is None else seed
    backend = load_model(model) if isinstance(model, str) else model
    data = task_data(task, backend, override) if isinstance(task, TaskSpec) else task
    evaluator = Evaluator(Session(backend, data, ablation, metric, batch_size), epsilon, bootstrap)
    report = evaluator.report(circuit, completeness_samples=completeness_samples, seed=seed)
    sessions = {ablation: evaluator}

    def evaluator_for(other: str) -> Evaluator:
        if other not in sessions:
            sessions[other] = Evaluator(Session(backend, data, other, metric, batch_size), epsilon, 0)
        return sessions[other]

    rows, warnings, notes = measure(evaluator_for, ablation, circuit, sensitivity, report)
    return replace(report, sensitivity=rows, warnings=report.warnings + warnings, notes=report.notes + notes)


def _check_positions(circuit: CircuitGraph, task: TaskSpec) -> None:
    """The task's declared positions (`positions S1, END`) bound the circuit's, as E405 does statically."""
    if not task.positions:
        return
    used = sorted({str(e.position.anchor) for e in circuit.edges if e.position is not None and e.position.is_named})
    missing = [p for p in used if p not in task.positions]
    if missing:
        raise EvaluationError(f"the circuit uses position(s) {', '.join('@' + p for p in missing)}, which task "
                              f"`{task.name}` does not define (it defines: {', '.join(task.positions)})")

"""Ablation sensitivity: what matters under one ablation and not under another, and
whether a check's verdicts survive a change of ablation (`expect robust`).

A circuit is judged under its task's ablation, and an ablation can hide a mechanism.
The zoo induction task's corrupted prompts keep the repeat structure, so under resample
ablation the attention pattern of the induction head survives in the ablated values: the
2-edge circuit `{embed -> L1.H1.v; L1.H1 -> logits}` scores f = 1.00, minimal and
complete, without the previous-token head L0.H2 that the mechanism needs. Measuring the
same things under every ablation shows it, in two ways:

- outside the circuit: for each head and MLP v not in C, loss_A(v) = 1 - f_A(M without v),
  the share of the metric lost when v alone is ablated from the full model under
  ablation A (as `expect necessary v` measures it). A node C leaves out whose loss is at
  least `MATTERS` under some ablation is flagged: C's good scores may rest on what the
  ablated values carry in its place. These losses depend on the model and the task,
  not on the circuit, so they are computed once per task and ablation.
- inside the circuit: for each edge and node v of C, delta_A(v) = f_A(C) - f_A(C without v).
  One that costs less than `QUIET` under the task's ablation but at least `MATTERS`
  under another is flagged: the task's ablation cannot show that it is needed. Only when
  the circuit works under the task's ablation (f >= `WORKS`): in a circuit that does not,
  every delta is small for another reason.
"""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

from ..core.ablations import ABLATIONS
from ..core.errors import CircuitlangError
from ..core.graph import CircuitGraph, Node
from ..lang.check import CheckSpec, ExpectSpec
from .evaluator import Evaluator
from .results import CheckReport, CircuitReport, ExpectResult, Sensitivity

MATTERS = 0.2
QUIET = 0.05
WORKS = 0.5
# `sensitivity = "auto"` measures models with at most this many heads and MLPs (one
# knockout per node and ablation: the zoo's models take seconds, GPT-2 small's 156 nodes
# several minutes on a CPU) and says so otherwise.
AUTO_NODES = 64
MODES = ("auto", "on", "off")
MAX_WARNINGS = 5  # per kind; the JSON report has every row
# `expect robust` on a check with no other expectation compares this one.
ROBUST_DEFAULT = ExpectSpec("sufficient", None, ">=", 0.9)
_CACHE_ATTRIBUTE = "_node_losses"


def model_nodes(evaluator: Evaluator) -> list[Node]:
    """Every head and MLP of the session's model, in computation order."""
    return [n for n in evaluator.session.backend.shape.senders() if n.kind in ("head", "mlp")]


def node_losses(evaluator: Evaluator) -> dict[Node, float]:
    """loss(v) = 1 - f(M without v) for every head and MLP under the evaluator's ablation
    (one knockout per node, cached on the evaluator: it does not depend on a circuit)."""
    cached = getattr(evaluator, _CACHE_ATTRIBUTE, None)
    if cached is None:
        nodes = model_nodes(evaluator)
        without = evaluator.session.knockout_metric([(n,) for n in nodes]).mean(dim=1)
        faithful = (without - evaluator.m_empty) / (evaluator.m_model - evaluator.m_empty)
        cached = {n: 1.0 - float(f) for n, f in zip(nodes, faithful.tolist())}
        setattr(evaluator, _CACHE_ATTRIBUTE, cached)
    return cached


def element_deltas(evaluator: Evaluator, circuit: CircuitGraph) -> tuple[float, dict[str, float]]:
    """f(C) and the delta f of each edge and node of C under the evaluator's ablation."""
    f = float(evaluator.faithfulness([circuit])[0])
    edges, nodes = evaluator.minimality(circuit, f)
    return f, {c.name: c.delta for c in (*edges, *nodes)}


def _others(row: Sensitivity, skip: str) -> str:
    return ", ".join(f"{a}: {v:.2f}" for a, v in row.values if a != skip)


def _reported_deltas(report: CircuitReport | None) -> tuple[float, dict[str, float]] | None:
    """f(C) and each element's delta f from a report that computed minimality (None if it
    did not): what `element_deltas` would measure again under the task's ablation."""
    if report is None or not (report.edges or report.nodes):
        return None
    return report.faithfulness, {c.name: c.delta for c in (*report.edges, *report.nodes)}


def sensitivity(evaluators: Mapping[str, Evaluator], task_ablation: str, circuit: CircuitGraph,
                report: CircuitReport | None = None) -> tuple[tuple[Sensitivity, ...], tuple[str, ...]]:
    """Every row (nodes outside the circuit, then the circuit's edges and nodes) under the
    ablations in `evaluators` (the task's included), and the warnings (module docstring).
    `report`, the circuit's report under the task's ablation, saves measuring its
    minimality again when it has it."""
    names = [a for a in ABLATIONS.names() if a in evaluators]
    losses = {a: node_losses(evaluators[a]) for a in names}
    known = _reported_deltas(report)
    measured = {a: known if a == task_ablation and known is not None else element_deltas(evaluators[a], circuit)
                for a in names}
    deltas = {a: measured[a][1] for a in names}
    works = measured[task_ablation][0] >= WORKS
    rows: list[Sensitivity] = []
    outside: list[str] = []
    inside: list[str] = []
    for node in model_nodes(evaluators[task_ablation]):
        if node in circuit.nodes:
            continue
        values = tuple((a, losses[a][node]) for a in names)
        loudest = max(values, key=lambda pair: pair[1])
        row = Sensitivity(str(node), "outside", values, loudest[1] >= MATTERS)
        rows.append(row)
        if row.flagged:
            quiet = row.value(task_ablation) < QUIET
            outside.append(
                f"{node} is outside the circuit, but ablating it alone from the model loses "
                f"{loudest[1]:.2f} of the metric under {loudest[0]} ablation ({_others(row, loudest[0])})"
                + (f": the {task_ablation} ablation's values may carry what it computes" if quiet else
                   ": the circuit's scores may rest on what the ablated values carry in its place"))
    for name in deltas[task_ablation]:
        values = tuple((a, deltas[a][name]) for a in names)
        loudest = max(values, key=lambda pair: pair[1])
        row = Sensitivity(name, "inside", values,
                          works and dict(values)[task_ablation] < QUIET and loudest[1] >= MATTERS)
        rows.append(row)
        if row.flagged:
            inside.append(f"removing {name} costs the circuit {loudest[1]:.2f} of f under {loudest[0]} "
                          f"ablation but {row.value(task_ablation):.2f} under {task_ablation}: the {task_ablation} "
                          "ablation's values may carry what it computes, so this ablation cannot show that it "
                          "is needed")
    warnings = []
    for found in (outside, inside):
        warnings += found[:MAX_WARNINGS]
        if len(found) > MAX_WARNINGS:
            warnings.append(f"... and {len(found) - MAX_WARNINGS} more like these (the report's `sensitivity` rows)")
    return tuple(rows), tuple(warnings)


def measure(evaluator_for: Callable[[str], Evaluator], task_ablation: str, circuit: CircuitGraph,
            mode: str = "auto", report: CircuitReport | None = None) -> tuple[tuple[Sensitivity, ...], tuple[str, ...], tuple[str, ...]]:
    """`sensitivity` under every registered ablation, as `mode` asks ("auto": only for
    models with at most AUTO_NODES heads and MLPs). Returns the rows, the warnings and
    notes (what was not measured, and why). `evaluator_for(ablation)` gives the task's
    evaluator under an ablation; one that cannot be built is noted and left out."""
    if mode not in MODES:
        raise ValueError(f"sensitivity mode {mode!r}: choose one of {', '.join(MODES)}")
    if mode == "off":
        return (), (), ()
    mine = evaluator_for(task_ablation)
    count = len(model_nodes(mine))
    if mode == "auto" and count > AUTO_NODES:
        return (), (), (f"ablation sensitivity not measured: the model has {count} heads and MLPs (more than "
                    f"{AUTO_NODES}; about {count * len(ABLATIONS.names())} forward passes); --sensitivity on "
                    "measures it",)
    evaluators, unavailable = {task_ablation: mine}, []
    for other in ABLATIONS.names():
        if other == task_ablation:
            continue
        try:
            evaluators[other] = evaluator_for(other)
        except CircuitlangError as err:
            unavailable.append(f"ablation sensitivity: {other} ablation not measured: {err}")
    rows, warnings = sensitivity(evaluators, task_ablation, circuit, report)
    return rows, warnings, tuple(unavailable)


def flagged(rows: Sequence[Sensitivity]) -> list[Sensitivity]:
    """The rows the warnings are about, for tables."""
    return [row for row in rows if row.flagged]


def robust_verdict(expect: ExpectSpec, spec: CheckSpec, report: CheckReport, task_ablation: str,
                   evaluator_for: Callable[[str], Evaluator], seed: int | None) -> ExpectResult:
    """`expect robust`: every other expectation of the check gives the same verdict under
    every ablation (`sufficient >= 0.9` when there is no other). `evaluator_for(ablation)`
    gives the session of the same task under another ablation."""
    others = tuple(e for e in spec.expects if e.kind != "robust") or (ROBUST_DEFAULT,)
    mine = [r for e, r in zip(spec.expects, report.results) if e.kind != "robust"]
    if not mine:
        mine = [evaluator_for(task_ablation).verdict(ROBUST_DEFAULT, report.circuit,
                                                     seed if seed is not None else spec.task.seed)]
    flips: list[str] = []
    lines: list[str] = []
    for ablation in ABLATIONS.names():
        if ablation == task_ablation:
            continue
        try:
            theirs = evaluator_for(ablation).run_check(CheckSpec(spec.circuit, spec.task, others, spec.options),
                                                       seed=seed).results
        except CircuitlangError as err:  # an ablation that cannot be evaluated is reported, not fatal
            lines.append(f"{ablation}: not evaluated ({err})")
            flips.append(f"{ablation} (not evaluated)")
            continue
        for e, a, b in zip(others, mine, theirs):
            if a.passed != b.passed:
                value = "" if b.value is None else f" ({b.value:.3f})"
                flips.append(f"`{e}` {'passes' if a.passed else 'fails'} under {task_ablation} but "
                             f"{'passes' if b.passed else 'fails'} under {ablation}{value}")
    detail = "; ".join(flips) if flips else (f"the same {len(others)} verdict(s) under every ablation"
                                             + (f" ({'; '.join(lines)})" if lines else ""))
    return ExpectResult(str(expect), not flips, float(len(flips)), detail)


def substitute(report: CheckReport, index: int, result: ExpectResult) -> CheckReport:
    """The report with result `index` replaced."""
    results = list(report.results)
    results[index] = result
    return CheckReport(report.circuit, tuple(results))

"""Evaluate circuits on a model: faithfulness, minimality, completeness, and `check` verdicts.

With m the task's metric averaged over examples, M the full model and "empty" the
circuit with every edge ablated (docs/evaluation.md):

- faithfulness f(C) = (m(C) - m(empty)) / (m(M) - m(empty)); also ratio m(C)/m(M) and
  gap |m(M) - m(C)| (Wang et al.);
- minimality: for each edge (and node) v of C, delta(v) = f(C) - f(C without v); v is
  superfluous when delta(v) < epsilon;
- completeness (Wang et al.): for node sets K, |m(C without K) - m(M without K)| divided by
  |m(M) - m(empty)|; K drawn at random (seeded) and grown greedily; the worst gap counts;
- necessary X: 1 - f(M without X) >= bound (ablating X alone from the model loses that
  much of the metric); sufficient: f(C) >= bound.

`M without K` is the full model with K's outputs replaced by their ablated values
(classic activation patching); `C without K` removes K's nodes and edges from C.
"""

from __future__ import annotations

import math
import random
from dataclasses import replace
from typing import Sequence

import torch

from ..core.ablations import DEFAULT as DEFAULT_ABLATION
from ..core.graph import EMBED, LOGITS, CircuitGraph, Node
from ..core.metrics import DEFAULT as DEFAULT_METRIC
from ..lang.check import CheckSpec, ExpectSpec, TaskSpec
from .backends.base import Backend
from .loading import load_model
from .results import CheckReport, CircuitReport, Completeness, Contribution, ExpectResult
from .session import EvaluationError, Session
from .tasks.base import TaskData
from .tasks.registry import task_data


def _faithfulness(m_circuit: torch.Tensor, m_model: float, m_empty: float) -> torch.Tensor:
    return (m_circuit - m_empty) / (m_model - m_empty)


class Evaluator:
    """Computes reports for circuits in one Session."""

    def __init__(self, session: Session, epsilon: float = 0.01):
        self.session = session
        self.epsilon = epsilon
        m_model = session.model_metric().mean().item()
        m_empty = session.empty_metric().mean().item()
        scale = max(abs(m_model), abs(m_empty), 1e-12)
        if not math.isfinite(m_model) or not math.isfinite(m_empty) or abs(m_model - m_empty) <= 1e-6 * scale:
            raise EvaluationError(
                f"the metric does not tell the model from the empty circuit (m(model) = {m_model:.4g}, "
                f"m(empty) = {m_empty:.4g}): faithfulness would divide by zero",
                "check the task's corrupted prompts and answers, or use another ablation or metric")
        self.m_model, self.m_empty = m_model, m_empty

    def faithfulness(self, variants: Sequence[CircuitGraph]) -> torch.Tensor:
        means = self.session.metric_of(variants).mean(dim=1)
        return _faithfulness(means, self.m_model, self.m_empty)

    def report(self, circuit: CircuitGraph, minimality: bool = True, completeness_samples: int = 0,
               seed: int = 0, task_name: str = "") -> CircuitReport:
        session = self.session
        values = session.metric_of([circuit])[0]
        m_c = values.mean().item()
        f = (m_c - self.m_empty) / (self.m_model - self.m_empty)
        report = CircuitReport(
            circuit=circuit.name, model=session.backend.name, task=task_name or session.data.name,
            ablation=session.ablation, metric=session.metric, n_examples=len(session.data),
            m_model=self.m_model, m_empty=self.m_empty, m_circuit=m_c, faithfulness=f,
            ratio=m_c / self.m_model if self.m_model else float("nan"), gap=abs(self.m_model - m_c),
            per_example={"model": session.model_metric().tolist(), "empty": session.empty_metric().tolist(),
                         "circuit": values.tolist()},
            engine=session.engine_name, level=circuit.level)
        if minimality:
            edges, nodes = self.minimality(circuit, f)
            report = replace(report, edges=edges, nodes=nodes)
        if completeness_samples:
            report = replace(report, completeness=self.completeness(circuit, completeness_samples, seed))
        return report

    def minimality(self, circuit: CircuitGraph, f: float) -> tuple[tuple[Contribution, ...], tuple[Contribution, ...]]:
        edges = circuit.sorted_edges()
        nodes = [n for n in circuit.sorted_nodes() if n not in (EMBED, LOGITS)]
        variants = [circuit - CircuitGraph.from_edges([e]) for e in edges]
        variants += [circuit.without_nodes([n]) for n in nodes]
        faiths = self.faithfulness(variants).tolist() if variants else []
        contributions = tuple(Contribution(str(item), f - value, f - value < self.epsilon)
                              for item, value in zip([*edges, *nodes], faiths))
        return contributions[:len(edges)], contributions[len(edges):]

    def completeness(self, circuit: CircuitGraph, samples: int, seed: int) -> Completeness:
        nodes = [n for n in circuit.sorted_nodes() if n not in (EMBED, LOGITS)]
        if not nodes:
            return Completeness(0.0, (), ())
        rng = random.Random(seed)
        subsets: list[tuple[Node, ...]] = []
        possible = 2 ** len(nodes) - 1
        for _ in range(samples * 20):  # draw until `samples` distinct subsets (or all there are)
            if len(subsets) >= min(samples, possible):
                break
            size = rng.randint(1, max(1, len(nodes) // 2))
            subset = tuple(sorted(rng.sample(nodes, size)))
            if subset not in subsets:
                subsets.append(subset)
        scale = abs(self.m_model - self.m_empty)

        def gaps(candidates: list[tuple[Node, ...]]) -> list[float]:
            in_circuit = self.session.metric_of([circuit.without_nodes(k) for k in candidates]).mean(1)
            in_model = self.session.knockout_metric(candidates).mean(1)
            return ((in_circuit - in_model).abs() / scale).tolist()

        results = list(zip(subsets, gaps(subsets)))
        greedy: tuple[Node, ...] = ()
        for _ in range(min(3, len(nodes))):  # greedy: grow K by the node that widens the gap most
            options = [tuple(sorted(greedy + (n,))) for n in nodes if n not in greedy]
            scored = list(zip(options, gaps(options)))
            best = max(scored, key=lambda pair: pair[1])
            results.append(best)
            greedy = best[0]
        worst = max(results, key=lambda pair: pair[1])
        named = tuple((tuple(str(n) for n in k), g) for k, g in results)
        return Completeness(worst[1], tuple(str(n) for n in worst[0]), named)

    # -- checks ------------------------------------------------------------------------------
    def run_check(self, spec: CheckSpec, full: bool = False, default_samples: int = 10,
                  seed: int | None = None) -> CheckReport:
        """Evaluate what the check's expectations need (everything when `full`).

        Completeness samples and seed come from the expectation's `with` options, else the
        check's, else the defaults; `seed`, when given, overrides them all.
        """
        kinds = {e.kind for e in spec.expects}
        wanted = next((e for e in spec.expects if e.kind == "completeness"), None)
        options = {**spec.options, **(wanted.options if wanted else {})}
        samples = int(options.get("samples", default_samples)) if wanted or full else 0
        seed = int(options.get("seed", spec.task.seed)) if seed is None else seed
        report = self.report(spec.circuit, minimality=full or "minimal" in kinds, completeness_samples=samples,
                             seed=seed, task_name=spec.task.name)
        return CheckReport(report, tuple(self._verdict(e, report) for e in spec.expects))

    def _verdict(self, expect: ExpectSpec, report: CircuitReport) -> ExpectResult:
        text = str(expect)
        if expect.kind == "minimal":
            epsilon = float(expect.options.get("epsilon", self.epsilon))
            level = report.nodes if report.level == "node" else report.edges
            extra = [c for c in level if c.delta < epsilon]
            detail = (f"{len(extra)} superfluous: " + ", ".join(c.name for c in extra[:5]) +
                      (" ..." if len(extra) > 5 else "")) if extra else f"every one of {len(level)} is needed"
            return ExpectResult(text, not extra, min((c.delta for c in level), default=None), detail)
        if expect.kind == "necessary":
            assert expect.subject is not None
            m_without = self.session.knockout_metric([expect.subject]).mean().item()
            loss = 1 - (m_without - self.m_empty) / (self.m_model - self.m_empty)
            return _compare(text, loss, expect, f"ablating it alone loses {loss:.3f} of the metric")
        values = {"faithfulness": report.faithfulness, "sufficient": report.faithfulness, "ratio": report.ratio,
                  "gap": report.gap,
                  "completeness": report.completeness.worst_gap if report.completeness else float("nan")}
        value = values[expect.kind]
        detail = f"{expect.kind} = {value:.4f}"
        if expect.kind == "completeness" and report.completeness:
            detail += f" (worst subset {', '.join(report.completeness.worst_subset)})"
        return _compare(text, value, expect, detail)


def _compare(text: str, value: float, expect: ExpectSpec, detail: str) -> ExpectResult:
    bound = expect.bound if expect.bound is not None else 0.0
    ops = {">=": value >= bound, "<=": value <= bound, ">": value > bound, "<": value < bound}
    passed = bool(ops.get(expect.comparison or ">=", False)) and math.isfinite(value)
    return ExpectResult(text, passed, value, detail)


# ---------------------------------------------------------------------------------
# Entry points
# ---------------------------------------------------------------------------------


def evaluate(circuit: CircuitGraph, model: "Backend | str", task: "TaskData | TaskSpec",
             ablation: str = DEFAULT_ABLATION, metric: str = DEFAULT_METRIC, epsilon: float = 0.01,
             completeness_samples: int = 0, batch_size: int = 32, seed: int = 0) -> CircuitReport:
    """Faithfulness, minimality and (optionally) completeness of one circuit.

    `model` is a loaded model (a backend, `circuitlang.load_model(...)`) or a name
    (`"zoo:induction-2l"`, `"gpt2"`); `task` is task data or a task from a compiled file
    (`circuitlang.load(path).tasks["name"]`).
    """
    backend = load_model(model) if isinstance(model, str) else model
    data = task_data(task, backend) if isinstance(task, TaskSpec) else task
    session = Session(backend, data, ablation, metric, batch_size)
    return Evaluator(session, epsilon).report(circuit, completeness_samples=completeness_samples, seed=seed)

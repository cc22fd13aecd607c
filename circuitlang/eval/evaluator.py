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

from ..core.graph import EMBED, LOGITS, CircuitGraph, Node
from ..lang.check import CheckSpec, ExpectSpec
from .bootstrap import DRAWS, Resamples, interval, intervals, standard_error
from .results import (CheckReport, CircuitReport, Completeness, Contribution, ExpectResult, Interval,
                      StrongContribution)
from .session import EvaluationError, Session

# |m(M) - m(empty)| below this many standard errors (over examples) gets a warning: the
# denominator of faithfulness is then barely resolved by the examples.
SMALL_EFFECT_SE = 3.0
# How deep the greedy searches (completeness, strong minimality) grow their node sets.
GREEDY_STEPS = 3


def _faithfulness(m_circuit: torch.Tensor, m_model: float, m_empty: float) -> torch.Tensor:
    return (m_circuit - m_empty) / (m_model - m_empty)


def small_effect_warning(m_model: float, m_empty: float, se: float) -> str | None:
    """A warning when m(M) - m(empty) is within SMALL_EFFECT_SE standard errors of zero."""
    effect = m_model - m_empty
    if se > 0 and abs(effect) < SMALL_EFFECT_SE * se:
        return (f"m(model) - m(empty) = {effect:.4g} is within {SMALL_EFFECT_SE:g} standard errors "
                f"(se {se:.3g}) of zero: faithfulness divides by a difference these examples barely resolve, "
                "so f and every delta f can be far from what more examples would give; use more examples, "
                "a task the model solves, or another metric")
    return None


class Evaluator:
    """Computes reports for circuits in one Session.

    `draws` bootstrap resamples of the examples give each measure a 95% interval (0 turns
    intervals off); they are seeded by the report's seed.
    """

    def __init__(self, session: Session, epsilon: float = 0.01, draws: int = DRAWS):
        self.session = session
        self.epsilon = epsilon
        self.draws = draws
        model_values, empty_values = session.model_metric(), session.empty_metric()
        m_model = model_values.mean().item()
        m_empty = empty_values.mean().item()
        scale = max(abs(m_model), abs(m_empty), 1e-12)
        if not math.isfinite(m_model) or not math.isfinite(m_empty) or abs(m_model - m_empty) <= 1e-6 * scale:
            raise EvaluationError(
                f"the metric does not tell the model from the empty circuit (m(model) = {m_model:.4g}, "
                f"m(empty) = {m_empty:.4g}): faithfulness would divide by zero",
                "check the task's corrupted prompts and answers, or use another ablation or metric")
        self.m_model, self.m_empty = m_model, m_empty
        self.effect_se = standard_error(model_values - empty_values)
        warning = small_effect_warning(m_model, m_empty, self.effect_se)
        self.warnings: tuple[str, ...] = (warning,) if warning else ()
        self._resamples: dict[int, Resamples] = {}

    # -- bootstrap -------------------------------------------------------------------------
    def resamples(self, seed: int) -> Resamples | None:
        """The seeded resamples of this session's examples (None without draws or with one example)."""
        n = len(self.session.data)
        if self.draws <= 0 or n < 2:
            return None
        if seed not in self._resamples:
            self._resamples[seed] = Resamples(n, self.draws, seed)
        return self._resamples[seed]

    def faithfulness_draws(self, values: torch.Tensor, resamples: Resamples) -> torch.Tensor:
        """f per variant and draw [V, R] from per-example metric values [V, N]."""
        model = resamples.means(self.session.model_metric())
        empty = resamples.means(self.session.empty_metric())
        return (resamples.means(values) - empty) / (model - empty)

    # -- measures --------------------------------------------------------------------------
    def faithfulness(self, variants: Sequence[CircuitGraph]) -> torch.Tensor:
        return self.faithfulness_of(self.session.metric_of(variants))

    def faithfulness_of(self, values: torch.Tensor) -> torch.Tensor:
        """f per variant [V] from per-example metric values [V, N] (`Session.metric_of`),
        for callers that keep the values (for intervals) instead of measuring twice."""
        return _faithfulness(values.mean(dim=1), self.m_model, self.m_empty)

    def report(self, circuit: CircuitGraph, minimality: bool = True, completeness_samples: int = 0,
               seed: int = 0, task_name: str = "", strong: bool = False) -> CircuitReport:
        session = self.session
        values = session.metric_of([circuit])[0]
        m_c = values.mean().item()
        f = (m_c - self.m_empty) / (self.m_model - self.m_empty)
        resamples = self.resamples(seed)
        f_draws = self.faithfulness_draws(values.unsqueeze(0), resamples)[0] if resamples else None
        report = CircuitReport(
            circuit=circuit.name, model=session.backend.name, task=task_name or session.data.name,
            ablation=session.ablation, metric=session.metric, n_examples=len(session.data),
            m_model=self.m_model, m_empty=self.m_empty, m_circuit=m_c, faithfulness=f,
            ratio=m_c / self.m_model if self.m_model else float("nan"), gap=abs(self.m_model - m_c),
            per_example={"model": session.model_metric().tolist(), "empty": session.empty_metric().tolist(),
                         "circuit": values.tolist()},
            engine=session.engine_name, level=circuit.level,
            faithfulness_interval=interval(f_draws) if f_draws is not None else None,
            effect_se=self.effect_se, warnings=self.warnings)
        if minimality:
            edges, nodes = self.minimality(circuit, f, f_draws, resamples)
            report = replace(report, edges=edges, nodes=nodes)
        if strong:
            report = replace(report, strong=self.strong_minimality(circuit))
        if completeness_samples:
            report = replace(report, completeness=self.completeness(circuit, completeness_samples, seed))
        return report

    def minimality(self, circuit: CircuitGraph, f: float, f_draws: torch.Tensor | None = None,
                   resamples: Resamples | None = None
                   ) -> tuple[tuple[Contribution, ...], tuple[Contribution, ...]]:
        """delta f of each edge and node of the circuit (and its interval, given draws)."""
        edges = circuit.sorted_edges()
        nodes = [n for n in circuit.sorted_nodes() if n not in (EMBED, LOGITS)]
        variants = [circuit - CircuitGraph.from_edges([e]) for e in edges]
        variants += [circuit.without_nodes([n]) for n in nodes]
        if not variants:
            return (), ()
        values = self.session.metric_of(variants)
        faiths = _faithfulness(values.mean(dim=1), self.m_model, self.m_empty).tolist()
        spans: list[Interval | None] = [None] * len(variants)
        if resamples is not None and f_draws is not None:
            spans = intervals(f_draws.unsqueeze(0) - self.faithfulness_draws(values, resamples))
        contributions = tuple(Contribution(str(item), f - value, f - value < self.epsilon, span)
                              for item, value, span in zip([*edges, *nodes], faiths, spans))
        return contributions[:len(edges)], contributions[len(edges):]

    def strong_minimality(self, circuit: CircuitGraph, steps: int = GREEDY_STEPS) -> tuple[StrongContribution, ...]:
        """Wang et al.'s minimality: for each node v of C, a node set K (v not in K) with
        |f(C \\ K) - f(C \\ (K + v))| >= epsilon. K starts empty and grows greedily by the
        node that widens that difference most, `steps` times; the widest difference found
        counts. Cost: about 2 x steps x n^2 circuit variants for n nodes, batched per step.
        """
        nodes = [n for n in circuit.sorted_nodes() if n not in (EMBED, LOGITS)]
        best: dict[Node, tuple[float, tuple[Node, ...]]] = {}
        current: dict[Node, tuple[Node, ...]] = {v: () for v in nodes}
        for step in range(min(steps, len(nodes)) + 1):
            # step 0 tries K = {} for every v; later steps every K + u for the v's current K
            trials: list[tuple[Node, tuple[Node, ...]]] = []
            for v in nodes:
                if step == 0:
                    trials.append((v, ()))
                else:
                    trials += [(v, tuple(sorted(current[v] + (u,)))) for u in nodes
                               if u != v and u not in current[v]]
            if not trials:
                break
            variants = []
            for v, k in trials:
                variants += [circuit.without_nodes(k), circuit.without_nodes(k + (v,))]
            faiths = self.faithfulness(variants).tolist()
            widest: dict[Node, tuple[float, tuple[Node, ...]]] = {}
            for i, (v, k) in enumerate(trials):
                delta = abs(faiths[2 * i] - faiths[2 * i + 1])
                if v not in widest or delta > widest[v][0]:
                    widest[v] = (delta, k)
            for v, (delta, k) in widest.items():
                current[v] = k
                if v not in best or delta > best[v][0]:
                    best[v] = (delta, k)
        return tuple(StrongContribution(str(v), best[v][0], tuple(str(n) for n in best[v][1]),
                                        best[v][0] < self.epsilon) for v in nodes)

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
        per_example: list[torch.Tensor] = []  # per subset: m(C \ K) - m(M \ K) per example

        def gaps(candidates: list[tuple[Node, ...]]) -> list[float]:
            in_circuit = self.session.metric_of([circuit.without_nodes(k) for k in candidates])
            in_model = self.session.knockout_metric(candidates)
            per_example.extend(in_circuit - in_model)
            return ((in_circuit.mean(1) - in_model.mean(1)).abs() / scale).tolist()

        results = list(zip(subsets, gaps(subsets)))
        greedy: tuple[Node, ...] = ()
        for _ in range(min(GREEDY_STEPS, len(nodes))):  # greedy: grow K by the node that widens the gap most
            options = [tuple(sorted(greedy + (n,))) for n in nodes if n not in greedy]
            scored = list(zip(options, gaps(options)))
            best = max(scored, key=lambda pair: pair[1])
            results.append(best)
            greedy = best[0]
        worst = max(results, key=lambda pair: pair[1])
        named = tuple((tuple(str(n) for n in k), g) for k, g in results)
        span = None
        resamples = self.resamples(seed)
        if resamples is not None:
            # the worst gap over the same subsets, per resample of the examples
            model = resamples.means(self.session.model_metric())
            empty = resamples.means(self.session.empty_metric())
            span = interval((resamples.means(torch.stack(per_example)).abs() / (model - empty).abs()).max(0).values)
        return Completeness(worst[1], tuple(str(n) for n in worst[0]), named, span)

    # -- checks ------------------------------------------------------------------------------
    def run_check(self, spec: CheckSpec, full: bool = False, default_samples: int = 10,
                  seed: int | None = None) -> CheckReport:
        """Evaluate what the check's expectations need (everything when `full`).

        Completeness samples and seed come from the expectation's `with` options, else the
        check's, else the defaults; `seed`, when given, overrides them all. `expect robust`
        is judged by the runner (it needs the other ablations' sessions); here it is a
        placeholder the runner replaces.
        """
        kinds = {e.kind for e in spec.expects}
        wanted = next((e for e in spec.expects if e.kind == "completeness"), None)
        options = {**spec.options, **(wanted.options if wanted else {})}
        samples = int(options.get("samples", default_samples)) if wanted or full else 0
        seed = int(options.get("seed", spec.task.seed)) if seed is None else seed
        strong = any(e.kind == "minimal" and e.options.get("mode") == "strong" for e in spec.expects)
        report = self.report(spec.circuit, minimality=full or "minimal" in kinds, completeness_samples=samples,
                             seed=seed, task_name=spec.task.name, strong=strong)
        return CheckReport(report, tuple(self.verdict(e, report, seed) for e in spec.expects))

    def verdict(self, expect: ExpectSpec, report: CircuitReport, seed: int = 0) -> ExpectResult:
        """One expectation judged on a report, with the interval of the value it compares
        and a note when that interval straddles the bound."""
        text = str(expect)
        if expect.kind == "robust":
            return ExpectResult(text, False, None, "judged across ablations by the runner")
        if expect.kind == "minimal":
            epsilon = float(expect.options.get("epsilon", self.epsilon))
            if expect.options.get("mode") == "strong":
                extra_strong = [c for c in report.strong if c.delta < epsilon]
                detail = (f"{len(extra_strong)} with no node set K making them matter: "
                          + ", ".join(c.name for c in extra_strong[:5]) + (" ..." if len(extra_strong) > 5 else "")
                          if extra_strong else f"every one of {len(report.strong)} nodes matters for some K")
                return ExpectResult(text, not extra_strong, min((c.delta for c in report.strong), default=None),
                                    detail)
            level = report.nodes if report.level == "node" else report.edges
            extra = [c for c in level if c.delta < epsilon]
            detail = (f"{len(extra)} superfluous: " + ", ".join(c.name for c in extra[:5]) +
                      (" ..." if len(extra) > 5 else "")) if extra else f"every one of {len(level)} is needed"
            unsure = [c.name for c in level if c.interval is not None and c.interval.straddles(epsilon)]
            note = (f"the 95% interval of delta f straddles epsilon = {epsilon:g} for {len(unsure)}: "
                    + ", ".join(unsure[:5]) + (" ..." if len(unsure) > 5 else "")) if unsure else ""
            return ExpectResult(text, not extra, min((c.delta for c in level), default=None), detail, None, note)
        resamples = self.resamples(seed)
        if expect.kind == "necessary":
            assert expect.subject is not None
            without = self.session.knockout_metric([expect.subject])
            loss = 1 - (without.mean().item() - self.m_empty) / (self.m_model - self.m_empty)
            span = interval(1 - self.faithfulness_draws(without, resamples)[0]) if resamples else None
            return _compare(text, loss, expect, f"ablating it alone loses {loss:.3f} of the metric", span)
        spans = {"faithfulness": report.faithfulness_interval, "sufficient": report.faithfulness_interval,
                 "completeness": report.completeness.interval if report.completeness else None}
        if resamples is not None and expect.kind in ("ratio", "gap"):
            model = resamples.means(torch.tensor(report.per_example["model"]))
            circuit = resamples.means(torch.tensor(report.per_example["circuit"]))
            spans[expect.kind] = interval(circuit / model if expect.kind == "ratio" else (model - circuit).abs())
        values = {"faithfulness": report.faithfulness, "sufficient": report.faithfulness, "ratio": report.ratio,
                  "gap": report.gap,
                  "completeness": report.completeness.worst_gap if report.completeness else float("nan")}
        value = values[expect.kind]
        if not math.isfinite(value):
            return ExpectResult(text, False, None, f"{expect.kind} undefined: {_undefined(expect.kind, report)}")
        detail = f"{expect.kind} = {value:.4f}"
        if expect.kind == "completeness" and report.completeness:
            detail += f" (worst subset {', '.join(report.completeness.worst_subset) or 'empty'})"
        span = spans.get(expect.kind)
        if span is not None and not (math.isfinite(span.low) and math.isfinite(span.high)):
            span = None  # some resample has m(model) = 0: no interval to give
        return _compare(text, value, expect, detail, span)


def _undefined(kind: str, report: CircuitReport) -> str:
    """Why a measure has no value: the text a report shows instead of NaN."""
    if kind == "ratio":
        return f"m(model) = 0 under {report.metric}; use faithfulness or gap"
    if kind == "completeness":
        return "no completeness was measured"
    return "the metric is not a finite number on these examples"


def _compare(text: str, value: float, expect: ExpectSpec, detail: str, span: Interval | None = None
             ) -> ExpectResult:
    if not math.isfinite(value):  # never NaN in a report: say why there is no value
        return ExpectResult(text, False, None, f"{expect.kind} undefined: the metric is not a finite number "
                                               f"on these examples")
    bound = expect.bound if expect.bound is not None else 0.0
    ops = {">=": value >= bound, "<=": value <= bound, ">": value > bound, "<": value < bound}
    passed = bool(ops.get(expect.comparison or ">=", False)) and math.isfinite(value)
    note = (f"the 95% interval {span} straddles the bound {bound:g}: other examples could flip this verdict"
            if span is not None and span.straddles(bound) else "")
    return ExpectResult(text, passed, value, detail, span, note)

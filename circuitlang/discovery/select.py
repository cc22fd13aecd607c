"""From edge scores to circuits: top-k, threshold, the smallest top-k circuit whose
measured faithfulness reaches a target (with its curve, noise and warnings), and MIB's
integrated metrics (CPR, CMD) over a ranking.

A ranking orders edges by score, highest first (ties broken by the canonical edge order,
so it is deterministic); with `absolute=True` by |score| (edges whose removal *raises*
the metric count as important too). Scores are normalised so that positive = removing the
edge lowers the metric (see `attribution`).

A circuit built from the top edges keeps the evaluator's semantics (docs/evaluation.md):
an edge whose sender has no incoming edge in the circuit carries the output the sender
computes on the all-ablated input.

CPR and CMD (MIB, Mueller et al. 2025): with f(k) the faithfulness
of the top-k circuit and k = max(1, x |E| rounded half up) for x in FRACTIONS,

    CPR = trapezoid area of f over x        (higher is better)
    CMD = trapezoid area of |1 - f| over x  (lower is better)

over x from 0.001 to 1 (not rescaled to the unit interval).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Callable, Iterable, Mapping, Sequence

import torch

from ..core.graph import CircuitGraph, Edge
from ..eval.evaluator import Evaluator
from ..eval.session import Session

FRACTIONS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)


def ranking(scores: Mapping[Edge, float], absolute: bool = False) -> list[Edge]:
    """Edges by decreasing score (|score| with `absolute`), ties in canonical edge order."""
    key = (lambda e: -abs(scores[e])) if absolute else (lambda e: -scores[e])
    return sorted(scores, key=lambda e: (key(e), Edge.sort_key(e)))


def _circuit(edges: Sequence[Edge], scores: Mapping[Edge, float] | None, name: str,
             model: str | None = None) -> CircuitGraph:
    notes = {e: {"score": float(scores[e])} for e in edges} if scores is not None else None
    return CircuitGraph.from_edges(edges, annotations=notes, name=name, model=model)


def top_edges(scores: Mapping[Edge, float], k: int, absolute: bool = False, name: str = "discovered",
              model: str | None = None) -> CircuitGraph:
    """The k best-scored edges as a circuit, each with its score as annotation `score`."""
    if k < 0:
        raise ValueError("k must be >= 0")
    return _circuit(ranking(scores, absolute)[:k], scores, name, model)


def by_threshold(scores: Mapping[Edge, float], tau: float, absolute: bool = False, name: str = "discovered",
                 model: str | None = None) -> CircuitGraph:
    """Every edge with score >= tau (|score| >= tau with `absolute`); tau must be finite."""
    _finite("tau", tau)
    kept = [e for e in ranking(scores, absolute) if (abs(scores[e]) if absolute else scores[e]) >= tau]
    return _circuit(kept, scores, name, model)


def _finite(what: str, value: float) -> None:
    """A NaN or infinite bound compares false with every score: refuse it, do not select nothing."""
    if not math.isfinite(value):
        raise ValueError(f"{what} must be a finite number, not {value}")


def _evaluator(target: Session | Evaluator) -> Evaluator:
    """An Evaluator for a Session; anything with `faithfulness(variants)` is used as is."""
    return target if hasattr(target, "faithfulness") else Evaluator(target)  # type: ignore[return-value]


def _prefix_faithfulness(evaluator, order: Sequence[Edge], ks: Sequence[int]) -> list[float]:
    variants = [CircuitGraph.from_edges(order[:k]) for k in ks]
    return [float(x) for x in evaluator.faithfulness(variants).tolist()] if variants else []


# -- the smallest top-k circuit reaching a target, read off the measured curve ----------------
#
# Faithfulness need not grow with k: a ranking can put an edge that hurts (removing it
# raises the metric once others are in) before edges that help, and then f(k) falls. The
# rule below therefore never interpolates: it measures f at every k (when the ranking has
# at most `max_points` edges) or on a grid refined where the target can still be reached,
# and picks the smallest *measured* k with f(k) >= target.

TOLERANCE = 0.01  # a drop of faithfulness smaller than this is never called non-monotone
Z = 3.0  # ... nor one within Z paired standard errors of the per-example values
MOST_OF_MODEL = 0.5  # a chosen circuit with more than this share of the model's edges is warned about
MAX_POINTS = 128  # circuits evaluated to measure the curve, at most
_CHUNK = 32  # prefixes per batched evaluation (one progress step each)

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Drop:
    """The largest fall of the measured curve beyond noise: f at `after` is below f at the
    earlier `before` (the highest point measured before it) by more than `threshold`."""

    before: int
    after: int
    f_before: float
    f_after: float
    stderr: float | None  # paired standard error of f(before) - f(after) over the examples
    threshold: float  # max(TOLERANCE, Z * stderr)

    @property
    def size(self) -> float:
        return self.f_before - self.f_after


@dataclass(frozen=True)
class MeasuredCurve:
    """f(k) of the top-k circuits measured, k increasing, with each point's standard error
    over the task's examples (None when the evaluator gives no per-example values)."""

    total: int  # edges ranked: k runs from 1 to total
    ks: tuple[int, ...]
    fs: tuple[float, ...]
    stderrs: tuple[float | None, ...]
    n_examples: int | None

    @property
    def every_k(self) -> bool:
        """Whether f was measured at every k from 1 to `total`."""
        return len(self.ks) == self.total

    def f(self, k: int) -> float:
        return self.fs[self.ks.index(k)]

    def stderr(self, k: int) -> float | None:
        return self.stderrs[self.ks.index(k)]

    def gaps_below(self, k: int) -> list[tuple[int, int]]:
        """Consecutive measured (a, b), b <= k, with unmeasured k between them."""
        return [(a, b) for a, b in zip(self.ks, self.ks[1:]) if b <= k and b - a > 1]

    def points(self) -> list[tuple[int, float]]:
        return list(zip(self.ks, self.fs))


@dataclass(frozen=True)
class Selection:
    """The smallest measured top-k circuit reaching `target`, and why it was chosen.

    `settled`: every k below the chosen one was measured, so no smaller top-k circuit
    reaches the target (without a chosen k: every k was measured). `warnings` are
    sentences for people: a curve that falls beyond noise, a circuit that is most of the
    model, a margin within the standard error, gaps left unmeasured.
    """

    target: float
    curve: MeasuredCurve
    k: int | None
    circuit: CircuitGraph | None
    settled: bool
    drop: Drop | None
    model_edges: int
    warnings: tuple[str, ...]

    @property
    def faithfulness(self) -> float | None:
        return None if self.k is None else self.curve.f(self.k)

    @property
    def stderr(self) -> float | None:
        return None if self.k is None else self.curve.stderr(self.k)

    @property
    def best_below(self) -> tuple[int, float] | None:
        """The highest measured point below the chosen k (or anywhere, if none reaches); an
        undefined f (NaN: the model and the empty circuit score the same) is no point."""
        limit = self.k if self.k is not None else self.curve.total + 1
        below = [(k, f) for k, f in self.curve.points() if k < limit and math.isfinite(f)]
        return max(below, key=lambda p: (p[1], -p[0])) if below else None

    def measured_text(self) -> str:
        c = self.curve
        if c.every_k:
            return f"curve measured at every k = 1..{c.total}"
        where = f"every k below {self.k} included" if self.k is not None and self.settled else \
            "a grid refined where the target could be reached"
        return f"curve measured at {len(c.ks)} of {c.total} values of k ({where})"

    def summary(self) -> str:
        """One sentence: what was chosen and why."""
        if self.k is None:
            best = self.best_below
            return (f"no measured top-k circuit reaches faithfulness {self.target:g} (best: "
                    f"{best[1]:.4f} at k = {best[0]}); {self.measured_text()}") if best else \
                (f"no measured top-k circuit reaches faithfulness {self.target:g}: faithfulness is undefined "
                 "(the model and the empty circuit score the same)" if self.curve.total else
                 f"no edges to choose from for faithfulness {self.target:g}")
        se = f" ± {self.stderr:.4f}" if self.stderr is not None else ""
        return (f"k = {self.k} of {self.curve.total} ranked edges, the smallest k whose measured faithfulness "
                f"reaches {self.target:g} (f = {self.faithfulness:.4f}{se}); {self.measured_text()}")

    def to_json(self) -> dict:
        c = self.curve
        drop = None if self.drop is None else {
            "from_edges": self.drop.before, "to_edges": self.drop.after, "from": self.drop.f_before,
            "to": self.drop.f_after, "size": self.drop.size, "stderr": self.drop.stderr,
            "threshold": self.drop.threshold}
        return {"rule": "smallest measured k with faithfulness >= target", "target": self.target,
                "edges": self.k, "faithfulness": self.faithfulness, "stderr": self.stderr,
                "ranked_edges": c.total, "model_edges": self.model_edges, "every_k": c.every_k,
                "settled": self.settled, "points_measured": len(c.ks), "n_examples": c.n_examples,
                "noise": {"tolerance": TOLERANCE, "z": Z}, "non_monotone": drop,
                "warnings": list(self.warnings),
                "curve": [{"edges": k, "faithfulness": f, "stderr": se} for k, f, se in zip(c.ks, c.fs, c.stderrs)]}


class _Measure:
    """f(top-k) for the k asked, batched; per-example values kept for the noise estimates.

    Per-example values need the evaluator's session (`metric_of`) and its m(M), m(empty);
    anything else with `faithfulness(variants)` gives means only (no standard errors).
    """

    def __init__(self, evaluator, order: Sequence[Edge], progress: Progress | None, planned: int):
        self.evaluator, self.order, self.progress, self.planned = evaluator, order, progress, planned
        self.f: dict[int, float] = {}
        self.per_example: dict[int, torch.Tensor] = {}  # f_i(k): each example's normalised metric
        self.per_example_ok = all(hasattr(evaluator, a) for a in ("session", "m_model", "m_empty"))

    def __call__(self, ks: Iterable[int]) -> None:
        todo = sorted(set(ks) - set(self.f))
        for start in range(0, len(todo), _CHUNK):
            chunk = todo[start:start + _CHUNK]
            variants = [CircuitGraph.from_edges(self.order[:k]) for k in chunk]
            if self.per_example_ok:
                ev = self.evaluator
                values = (ev.session.metric_of(variants).double() - ev.m_empty) / (ev.m_model - ev.m_empty)
                for k, row in zip(chunk, values):
                    self.per_example[k] = row
                    self.f[k] = float(row.mean())
            else:
                for k, value in zip(chunk, self.evaluator.faithfulness(variants).tolist()):
                    self.f[k] = float(value)
            if self.progress:
                self.progress(len(self.f), max(self.planned, len(self.f)))

    def stderr(self, k: int, other: int | None = None) -> float | None:
        """The standard error of f(k) (or of f(other) - f(k), paired) over the examples."""
        if k not in self.per_example:
            return None
        row = self.per_example[k] if other is None else self.per_example[other] - self.per_example[k]
        n = row.numel()
        return float(row.std() / math.sqrt(n)) if n > 1 else 0.0

    def curve(self, total: int) -> MeasuredCurve:
        ks = tuple(sorted(self.f))
        n = next(iter(self.per_example.values())).numel() if self.per_example else None
        return MeasuredCurve(total, ks, tuple(self.f[k] for k in ks), tuple(self.stderr(k) for k in ks), n)


def _grid(total: int, n: int) -> list[int]:
    """About n values of k in 1..total: half spaced geometrically (small circuits), half evenly."""
    half = max(2, n // 2)
    geometric = {round(total ** (i / (half - 1))) for i in range(half)}
    even = {round(1 + (total - 1) * i / (half - 1)) for i in range(half)}
    return sorted({1, total} | geometric | even)


def _refinement(curve: MeasuredCurve, target: float, n: int) -> list[int]:
    """Up to n new k inside the gaps where a smaller k could still reach the target: the gaps
    below the first measured k that reaches it (all gaps, if none does), those whose ends
    come closest to the target first, each filled with evenly spaced points before the
    next gets any (the most promising gap closes in a few rounds)."""
    reaching = [k for k, f in curve.points() if f >= target]
    gaps = curve.gaps_below(reaching[0] if reaching else curve.total)
    gaps.sort(key=lambda g: (-max(curve.f(g[0]), curve.f(g[1])), -g[0]))
    out: list[int] = []
    for a, b in gaps:
        m = min(b - a - 1, n - len(out))
        if m <= 0:
            break
        out += sorted({a + round((b - a) * i / (m + 1)) for i in range(1, m + 1)})
    return out


def measure_curve(evaluator, order: Sequence[Edge], target: float, max_points: int = MAX_POINTS,
                  progress: Progress | None = None) -> tuple[MeasuredCurve, _Measure]:
    """f(k) of the top-k circuits of `order`: at every k when there are at most `max_points`
    edges, else on a grid of about max_points / 2 values refined, in rounds of batched
    evaluations, inside the gaps where the target could still first be reached, until
    `max_points` circuits have been evaluated or no such gap is left."""
    total = len(order)
    if max_points < 2:
        raise ValueError("max_points must be at least 2")
    measure = _Measure(evaluator, order, progress, min(total, max_points))
    if total <= max_points:
        measure(range(1, total + 1))
        return measure.curve(total), measure
    measure(_grid(total, max_points // 2))
    step = max(1, max_points // 8)
    while len(measure.f) < max_points:
        ks = _refinement(measure.curve(total), target, min(step, max_points - len(measure.f)))
        if not ks:
            break
        measure(ks)
    return measure.curve(total), measure


def _largest_drop(curve: MeasuredCurve, measure: _Measure, tolerance: float, z: float) -> Drop | None:
    """The largest fall from the highest earlier point beyond max(tolerance, z paired
    standard errors), or None when the measured curve is monotone within noise."""
    best: Drop | None = None
    peak = None
    for k, f in curve.points():
        if peak is not None and curve.f(peak) - f > 0:
            se = measure.stderr(k, peak)
            threshold = max(tolerance, z * se) if se is not None else tolerance
            drop = Drop(peak, k, curve.f(peak), f, se, threshold)
            if drop.size > threshold and (best is None or drop.size > best.size):
                best = drop
        if peak is None or f > curve.f(peak):
            peak = k
    return best


def select_by_target(evaluator, scores: Mapping[Edge, float], target: float, absolute: bool = False,
                     max_points: int = MAX_POINTS, model_edges: int | None = None, name: str = "discovered",
                     progress: Progress | None = None, tolerance: float = TOLERANCE, z: float = Z) -> Selection:
    """The smallest top-k circuit whose *measured* faithfulness reaches `target`.

    The curve is measured by `measure_curve` (every k for rankings of at most `max_points`
    edges); the chosen k is the smallest measured k with f(k) >= target, which assumes
    nothing about f between k's that were not measured (and, when every k below the
    chosen one was measured, is the smallest top-k circuit there is). Warnings: the curve
    falls by more than max(tolerance, z paired standard errors); the circuit has more
    than half of `model_edges` (default: the edges ranked); f(k) exceeds the target by
    less than its standard error; gaps below k were left unmeasured.
    `evaluator` is an Evaluator (or a Session, or anything with `faithfulness(variants)`).
    """
    _finite("target", target)
    evaluator = _evaluator(evaluator)
    order = ranking(scores, absolute)
    total = len(order)
    model_edges = total if model_edges is None else model_edges
    if total == 0:
        empty = MeasuredCurve(0, (), (), (), None)
        return Selection(target, empty, None, None, True, None, model_edges, ())
    curve, measure = measure_curve(evaluator, order, target, max_points, progress)
    reaching = [k for k, f in curve.points() if f >= target]
    k = reaching[0] if reaching else None
    settled = not curve.gaps_below(k if k is not None else total)
    drop = _largest_drop(curve, measure, tolerance, z)
    circuit = _circuit(order[:k], scores, name) if k is not None else None
    selection = Selection(target, curve, k, circuit, settled, drop, model_edges, ())
    return replace(selection, warnings=tuple(_warnings(selection)))


def _warnings(s: Selection) -> list[str]:
    out = []
    n = s.curve.n_examples
    if s.drop is not None:
        d = s.drop
        noise = (f"{Z:g} paired standard errors over {n} examples = {Z * d.stderr:.3f}" if d.stderr is not None
                 else "no per-example values")
        out.append(f"faithfulness is not monotone in k: it falls from {d.f_before:.3f} (k = {d.before}) to "
                   f"{d.f_after:.3f} (k = {d.after}), by {d.size:.3f}, beyond noise (max of {TOLERANCE:g} and "
                   f"{noise}); the ranking puts edges that lower the metric before edges the circuit needs")
    if s.k is not None and s.k > MOST_OF_MODEL * s.model_edges:
        best = s.best_below
        better = f"; the best smaller circuit measured reaches {best[1]:.3f} (k = {best[0]})" if best else ""
        out.append(f"the chosen circuit has {s.k} of the model's {s.model_edges} edges ({s.k / s.model_edges:.0%}): "
                   f"no small top-k circuit reaches {s.target:g}{better}")
    if s.k is not None and s.stderr is not None and s.faithfulness - s.target < s.stderr:
        out.append(f"f = {s.faithfulness:.4f} is above the target by {s.faithfulness - s.target:.4f}, less than "
                   f"its standard error {s.stderr:.4f}: on other examples it may miss {s.target:g}")
    if not s.settled:
        where = f"below k = {s.k}" if s.k is not None else "in the curve"
        out.append(f"{len(s.curve.gaps_below(s.k or s.curve.total))} gaps {where} were not measured "
                   f"({len(s.curve.ks)} of {s.curve.total} values of k evaluated): a smaller top-k circuit may "
                   "reach the target (raise --curve-points)")
    return out


def smallest_reaching(session: Session | Evaluator, scores: Mapping[Edge, float], target: float,
                      absolute: bool = False, max_points: int = MAX_POINTS, name: str = "discovered"
                      ) -> tuple[CircuitGraph | None, MeasuredCurve]:
    """`select_by_target`'s circuit (None when no measured k reaches `target`) and curve."""
    selection = select_by_target(session, scores, target, absolute, max_points, name=name)
    return selection.circuit, selection.curve


def area_under(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Trapezoid rule."""
    return sum((xs[i + 1] - xs[i]) * (ys[i + 1] + ys[i]) / 2 for i in range(len(xs) - 1))


def edge_counts(total: int, fractions: Sequence[float] = FRACTIONS) -> list[int]:
    """k for each fraction: x * total rounded half up, at least one edge, at most `total`."""
    return [min(total, max(1, math.floor(x * total + 0.5))) for x in fractions]


def cpr_cmd(session: Session | Evaluator, ranked: Sequence[Edge] | Mapping[Edge, float], absolute: bool = False,
            fractions: Sequence[float] = FRACTIONS, total: int | None = None) -> dict:
    """MIB's CPR (area under f) and CMD (area under |1 - f|) over a ranking.

    `ranked` is a list of edges, best first, or a score mapping (ranked by `ranking`).
    `total` is the edge count the fractions refer to (default: the ranking's length,
    which should be every edge of the model). Returns {"cpr", "cmd", "curve": [{"fraction",
    "edges", "faithfulness"}]}.
    """
    order = ranking(ranked, absolute) if isinstance(ranked, Mapping) else list(ranked)
    total = len(order) if total is None else total
    if total < 1:
        raise ValueError("an empty ranking has no CPR/CMD")
    ks = edge_counts(total, fractions)
    distinct = sorted(set(ks))
    faith = dict(zip(distinct, _prefix_faithfulness(_evaluator(session), order, distinct)))
    fs = [faith[k] for k in ks]
    return {"cpr": area_under(fractions, fs), "cmd": area_under(fractions, [abs(1 - f) for f in fs]),
            "curve": [{"fraction": x, "edges": k, "faithfulness": f} for x, k, f in zip(fractions, ks, fs)]}


def with_rounded_scores(circuit: CircuitGraph) -> CircuitGraph:
    """The circuit with its float annotations (scores) rounded to 6 significant digits and
    non-finite ones dropped: what a written .circ shows (full precision is noise there)."""
    rounded = {e: {key: float(f"{v:.6g}") if isinstance(v, float) else v for key, v in notes.items()
                   if not isinstance(v, float) or math.isfinite(v)}
               for e, notes in circuit.annotations.items()}
    return CircuitGraph(circuit.nodes, circuit.edges, circuit.model, circuit.name, circuit.level, circuit.doc,
                        rounded)

"""From edge scores to circuits: top-k, threshold, the smallest circuit reaching a target
faithfulness, and MIB's integrated metrics (CPR, CMD) over a ranking.

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
from dataclasses import dataclass, field
from typing import Mapping, Sequence

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
    """Every edge with score >= tau (|score| >= tau with `absolute`)."""
    kept = [e for e in ranking(scores, absolute) if (abs(scores[e]) if absolute else scores[e]) >= tau]
    return _circuit(kept, scores, name, model)


@dataclass
class Curve:
    """Faithfulness of the top-k circuit for the k evaluated, in increasing k."""

    points: list[tuple[int, float]] = field(default_factory=list)

    def add(self, ks: Sequence[int], faiths: Sequence[float]) -> None:
        merged = dict(self.points)
        merged.update(zip(ks, faiths))
        self.points = sorted(merged.items())


def _evaluator(target: Session | Evaluator) -> Evaluator:
    """An Evaluator for a Session; anything with `faithfulness(variants)` is used as is."""
    return target if hasattr(target, "faithfulness") else Evaluator(target)  # type: ignore[return-value]


def _prefix_faithfulness(evaluator, order: Sequence[Edge], ks: Sequence[int]) -> list[float]:
    variants = [CircuitGraph.from_edges(order[:k]) for k in ks]
    return [float(x) for x in evaluator.faithfulness(variants).tolist()] if variants else []


def smallest_reaching(session: Session | Evaluator, scores: Mapping[Edge, float], target: float,
                      absolute: bool = False, points: int = 16, name: str = "discovered"
                      ) -> tuple[CircuitGraph | None, Curve]:
    """The smallest top-k circuit with faithfulness >= target, and the curve evaluated.

    First k = 1, 2, 4, ..., |E| (one batched evaluation); then, between the largest k
    that misses the target below the first k that reaches it, `points` evenly spaced k
    per batched evaluation until the gap closes. Faithfulness need not be monotone in k;
    the search assumes it is between grid points (it returns the smallest k it evaluated
    that reaches the target). None when even all edges miss it.
    """
    evaluator = _evaluator(session)
    order = ranking(scores, absolute)
    total = len(order)
    curve = Curve()
    if total == 0:
        return None, curve
    grid = sorted({min(2 ** i, total) for i in range(total.bit_length() + 1)} | {total})
    curve.add(grid, _prefix_faithfulness(evaluator, order, grid))
    reaching = [k for k, f in curve.points if f >= target]
    if not reaching:
        return None, curve
    hi = reaching[0]
    lo = max((k for k, f in curve.points if k < hi), default=0)
    while hi - lo > 1:
        step = max(1, (hi - lo) // (points + 1))
        ks = list(range(lo + step, hi, step))[:points]
        curve.add(ks, _prefix_faithfulness(evaluator, order, ks))
        found = [k for k in ks if dict(curve.points)[k] >= target]
        if found:
            hi = found[0]
        lo = max(k for k in [lo, *ks] if k < hi)
    return _circuit(order[:hi], scores, name), curve


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

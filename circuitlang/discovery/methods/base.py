"""What a discovery method is (`Method`), what it is given (`Request`) and what it finds
(`Found`); the methods themselves are the other files of this package."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Callable, Mapping

from ...core.errors import CircuitlangError
from ...core.graph import CircuitGraph, Edge
from ...core.metrics import METRICS, Metric
from ...eval.evaluator import Evaluator

Progress = Callable[[str, int, int], None]  # (what, done, total)


class Gradient(Enum):
    """Where a method takes gradients of the metric, which decides the metrics it can use."""

    NONE = "none"  # patches: any metric
    AT_CLEAN = "at the clean run"  # needs a metric with a gradient that is not zero there
    ALONG_PATH = "along a path"  # needs a metric with a gradient


class Refused(CircuitlangError, ValueError):
    """A method asked to score with a metric whose gradient would make its scores noise."""


@dataclass(frozen=True)
class Request:
    """What a run is given: the evaluator (its session holds the model, the task's
    examples, the ablation and the metric) and the methods' options."""

    evaluator: Evaluator
    steps: int = 5  # eap-ig: integration steps
    tau: float = 0.01  # acdc: the faithfulness change under which an edge goes
    progress: Progress | None = None


@dataclass(frozen=True)
class Found:
    """A run's result: a score per edge (methods that rank edges; a selection rule then
    picks the circuit), or a circuit (methods that prune), and how it was found."""

    how: str
    scores: Mapping[Edge, float] | None = None
    circuit: CircuitGraph | None = None


@dataclass(frozen=True)
class Method:
    """One discovery method: `run(request) -> Found`."""

    name: str
    rank: int  # order in help texts and docs (the default first)
    summary: str  # one line, for people
    ranks_edges: bool  # True: scores every edge; False: returns a circuit
    gradient: Gradient
    run: Callable[[Request], Found]

    def accepts(self, metric: Metric) -> bool:
        """Whether this method's scores mean something under `metric`."""
        if self.gradient is Gradient.NONE:
            return True
        return metric.differentiable and not (metric.flat_at_clean and self.gradient is Gradient.AT_CLEAN)

    def refusal(self, metric: Metric) -> str | None:
        """Why this method cannot score edges with `metric`, or None.

        Accuracy is flat almost everywhere (no gradient at all), and KL divergence from
        the model is at its minimum at the clean run, so its gradient there is zero: a
        gradient method would return scores that are rounding noise.
        """
        from . import METHODS  # the registry, whose modules import this one

        if self.accepts(metric):
            return None
        others = _either([m.name for m in METHODS.values() if m is not self and m.accepts(metric)])
        if not metric.differentiable:
            usable = _either([m.name for m in METRICS.values() if self.accepts(m)])
            return f"{metric.why_not_differentiable}; score with {usable}, or use {others}"
        return (f"{metric.why_flat_at_clean}, where {self.name} takes its gradient: every score would be 0; "
                f"use {others}, or another metric")

    def check(self, metric_name: str) -> None:
        """Raise `Refused` if this method cannot use the metric."""
        problem = self.refusal(METRICS[metric_name])
        if problem:
            raise Refused(problem)


def _either(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]

"""What an evaluation returns: frozen values, built once and never changed.

`CircuitReport` (one circuit on one task: the metric on the model, the empty circuit
and the circuit, faithfulness, and minimality and completeness when asked for),
`CheckReport` (a report with each expectation's verdict), and their parts. Measures
carry a bootstrap `Interval` over examples (eval/bootstrap.py) where one was computed;
`warnings` say when a number is easy to misread.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Interval:
    """A 95% bootstrap interval over examples (eval/bootstrap.py)."""

    low: float
    high: float

    def straddles(self, bound: float) -> bool:
        """True when the bound lies strictly inside: other examples could flip a verdict."""
        return self.low < bound < self.high

    def __str__(self) -> str:
        return f"[{self.low:.4f}, {self.high:.4f}]"


@dataclass(frozen=True)
class Contribution:
    """What removing one edge or node costs the circuit's faithfulness."""

    name: str
    delta: float
    superfluous: bool
    interval: Interval | None = None


@dataclass(frozen=True)
class StrongContribution:
    """Wang et al.'s stronger minimality for one node v: the largest |f(C \\ K) - f(C \\ (K + v))|
    found over the node sets K tried (greedily grown, `subset` is the best K)."""

    name: str
    delta: float
    subset: tuple[str, ...]
    superfluous: bool


@dataclass(frozen=True)
class Sensitivity:
    """One component measured under each ablation (`values`: (ablation, value) pairs in
    registry order). `role` "outside": a head or MLP outside the circuit, value = the share
    of the metric lost when it alone is ablated from the model, 1 - f(M without it).
    `role` "inside": an edge or node of the circuit, value = delta f, f(C) - f(C without it)."""

    name: str
    role: str
    values: tuple[tuple[str, float], ...]
    flagged: bool = False  # a warning is about it

    def value(self, ablation: str) -> float:
        return dict(self.values)[ablation]


@dataclass(frozen=True)
class Completeness:
    """The worst gap found between the circuit and the model when the same node set is
    removed from both, over the subsets tried (`samples`: each subset with its gap)."""

    worst_gap: float
    worst_subset: tuple[str, ...]
    samples: tuple[tuple[tuple[str, ...], float], ...]
    interval: Interval | None = None


@dataclass(frozen=True)
class CircuitReport:
    circuit: str
    model: str
    task: str
    ablation: str
    metric: str
    n_examples: int
    m_model: float
    m_empty: float
    m_circuit: float
    faithfulness: float
    ratio: float
    gap: float
    per_example: dict[str, list[float]]
    edges: tuple[Contribution, ...] = ()
    nodes: tuple[Contribution, ...] = ()
    completeness: Completeness | None = None
    engine: str = "fast"
    level: str = "edge"
    faithfulness_interval: Interval | None = None
    effect_se: float = 0.0  # standard error of m(M) - m(empty) over examples
    strong: tuple[StrongContribution, ...] = ()
    sensitivity: tuple[Sensitivity, ...] = ()
    warnings: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()  # what was not measured, and why


@dataclass(frozen=True)
class ExpectResult:
    text: str
    passed: bool
    value: float | None
    detail: str
    interval: Interval | None = None
    note: str = ""


@dataclass(frozen=True)
class CheckReport:
    circuit: CircuitReport
    results: tuple[ExpectResult, ...]

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

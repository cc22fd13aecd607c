"""What an evaluation returns: frozen values, built once and never changed.

`CircuitReport` (one circuit on one task: the metric on the model, the empty circuit
and the circuit, faithfulness, and minimality and completeness when asked for),
`CheckReport` (a report with each expectation's verdict), and their parts.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Contribution:
    """What removing one edge or node costs the circuit's faithfulness."""

    name: str
    delta: float
    superfluous: bool


@dataclass(frozen=True)
class Completeness:
    """The worst gap found between the circuit and the model when the same node set is
    removed from both, over the subsets tried (`samples`: each subset with its gap)."""

    worst_gap: float
    worst_subset: tuple[str, ...]
    samples: tuple[tuple[tuple[str, ...], float], ...]


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


@dataclass(frozen=True)
class ExpectResult:
    text: str
    passed: bool
    value: float | None
    detail: str


@dataclass(frozen=True)
class CheckReport:
    circuit: CircuitReport
    results: tuple[ExpectResult, ...]

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

"""What an evaluation returns: frozen values, built once and never changed.

`CircuitReport` (one circuit on one task: the metric on the model, the empty circuit
and the circuit, faithfulness, and minimality and completeness when asked for),
`CheckReport` (a report with each expectation's verdict), and their parts. Measures
carry a bootstrap `Interval` over examples (eval/bootstrap.py) where one was computed;
`warnings` say when a number is easy to misread.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape


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

    def __repr__(self) -> str:
        """Short: what was measured and the faithfulness (the default would print every
        per-example value)."""
        interval = f" {self.faithfulness_interval}" if self.faithfulness_interval else ""
        return (f"CircuitReport({self.circuit!r} on {self.task!r}, {self.ablation} ablation: "
                f"faithfulness {self.faithfulness:.4f}{interval}, {self.n_examples} examples"
                f"{f', {len(self.warnings)} warnings' if self.warnings else ''})")

    def _repr_html_(self) -> str:
        """In a notebook: the measures with their intervals, warnings, and each edge's and
        node's contribution."""
        from ..present.notebook import table_html

        def iv(interval: Interval | None) -> str:
            return str(interval) if interval else ""

        parts = [table_html(["measure", "value", "95% interval"],
                            [["faithfulness", self.faithfulness, iv(self.faithfulness_interval)],
                             ["m(model)", self.m_model, ""], ["m(empty)", self.m_empty, ""],
                             ["m(circuit)", self.m_circuit, ""]],
                            f"{self.circuit} on {self.task} ({self.model}, {self.ablation} ablation, "
                            f"{self.metric}, {self.n_examples} examples)")]
        parts += [f"<p><b>warning</b>: {escape(w)}</p>" for w in self.warnings]
        for label, rows in (("edge", self.edges), ("node", self.nodes)):
            if rows:
                parts.append(table_html([label, "Δ faithfulness", "95% interval", "superfluous"],
                                        [[c.name, c.delta, iv(c.interval), "yes" if c.superfluous else ""]
                                         for c in rows]))
        return "".join(parts)

    def to_pandas(self, what: str = "edges"):
        """Each edge's (or, `what="nodes"`, node's) contribution as a pandas DataFrame:
        name, delta (the faithfulness lost without it), its interval, superfluous.
        Needs pandas (`pip install 'circuitlang[tables]'`)."""
        pandas = _pandas()
        rows = {"edges": self.edges, "nodes": self.nodes}[what]
        return pandas.DataFrame([{"name": c.name, "delta": c.delta,
                                  "low": c.interval.low if c.interval else None,
                                  "high": c.interval.high if c.interval else None,
                                  "superfluous": c.superfluous} for c in rows],
                                columns=["name", "delta", "low", "high", "superfluous"])


def _pandas():
    try:
        import pandas
    except ImportError:
        from ..core.errors import CircuitlangError

        raise CircuitlangError("tables need pandas", "pip install 'circuitlang[tables]'") from None
    return pandas


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

    def __repr__(self) -> str:
        verdict = "PASS" if self.passed else "FAIL"
        return f"CheckReport({self.circuit.circuit!r} on {self.circuit.task!r}: {verdict}, {len(self.results)} expectations)"

    def _repr_html_(self) -> str:
        """In a notebook: each expectation's verdict and measured value with its interval,
        then the circuit's report."""
        from ..present.notebook import table_html

        rows = [[r.text, "pass" if r.passed else "FAIL", "" if r.value is None else r.value,
                 str(r.interval) if r.interval else "", r.detail] for r in self.results]
        verdict = "PASS" if self.passed else "FAIL"
        return (table_html(["expectation", "result", "value", "95% interval", "detail"], rows,
                           f"check {self.circuit.circuit} on {self.circuit.task}: {verdict}")
                + self.circuit._repr_html_())

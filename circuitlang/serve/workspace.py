"""What `circ serve` knows and measures: the .circ files under one folder, their circuits
as the page has edited them, and the model sessions that evaluate them.

The page never sends a circuit; it sends a *view*: a file (relative to the served
folder), a circuit of that file (or one discovered in this process), the size `k` of a
ranked circuit, and the indices of the edges switched off. `Workspace.circuit(view)`
rebuilds the circuit from that, so the URL that holds a view is enough to share it.

Every measure goes through the same `Evaluator` that `circ eval --task` builds for the
file's task (same data, ablation, metric, seed, batch size and bootstrap draws), so the
page's numbers are the command line's numbers. One lock serialises the model work: the
HTTP server answers from several threads, torch models are not meant to be shared
between threads, and the page asks for one thing at a time anyway.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import torch

from ..core.errors import CircuitlangError
from ..core.graph import EMBED, LOGITS, CircuitGraph, Edge, Node
from ..discovery.methods import METHODS
from ..discovery.methods.base import Request
from ..discovery.select import measure_curve, ranking
from ..eval.bootstrap import DRAWS, intervals
from ..eval.evaluator import Evaluator
from ..eval.loading import model_for
from ..eval.sensitivity import measure as sensitivity_of
from ..eval.results import CircuitReport
from ..eval.session import Session
from ..eval.tasks.registry import task_data
from ..lang.check import TaskSpec
from ..lang.lower import groups_of
from ..lang.pipeline import Compiled, compile_file
from ..lang.write import graph_to_circ

BATCH_SIZE = 32  # `circ eval`'s default: the same batches give the same numbers
CURVE_POINTS = 128  # circuits measured for a ranked circuit's faithfulness curve, at most


class ServeError(CircuitlangError):
    """A request the page cannot have: `status` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400, help: str | None = None):
        super().__init__(message, help)
        self.status = status


@dataclass(frozen=True)
class View:
    """One circuit as the page shows it (all of it comes from the URL)."""

    file: str
    circuit: str
    task: str | None = None
    k: int | None = None  # ranked circuits: how many top edges
    off: frozenset[int] = frozenset()  # indices (in sorted_edges of the circuit at k) switched off


@dataclass(frozen=True)
class Ranked:
    """A circuit whose edges are ordered by a score: a discovered one, or a file's circuit
    whose every edge carries a `score` note. `order` is best first."""

    name: str
    order: tuple[Edge, ...]
    scores: Mapping[Edge, float]
    how: str
    model: str | None

    def top(self, k: int) -> CircuitGraph:
        edges = self.order[:k]
        notes = {e: {"score": round(self.scores[e], 6)} for e in edges}
        return CircuitGraph.from_edges(edges, model=self.model, name=self.name, annotations=notes)


@dataclass
class Workspace:
    """The served folder and everything measured in it (one per `circ serve`)."""

    root: Path
    device: str = "cpu"
    dtype: str = "float32"
    _files: dict[Path, tuple[float, Compiled]] = field(default_factory=dict)
    _backends: dict[str, object] = field(default_factory=dict)
    _evaluators: dict[tuple, Evaluator] = field(default_factory=dict)
    _ranked: dict[tuple[str, str], Ranked] = field(default_factory=dict)
    _curves: dict[tuple, list[tuple[int, float]]] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock)

    def __post_init__(self) -> None:
        self.root = Path(self.root).resolve()

    # -- files -------------------------------------------------------------------------------
    def path_of(self, file: str) -> Path:
        """The served file `file` names; refuses anything outside the served folder."""
        if not file or "\x00" in file:
            raise ServeError("no file named", 400)
        path = (self.root / file).resolve()
        if path != self.root and self.root not in path.parents:
            raise ServeError(f"{file} is outside the served folder {self.root}", 403)
        if path.suffix != ".circ":
            raise ServeError(f"{file} is not a .circ file", 403)
        if not path.is_file():
            raise ServeError(f"no file {file} in {self.root}", 404)
        return path

    def compiled(self, file: str) -> Compiled:
        """The file compiled (again when it changed on disk); a file with errors is refused
        with its first diagnostic."""
        return self._version(file)[1]

    def _version(self, file: str) -> tuple[tuple[str, float], Compiled]:
        """(the file's path and modification time, its compiled form): what is measured for
        a file is kept under the first, so an edited file is measured again."""
        path = self.path_of(file)
        stamp = path.stat().st_mtime
        cached = self._files.get(path)
        if cached is None or cached[0] != stamp:
            cached = (stamp, compile_file(path))
            self._files[path] = cached
        compiled = cached[1]
        if not compiled.ok:
            first = next(d for d in compiled.diagnostics if d.severity == "error")
            raise ServeError(f"{file} does not compile: {first.code} {first.message} "
                             f"(line {first.span.line}); run `circ check {file}`", 422)
        return (str(path), stamp), compiled

    def task(self, file: str, task: str | None) -> TaskSpec:
        """The named task of the file, or its first when none is named."""
        compiled = self.compiled(file)
        if not compiled.tasks:
            raise ServeError(f"{file} defines no task: add a `task` block to measure its circuits", 422)
        name = task or next(iter(compiled.tasks))
        if name not in compiled.tasks:
            raise ServeError(f"no task `{name}` in {file}; it has: {', '.join(compiled.tasks)}", 404)
        return compiled.tasks[name]

    def files(self) -> list[str]:
        """The .circ files of the served folder and below, relative to it (at most 500)."""
        found = sorted(p.relative_to(self.root).as_posix() for p in self.root.rglob("*.circ") if p.is_file())
        return found[:500]

    # -- circuits ------------------------------------------------------------------------------
    def ranked(self, file: str, name: str) -> Ranked | None:
        """The circuit as a ranking, when it is one (discovered here, or every edge scored)."""
        if (file, name) in self._ranked:
            return self._ranked[(file, name)]
        graph = self.compiled(file).circuits.get(name)
        if graph is None or not graph.edges:
            return None
        scores = {e: (graph.annotations.get(e) or {}).get("score") for e in graph.edges}
        if not all(isinstance(s, (int, float)) and not isinstance(s, bool) for s in scores.values()):
            return None
        return Ranked(name, tuple(ranking(scores, absolute=True)), scores, "the file's scores", graph.model)

    def circuit_names(self, file: str) -> list[str]:
        return list(self.compiled(file).circuits) + [n for (f, n) in self._ranked if f == file]

    def base(self, view: View) -> CircuitGraph:
        """The circuit before edges are switched off: the file's, or a ranking's top k."""
        ranked = self.ranked(view.file, view.circuit)
        if ranked is not None and (view.k is not None or (view.file, view.circuit) in self._ranked):
            k = len(ranked.order) if view.k is None else view.k
            if not 1 <= k <= len(ranked.order):
                raise ServeError(f"k = {k} is outside 1..{len(ranked.order)} for {view.circuit}")
            return ranked.top(k)
        circuits = self.compiled(view.file).circuits
        if view.circuit not in circuits:
            raise ServeError(f"no circuit `{view.circuit}` in {view.file}; it has: "
                             f"{', '.join(self.circuit_names(view.file)) or 'none'}", 404)
        return circuits[view.circuit]

    def circuit(self, view: View) -> CircuitGraph:
        """The circuit the view shows: the base without the switched-off edges."""
        base = self.base(view)
        edges = base.sorted_edges()
        bad = [i for i in view.off if not 0 <= i < len(edges)]
        if bad:
            raise ServeError(f"edge index {bad[0]} is outside 0..{len(edges) - 1} for {view.circuit}")
        off = CircuitGraph.from_edges([edges[i] for i in view.off])
        return (base - off).renamed(base.name or view.circuit, base.doc)

    def groups(self, file: str, name: str) -> dict[str, frozenset[Node]]:
        compiled = self.compiled(file)
        return dict(groups_of(compiled.program, name)) if name in compiled.circuits else {}

    def export(self, view: View) -> str:
        """The view's circuit as canonical .circ text, with a header saying where it came from."""
        base, circuit = self.base(view), self.circuit(view)
        compiled = self.compiled(view.file)
        off = [str(e) for i, e in enumerate(base.sorted_edges()) if i in view.off]
        header = [f"exported by `circ serve` from circuit `{view.circuit}` of {view.file}"
                  + (f", top {view.k} edges" if view.k is not None else "")]
        if off:
            header.append("switched off: " + "; ".join(off))
        return graph_to_circ(circuit.renamed(export_name(view)), compiled.model, header)

    # -- measuring -----------------------------------------------------------------------------
    def evaluator(self, file: str, task: str | None, ablation: str | None = None) -> Evaluator:
        """The Evaluator `circ eval --task` would build for this task of the file (under
        another ablation when one is named: the sensitivity warnings compare them)."""
        version, compiled = self._version(file)
        spec = self.task(file, task)
        ablation = ablation or spec.ablation
        key = (version, spec.name, ablation)
        with self.lock:
            if key not in self._evaluators:
                backend = self.backend(compiled)
                same_data = next((e.session.data for k, e in self._evaluators.items() if k[:2] == key[:2]), None)
                data = same_data if same_data is not None else task_data(spec, backend, None)
                session = Session(backend, data, ablation, spec.metric, BATCH_SIZE)
                self._evaluators[key] = Evaluator(session, 0.01, DRAWS if ablation == spec.ablation else 0)
            return self._evaluators[key]

    def backend(self, compiled: Compiled):
        ref = compiled.model_ref
        if ref is None:
            raise ServeError(f"{compiled.path} names no model", 422)
        if ref.name not in self._backends:
            self._backends[ref.name] = model_for(ref, self.device, self.dtype)
        return self._backends[ref.name]

    def measure(self, view: View) -> dict:
        """The view's circuit measured: f with its interval, each edge's and node's delta f
        (minimality) with intervals, and for each switched-off edge the f it would add back."""
        started = time.perf_counter()
        spec = self.task(view.file, view.task)
        evaluator = self.evaluator(view.file, view.task)
        base, circuit = self.base(view), self.circuit(view)
        with self.lock:
            report = evaluator.report(circuit, seed=spec.seed, task_name=spec.name)
            edges = base.sorted_edges()
            back = sorted(view.off)
            gains = self._gains(evaluator, report, circuit, [edges[i] for i in back], spec.seed)
        by_name = {c.name: c for c in report.edges}
        rows = []
        for i, e in enumerate(edges):
            score = (base.annotations.get(e) or {}).get("score")
            row = {"i": i, "edge": str(e), "score": score if isinstance(score, (int, float)) else None}
            if i in view.off:
                gain, span = gains[back.index(i)]
                row.update(on=False, delta=gain, interval=span)
            else:
                c = by_name[str(e)]
                row.update(on=True, delta=c.delta, superfluous=c.superfluous, interval=_span(c.interval))
            rows.append(row)
        with self.lock:  # the warnings `circ eval` gives where another ablation would judge differently
            _, hidden, notes = sensitivity_of(lambda other: self.evaluator(view.file, view.task, other),
                                              report.ablation, circuit, "auto", report)
        nodes = {c.name: c for c in report.nodes}
        node_rows = [{"i": i, "node": str(n), "delta": nodes[str(n)].delta if str(n) in nodes else None,
                      "interval": _span(nodes[str(n)].interval) if str(n) in nodes else None,
                      "in_circuit": n in circuit.nodes}
                     for i, n in enumerate(base.sorted_nodes())]
        return {"circuit": view.circuit, "task": report.task, "model": report.model, "ablation": report.ablation,
                "metric": report.metric, "n_examples": report.n_examples, "edges_on": len(circuit.edges),
                "faithfulness": report.faithfulness, "interval": _span(report.faithfulness_interval),
                "m_model": report.m_model, "m_empty": report.m_empty, "m_circuit": report.m_circuit,
                "edges": rows, "nodes": node_rows, "warnings": list(report.warnings) + list(hidden), "notes": list(notes),
                "seconds": round(time.perf_counter() - started, 3)}

    def _gains(self, evaluator: Evaluator, report: CircuitReport, circuit: CircuitGraph, edges: list[Edge],
               seed: int) -> list:
        """For each switched-off edge: f(C + e) - f(C), with its interval (same resamples;
        C's per-example values are the report's, not measured again)."""
        if not edges:
            return []
        variants = [circuit | CircuitGraph.from_edges([e]) for e in edges]
        values = evaluator.session.metric_of(variants)
        faiths = evaluator.faithfulness_of(values).tolist()
        spans = [None] * len(edges)
        resamples = evaluator.resamples(seed)
        if resamples is not None:
            mine = torch.tensor([report.per_example["circuit"]], dtype=values.dtype)
            here = evaluator.faithfulness_draws(mine, resamples)
            spans = [_span(s) for s in intervals(evaluator.faithfulness_draws(values, resamples) - here)]
        return [(g - report.faithfulness, s) for g, s in zip(faiths, spans)]

    def effects(self, view: View, edge: int | None = None, node: int | None = None) -> dict:
        """Per-example effect of one edge or node, in units of faithfulness: for each example,
        (metric with it - metric without it) / (m(model) - m(empty)). The mean is its delta f."""
        base, circuit = self.base(view), self.circuit(view)
        if edge is not None:
            edges = base.sorted_edges()
            if not 0 <= edge < len(edges):
                raise ServeError(f"edge index {edge} is outside 0..{len(edges) - 1}")
            item = edges[edge]
            one = CircuitGraph.from_edges([item])
            with_it, without = (circuit | one, circuit) if edge in view.off else (circuit, circuit - one)
            label = str(item)
        else:
            nodes = base.sorted_nodes()
            if node is None or not 0 <= node < len(nodes):
                raise ServeError("name an edge or a node by its index")
            item = nodes[node]
            if item in (EMBED, LOGITS):
                raise ServeError(f"{item} is always there: it has no effect of its own to measure")
            with_it, without, label = circuit, circuit.without_nodes([item]), str(item)
        evaluator = self.evaluator(view.file, view.task)
        with self.lock:
            values = evaluator.session.metric_of([with_it, without])
        scale = evaluator.m_model - evaluator.m_empty
        per_example = ((values[0] - values[1]) / scale).tolist()
        return {"item": label, "per_example": [round(v, 6) for v in per_example],
                "mean": sum(per_example) / len(per_example), "n_examples": len(per_example)}

    # -- ranked circuits: discovery and the faithfulness curve ----------------------------------
    def discover(self, file: str, task: str | None, method: str) -> str:
        """Run a discovery method on the task over the whole model and keep its ranking as
        a circuit of this file (in this process only); returns its name."""
        if method not in METHODS or not METHODS[method].ranks_edges:
            choices = ", ".join(m.name for m in METHODS.values() if m.ranks_edges)
            raise ServeError(f"method `{method}` does not rank edges; use one of: {choices}")
        compiled = self.compiled(file)
        evaluator = self.evaluator(file, task)
        with self.lock:
            found = METHODS[method].run(Request(evaluator))
        scores = {e: float(s) for e, s in (found.scores or {}).items()}
        order = tuple(e for e in ranking(scores, absolute=True) if scores[e] == scores[e])
        name = f"{method.replace('-', '_')}_{self.task(file, task).name}"
        self._ranked[(file, name)] = Ranked(name, order, scores, found.how, compiled.model)
        return name

    def curve(self, view: View) -> dict:
        """f(k) of the ranking's top-k circuits: every k up to CURVE_POINTS edges, else a grid
        refined toward 0.95 (discovery/select.py's measure_curve, as `circ discover` uses)."""
        ranked = self.ranked(view.file, view.circuit)
        if ranked is None:
            raise ServeError(f"circuit `{view.circuit}` has no ranking: discover one, or give every edge a score")
        key = (self._version(view.file)[0], view.circuit, self.task(view.file, view.task).name)
        evaluator = self.evaluator(view.file, view.task)
        with self.lock:
            if key not in self._curves:
                curve, _ = measure_curve(evaluator, list(ranked.order), 0.95, CURVE_POINTS)
                self._curves[key] = curve.points()
        return {"circuit": ranked.name, "how": ranked.how, "total": len(ranked.order),
                "points": [[k, f] for k, f in self._curves[key]]}


def _span(interval) -> list[float] | None:
    return None if interval is None else [interval.low, interval.high]


def export_name(view: View) -> str:
    """The exported circuit's name (and, with .circ, its file's): `ind_top7_edited`."""
    suffix = f"_top{view.k}" if view.k is not None else ""
    return f"{view.circuit}{suffix}" + ("_edited" if view.off else "")

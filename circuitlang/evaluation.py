"""Evaluate circuits on a model: faithfulness, minimality, completeness, and `check` verdicts.

With m the task's metric averaged over examples, M the full model and "empty" the
circuit with every edge ablated (DESIGN.md section 4):

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
from dataclasses import dataclass, field
from typing import Callable, Iterable, NamedTuple, Sequence

import torch

from .backend import LoadedModel, SenderCache, cache_senders, hook
from .check import CheckSpec, ExpectSpec, TaskSpec
from .engine_fast import FastEngine, Unsupported
from .engine_reference import run_reference
from .graph import EMBED, LOGITS, CircuitGraph, Node
from .metrics import per_example
from .tasks import TaskData

Progress = Callable[[int, int], None]


class EvaluationError(Exception):
    """A problem that stops an evaluation; `help` says what to do."""

    def __init__(self, message: str, help: str | None = None):
        super().__init__(message)
        self.help = help


class Batch(NamedTuple):
    """One batch of a session's task: its examples, clean tokens on the model's device,
    the ablated sender outputs circuits are evaluated against, and named positions."""

    part: TaskData
    clean: torch.Tensor
    ablated: SenderCache
    named: dict[str, torch.Tensor]


@dataclass
class Session:
    """One model, task data, ablation and metric, prepared once and reused for many circuits."""

    loaded: LoadedModel
    data: TaskData
    ablation: str = "resample"
    metric: str = "logit_diff"
    batch_size: int = 32
    memory_budget: int = 2 * 1024**3
    engine: str = "auto"
    progress: Progress | None = None
    _batches: list = field(default_factory=list, repr=False)
    _model_metric: torch.Tensor | None = field(default=None, repr=False)
    _empty_metric: torch.Tensor | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        model = self.loaded.model
        if self.data.clean.shape[1] > model.cfg.n_ctx:
            raise EvaluationError(f"prompts have {self.data.clean.shape[1]} tokens; the model's context is "
                                  f"{model.cfg.n_ctx}")
        if int(self.data.clean.max()) >= model.cfg.d_vocab or int(self.data.corrupt.max()) >= model.cfg.d_vocab:
            raise EvaluationError("the task has token ids outside the model's vocabulary")
        self._fast: FastEngine | None = None
        self.notes: list[str] = []
        self._logprobs: dict[int, torch.Tensor] = {}
        if self.engine in ("auto", "fast"):
            try:
                self._fast = FastEngine(model, self.loaded.shape)
            except Unsupported as err:
                if self.engine == "fast":
                    raise EvaluationError(f"the fast engine does not support this model: {err}") from None
                self.notes.append(f"using the slow reference engine: the fast engine does not support {err}")
        self._prepare()
        if self._fast is not None and self.engine == "auto":
            self._self_check()

    # -- data -------------------------------------------------------------------------
    def _prepare(self) -> None:
        device = self.loaded.device
        model = self.loaded.model
        n = len(self.data)
        mean: SenderCache | None = None
        if self.ablation == "mean":
            total: SenderCache | None = None
            for start in range(0, n, self.batch_size):
                cache = cache_senders(model, self.data.clean[start:start + self.batch_size].to(device))
                summed = cache.map(lambda t: t.sum(0, keepdim=True))
                total = summed if total is None else _add(total, summed)
            assert total is not None
            mean = total.map(lambda t: t / n)
        for start in range(0, n, self.batch_size):
            part = self.data.select(slice(start, start + self.batch_size))
            clean, corrupt = part.clean.to(device), part.corrupt.to(device)
            if self.ablation == "resample":
                ablated = cache_senders(model, corrupt)
            elif self.ablation == "mean":
                assert mean is not None
                ablated = mean
            elif self.ablation == "zero":
                ablated = cache_senders(model, clean[:1]).map(lambda t: torch.zeros_like(t[:1, :1]))
            else:
                raise EvaluationError(f"unknown ablation {self.ablation!r}")
            named = {k: v.to(device) for k, v in part.positions.items()}
            self._batches.append(Batch(part, clean, ablated, named))

    def _self_check(self) -> None:
        """Fall back to the reference engine if the fast one cannot reproduce this model.

        With every edge a circuit is the model itself; an architecture feature the fast
        engine does not know (and `check_supported` missed) shows up here as a mismatch.
        """
        part, clean, ablated, named = self._batches[0]
        few = slice(0, min(2, clean.shape[0]))
        clean, named = clean[few], {k: v[few] for k, v in named.items()}
        outputs = {k: (v[few] if v.shape[0] == part.clean.shape[0] else v) for k, v in ablated.outputs.items()}
        from .models import all_edges

        full = CircuitGraph.from_edges(all_edges(self.loaded.shape))
        assert self._fast is not None
        fast = self._fast.run(clean, outputs, [full], named)[0].float()
        truth = self._model_logits(clean, named).float()
        error = (fast - truth).abs().max().item()
        if not error <= 1e-3 * max(1.0, truth.abs().max().item()):
            self._fast = None
            self.notes.append(f"using the slow reference engine: the fast engine does not reproduce this model "
                              f"(max logit error {error:.3g} with every edge)")

    # -- metric values ------------------------------------------------------------------
    def _values(self, logits: torch.Tensor, part: TaskData, model_logprobs: torch.Tensor | None) -> torch.Tensor:
        device = logits.device
        return per_example(self.metric, logits, part.answer.to(device), part.wrong.to(device), model_logprobs)

    def _model_logits(self, clean: torch.Tensor, named: dict) -> torch.Tensor:
        with torch.no_grad():
            logits = self.loaded.model(clean)
        return logits[torch.arange(clean.shape[0]), named["END"]]

    def model_metric(self) -> torch.Tensor:
        """m(M) per example [N]: the unmodified model."""
        if self._model_metric is None:
            parts = []
            for index, (part, clean, _, named) in enumerate(self._batches):
                logits = self._model_logits(clean, named).unsqueeze(0)
                self._logprobs[index] = torch.log_softmax(logits[0], -1)
                parts.append(self._values(logits, part, self._logprobs[index])[0])
            self._model_metric = torch.cat(parts)
        return self._model_metric

    @property
    def batches(self) -> tuple[Batch, ...]:
        """The task in batches, as every evaluation of this session reads it."""
        return tuple(self._batches)

    def kl_reference(self, index: int) -> torch.Tensor | None:
        """The full model's log-probabilities at END for batch `index`, once; only `kl` needs them."""
        if self.metric != "kl":
            return None
        if index not in self._logprobs:
            _, clean, _, named = self._batches[index]
            self._logprobs[index] = torch.log_softmax(self._model_logits(clean, named), -1)
        return self._logprobs[index]

    def empty_metric(self) -> torch.Tensor:
        if self._empty_metric is None:
            self._empty_metric = self.metric_of([CircuitGraph.from_edges([])])[0]
        return self._empty_metric

    def _chunk_size(self, variants: Sequence[CircuitGraph]) -> int:
        cfg = self.loaded.model.cfg
        length = self.data.clean.shape[1]
        nodes = max((len(v.nodes) for v in variants), default=1) + 4
        per_variant = nodes * min(self.batch_size, len(self.data)) * length * cfg.d_model * 4 * 4
        return max(1, int(self.memory_budget // max(per_variant, 1)))

    def metric_of(self, variants: Sequence[CircuitGraph]) -> torch.Tensor:
        """m(C) per variant and example: [K, N]."""
        chunk = self._chunk_size(variants)
        rows = []
        total = len(self._batches) * math.ceil(len(variants) / chunk)
        done = 0
        for start in range(0, len(variants), chunk):
            group = variants[start:start + chunk]
            parts = []
            for index, (part, clean, ablated, named) in enumerate(self._batches):
                logits = self._run(clean, ablated, group, named)
                parts.append(self._values(logits, part, self.kl_reference(index)))
                done += 1
                if self.progress:
                    self.progress(done, total)
            rows.append(torch.cat(parts, dim=1))
        return torch.cat(rows, dim=0)

    def _run(self, clean, ablated: SenderCache, variants, named) -> torch.Tensor:
        try:
            if self._fast is not None:
                return self._fast.run(clean, ablated.outputs, variants, named)
            return run_reference(self.loaded.model, self.loaded.shape, clean, ablated.outputs, variants, named)
        except (torch.cuda.OutOfMemoryError, MemoryError, RuntimeError) as err:
            if not _out_of_memory(err):
                raise
            if len(variants) == 1:
                raise EvaluationError("out of memory evaluating a single circuit",
                                      "lower --batch-size, or use a smaller --dtype") from None
            half = len(variants) // 2
            self.notes.append(f"ran out of memory with {len(variants)} circuits in one pass; split them in two")
            return torch.cat([self._run(clean, ablated, variants[:half], named),
                              self._run(clean, ablated, variants[half:], named)])

    def knockout_metric(self, node_sets: Sequence[Iterable[Node]]) -> torch.Tensor:
        """m(M without K) per node set and example: [K, N], by activation patching."""
        rows = []
        for nodes in node_sets:
            parts = []
            for index, (part, clean, ablated, named) in enumerate(self._batches):
                logits = self._knockout_logits(clean, ablated, frozenset(nodes), named).unsqueeze(0)
                parts.append(self._values(logits, part, self.kl_reference(index))[0])
            rows.append(torch.cat(parts))
        return torch.stack(rows) if rows else torch.zeros(0, len(self.data))

    def _knockout_logits(self, clean, ablated: SenderCache, nodes: frozenset[Node], named) -> torch.Tensor:
        return knockout_logits(self.loaded.model, clean, ablated, nodes, named)


def knockout_logits(model, clean: torch.Tensor, ablated: SenderCache, nodes: frozenset[Node],
                    named) -> torch.Tensor:
    """Logits [B, vocab] at END with these nodes' outputs replaced by their ablated values.

    Classic activation patching with hooks on `hook_z` and `hook_mlp_out`; a node-level
    circuit must give the same logits as knocking out its complement (tested).
    """
    hooks = []
    by_layer: dict[int, list[int]] = {}
    for node in nodes:
        if node.kind == "head":
            by_layer.setdefault(node.layer, []).append(node.head)
        elif node.kind == "mlp":
            hooks.append((hook("mlp_out", node.layer),
                          lambda x, hook, layer=node.layer: ablated.mlp_out[layer].expand_as(x).clone()))
    for layer, heads in by_layer.items():
        def patch(z, hook, layer=layer, heads=sorted(heads)):
            z = z.clone()
            z[:, :, heads] = ablated.z[layer][:, :, heads].expand(z.shape[0], z.shape[1], -1, -1)
            return z
        hooks.append((hook("z", layer), patch))
    with torch.no_grad():
        logits = model.run_with_hooks(clean, fwd_hooks=hooks, reset_hooks_end=True)
    return logits[torch.arange(clean.shape[0]), named["END"]]


def _out_of_memory(err: BaseException) -> bool:
    text = str(err).lower()
    return isinstance(err, (MemoryError, torch.cuda.OutOfMemoryError)) or "out of memory" in text or \
        "not enough memory" in text


def _add(a: SenderCache, b: SenderCache) -> SenderCache:
    return SenderCache({k: a.outputs[k] + b.outputs[k] for k in a.outputs},
                       [x + y for x, y in zip(a.z, b.z)], [x + y for x, y in zip(a.mlp_out, b.mlp_out)])


# ---------------------------------------------------------------------------------
# Reports
# ---------------------------------------------------------------------------------


@dataclass
class Contribution:
    """What removing one edge or node costs the circuit's faithfulness."""

    name: str
    delta: float
    superfluous: bool


@dataclass
class Completeness:
    worst_gap: float
    worst_subset: tuple[str, ...]
    samples: list[tuple[tuple[str, ...], float]]


@dataclass
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
    edges: list[Contribution] = field(default_factory=list)
    nodes: list[Contribution] = field(default_factory=list)
    completeness: Completeness | None = None
    engine: str = "fast"
    level: str = "edge"


@dataclass
class ExpectResult:
    text: str
    passed: bool
    value: float | None
    detail: str


@dataclass
class CheckReport:
    circuit: CircuitReport
    results: list[ExpectResult]

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)


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
            circuit=circuit.name, model=session.loaded.name, task=task_name or session.data.name,
            ablation=session.ablation, metric=session.metric, n_examples=len(session.data),
            m_model=self.m_model, m_empty=self.m_empty, m_circuit=m_c, faithfulness=f,
            ratio=m_c / self.m_model if self.m_model else float("nan"), gap=abs(self.m_model - m_c),
            per_example={"model": session.model_metric().tolist(), "empty": session.empty_metric().tolist(),
                         "circuit": values.tolist()},
            engine="fast" if session._fast is not None else "reference", level=circuit.level)
        if minimality:
            report.edges, report.nodes = self.minimality(circuit, f)
        if completeness_samples:
            report.completeness = self.completeness(circuit, completeness_samples, seed)
        return report

    def minimality(self, circuit: CircuitGraph, f: float) -> tuple[list[Contribution], list[Contribution]]:
        edges = circuit.sorted_edges()
        nodes = [n for n in circuit.sorted_nodes() if n not in (EMBED, LOGITS)]
        variants = [circuit - CircuitGraph.from_edges([e]) for e in edges]
        variants += [circuit.without_nodes([n]) for n in nodes]
        faiths = self.faithfulness(variants).tolist() if variants else []
        contributions = [Contribution(str(item), f - value, f - value < self.epsilon)
                         for item, value in zip([*edges, *nodes], faiths)]
        return contributions[:len(edges)], contributions[len(edges):]

    def completeness(self, circuit: CircuitGraph, samples: int, seed: int) -> Completeness:
        nodes = [n for n in circuit.sorted_nodes() if n not in (EMBED, LOGITS)]
        if not nodes:
            return Completeness(0.0, (), [])
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
        named = [(tuple(str(n) for n in k), g) for k, g in results]
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
        return CheckReport(report, [self._verdict(e, report) for e in spec.expects])

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


def task_data(spec: TaskSpec, loaded: LoadedModel, seed: int | None = None) -> TaskData:
    """The examples a TaskSpec names: a generator call or a JSONL file.

    `seed`, when given, overrides every seed (the task's and the generator call's).
    """
    from .tasks import load_jsonl, registered_generators

    generators = registered_generators()
    if isinstance(spec.data, str):
        return load_jsonl(spec.base_dir / spec.data, loaded.model, spec.name)
    if spec.data is None:
        raise EvaluationError(f"task `{spec.name}` has no data")
    name, kwargs = spec.data
    if name not in generators:
        raise EvaluationError(f"no data generator `{name}`", f"generators: {', '.join(sorted(generators))}")
    kwargs = {"seed": spec.seed, **kwargs}
    if seed is not None:
        kwargs["seed"] = seed
    try:
        data = generators[name](loaded.model, **kwargs)
    except TypeError as err:
        raise EvaluationError(f"generator `{name}` rejected its arguments: {err}") from None
    return TaskData(data.clean, data.corrupt, data.answer, data.wrong, data.positions, spec.name)


def evaluate(circuit: CircuitGraph, model: "LoadedModel | str", task: "TaskData | TaskSpec",
             ablation: str = "resample", metric: str = "logit_diff", epsilon: float = 0.01,
             completeness_samples: int = 0, batch_size: int = 32, seed: int = 0) -> CircuitReport:
    """Faithfulness, minimality and (optionally) completeness of one circuit.

    `model` is a loaded model or a name (`"zoo:induction-2l"`, `"gpt2"`); `task` is task
    data or a task from a compiled file (`circuitlang.load(path).tasks["name"]`).
    """
    from .backend import load_model

    loaded = load_model(model) if isinstance(model, str) else model
    data = task_data(task, loaded) if isinstance(task, TaskSpec) else task
    session = Session(loaded, data, ablation, metric, batch_size)
    return Evaluator(session, epsilon).report(circuit, completeness_samples=completeness_samples, seed=seed)

"""A session: one model, one task's examples, one ablation and one metric, prepared once
and reused for many circuits.

Preparing means splitting the examples into batches, caching every sender's ablated
value per batch (the ablation registry, circuitlang.core.ablations) and choosing an
engine: the fast one where the backend supports the model, checked on the first batch
against the model itself (every edge = the model), else the reference one. A session
answers three questions, each per example: m(C) for circuit variants (`metric_of`,
batched in the engine), m(M without K) by activation patching (`knockout_metric`), and
m(M) and m(empty).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Iterable, NamedTuple, Sequence

import torch

from ..core.ablations import ABLATIONS
from ..core.ablations import DEFAULT as DEFAULT_ABLATION
from ..core.errors import CircuitlangError
from ..core.graph import CircuitGraph, Node
from ..core.metrics import DEFAULT as DEFAULT_METRIC
from ..core.metrics import METRICS
from ..core.shapes import all_edges
from .backends.base import Backend, Site, SiteKind, Unsupported
from .engines.fast import FastEngine
from .engines.reference import run_reference
from .positions import check_inside
from .post_norms import divisors, freeze, has_post_norms
from .senders import SenderCache, cache_senders, head_outputs
from .tasks.base import TaskData

Progress = Callable[[int, int], None]


class EvaluationError(CircuitlangError):
    """A problem that stops an evaluation; `help` says what to do."""


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

    backend: Backend
    data: TaskData
    ablation: str = DEFAULT_ABLATION
    metric: str = DEFAULT_METRIC
    batch_size: int = 32
    memory_budget: int = 2 * 1024**3
    engine: str = "auto"
    progress: Progress | None = None
    _batches: list = field(default_factory=list, repr=False)
    _model_metric: torch.Tensor | None = field(default=None, repr=False)
    _empty_metric: torch.Tensor | None = field(default=None, repr=False)
    _positions_checked: frozenset = field(default=frozenset(), repr=False)

    def __post_init__(self) -> None:
        backend = self.backend
        if self.data.clean.shape[1] > backend.n_ctx:
            raise EvaluationError(f"prompts have {self.data.clean.shape[1]} tokens; the model's context is "
                                  f"{backend.n_ctx}")
        if int(self.data.clean.max()) >= backend.d_vocab or int(self.data.corrupt.max()) >= backend.d_vocab:
            raise EvaluationError("the task has token ids outside the model's vocabulary")
        if self.ablation not in ABLATIONS:
            raise EvaluationError(f"unknown ablation {self.ablation!r}", f"ablations: {', '.join(ABLATIONS)}")
        if self.metric not in METRICS:
            raise EvaluationError(f"unknown metric {self.metric!r}", f"metrics: {', '.join(METRICS)}")
        self._fast: FastEngine | None = None
        self.notes: list[str] = []
        if has_post_norms(backend):
            self.notes.append("post-norm divisors are frozen at the clean run so that contributions add; "
                              "activation patching that lets them move differs (docs/models.md, \"Post-norms\")")
        self._logprobs: dict[int, torch.Tensor] = {}
        if self.engine in ("auto", "fast"):
            try:
                self._fast = FastEngine(backend)
            except Unsupported as err:
                if self.engine == "fast":
                    raise EvaluationError(f"the fast engine does not support this model: {err}") from None
                self.notes.append(f"using the slow reference engine: the fast engine does not support {err}")
        self._prepare()
        if self._fast is not None and self.engine == "auto":
            self._self_check()

    @property
    def engine_name(self) -> str:
        """The engine circuits are evaluated with: "fast" or "reference"."""
        return "fast" if self._fast is not None else "reference"

    # -- data -------------------------------------------------------------------------
    def _prepare(self) -> None:
        device = self.backend.device
        parts = [self.data.select(slice(start, start + self.batch_size))
                 for start in range(0, len(self.data), self.batch_size)]
        clean = [part.clean.to(device) for part in parts]
        corrupt = [part.corrupt.to(device) for part in parts]
        ablated = ABLATIONS[self.ablation].values(lambda tokens: cache_senders(self.backend, tokens), clean, corrupt)
        for part, tokens, values in zip(parts, clean, ablated):
            named = {k: v.to(device) for k, v in part.positions.items()}
            self._batches.append(Batch(part, tokens, values, named))

    def _self_check(self) -> None:
        """Fall back to the reference engine if the fast one cannot reproduce this model.

        With every edge a circuit is the model itself; an architecture feature the fast
        engine does not know (and the backend's `unsupported` missed) shows up here as a
        mismatch.
        """
        part, clean, ablated, named = self._batches[0]
        few = slice(0, min(2, clean.shape[0]))
        clean, named = clean[few], {k: v[few] for k, v in named.items()}
        outputs = {k: (v[few] if v.shape[0] == part.clean.shape[0] else v) for k, v in ablated.outputs.items()}
        full = CircuitGraph.from_edges(all_edges(self.backend.shape))
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
        return METRICS[self.metric](logits, part.answer.to(device), part.wrong.to(device), model_logprobs)

    def _model_logits(self, clean: torch.Tensor, named: dict) -> torch.Tensor:
        with torch.no_grad():
            logits = self.backend.logits(clean)
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
        """The full model's log-probabilities at END for batch `index`, once; only metrics
        that compare with the model (`kl`) need them."""
        if not METRICS[self.metric].needs_reference:
            return None
        if index not in self._logprobs:
            _, clean, _, named = self._batches[index]
            self._logprobs[index] = torch.log_softmax(self._model_logits(clean, named), -1)
        return self._logprobs[index]

    def empty_metric(self) -> torch.Tensor:
        if self._empty_metric is None:
            self._empty_metric = self.metric_of([CircuitGraph.from_edges([])])[0]
        return self._empty_metric

    def variants_per_pass(self, variants: Sequence[CircuitGraph]) -> int:
        """How many of these circuits one forward pass evaluates (the memory budget's share)."""
        length = self.data.clean.shape[1]
        nodes = max((len(v.nodes) for v in variants), default=1) + 4
        per_variant = nodes * min(self.batch_size, len(self.data)) * length * self.backend.shape.d_model * 4 * 4
        return max(1, int(self.memory_budget // max(per_variant, 1)))

    def metric_of(self, variants: Sequence[CircuitGraph]) -> torch.Tensor:
        """m(C) per variant and example: [K, N]."""
        self._check_positions(variants)
        chunk = self.variants_per_pass(variants)
        rows = []
        total = len(self._batches) * math.ceil(len(variants) / chunk)
        done = 0
        for start in range(0, len(variants), chunk):
            group = variants[start:start + chunk]
            parts = []
            for index, (part, clean, ablated, named) in enumerate(self._batches):
                columns = self._answer_columns(part)
                logits = self._run(clean, ablated, group, named, columns)
                parts.append(self._values(logits, part, self.kl_reference(index)) if columns is None
                             else self._column_values(logits))
                done += 1
                if self.progress:
                    self.progress(done, total)
            rows.append(torch.cat(parts, dim=1))
        return torch.cat(rows, dim=0)

    def _check_positions(self, variants: Sequence[CircuitGraph]) -> None:
        """Every edge position lies inside every example's prompt (a PositionError if not)."""
        seen = set(self._positions_checked)
        for variant in variants:
            for edge in variant.edges:
                if edge.position is not None and edge.position not in seen:
                    check_inside(edge.position, self.data.positions, self.data.prompt_lengths, str(edge))
                    seen.add(edge.position)
        self._positions_checked = frozenset(seen)

    def _answer_columns(self, part: TaskData) -> torch.Tensor | None:
        """[B, 2] (answer, wrong) token ids when the fast engine can unembed just those
        for this metric (`Metric.answer_columns_only`); None: the whole vocabulary."""
        if self._fast is None or not METRICS[self.metric].answer_columns_only:
            return None
        return torch.stack([part.answer, part.wrong], dim=1)

    def _column_values(self, logits: torch.Tensor) -> torch.Tensor:
        """The metric of [K, B, 2] logits of (answer, wrong): index 0 is the answer, 1 the wrong token."""
        b = logits.shape[1]
        zeros = torch.zeros(b, dtype=torch.long, device=logits.device)
        return METRICS[self.metric](logits, zeros, zeros + 1, None)

    def _run(self, clean, ablated: SenderCache, variants, named, columns: torch.Tensor | None = None) -> torch.Tensor:
        try:
            if self._fast is not None:
                return self._fast.run(clean, ablated.outputs, variants, named, columns)
            return run_reference(self.backend, clean, ablated.outputs, variants, named)
        except (torch.cuda.OutOfMemoryError, MemoryError, RuntimeError) as err:
            if not _out_of_memory(err):
                raise
            if len(variants) == 1:
                raise EvaluationError("out of memory evaluating a single circuit",
                                      "lower --batch-size, or use a smaller --dtype") from None
            half = len(variants) // 2
            self.notes.append(f"ran out of memory with {len(variants)} circuits in one pass; split them in two")
            return torch.cat([self._run(clean, ablated, variants[:half], named, columns),
                              self._run(clean, ablated, variants[half:], named, columns)])

    def knockout_metric(self, node_sets: Sequence[Iterable[Node]]) -> torch.Tensor:
        """m(M without K) per node set and example: [K, N], by activation patching."""
        rows = []
        total = len(node_sets) * len(self._batches)
        for number, nodes in enumerate(node_sets):
            parts = []
            for index, (part, clean, ablated, named) in enumerate(self._batches):
                logits = knockout_logits(self.backend, clean, ablated, frozenset(nodes), named).unsqueeze(0)
                parts.append(self._values(logits, part, self.kl_reference(index))[0])
                if self.progress and total > len(self._batches):
                    self.progress(number * len(self._batches) + index + 1, total)
            rows.append(torch.cat(parts))
        return torch.stack(rows) if rows else torch.zeros(0, len(self.data))


def knockout_logits(backend: Backend, clean: torch.Tensor, ablated: SenderCache, nodes: frozenset[Node],
                    named) -> torch.Tensor:
    """Logits [B, vocab] at END with these nodes' outputs replaced by their ablated values.

    Classic activation patching with hooks on each layer's z and MLP output; a node-level
    circuit must give the same logits as knocking out its complement (tested). With
    post-norms the divisors are frozen at the clean run's and a head is knocked out in
    the attention output, where its contribution is swapped for its ablated one
    (`post_norms`).
    """
    frozen = divisors(backend, clean)
    hooks = freeze(frozen)
    by_layer: dict[int, list[int]] = {}
    for node in nodes:
        if node.kind == "head":
            by_layer.setdefault(node.layer, []).append(node.head)
        elif node.kind == "mlp":
            hooks.append((Site(SiteKind.MLP_OUT, node.layer),
                          lambda x, layer=node.layer: ablated.mlp_out[layer].expand_as(x).clone()))
    for layer, heads in by_layer.items():
        if backend.layers[layer].attn_post is not None:
            hooks += _swap_contributions(backend, layer, sorted(heads), ablated, frozen)
            continue

        def patch(z, layer=layer, heads=sorted(heads)):
            z = z.clone()
            z[:, :, heads] = ablated.z[layer][:, :, heads].expand(z.shape[0], z.shape[1], -1, -1)
            return z
        hooks.append((Site(SiteKind.Z, layer), patch))
    with torch.no_grad():
        logits = backend.run_with_hooks(clean, hooks)
    return logits[torch.arange(clean.shape[0]), named["END"]]


def _swap_contributions(backend: Backend, layer: int, heads: list[int], ablated: SenderCache,
                        frozen: dict) -> list:
    """Hooks that replace these heads' contributions to a post-normed attention output
    with their ablated contributions (the divisor frozen, so contributions add)."""
    seen: dict[str, torch.Tensor] = {}

    def keep(z):
        seen["z"] = z

    def swap(out):
        divisor = frozen[Site(SiteKind.ATTN_POST_SCALE, layer)]
        mine = head_outputs(backend, layer, seen["z"], divisor)
        for head in heads:
            node = Node.attn(layer, head)
            out = out - mine[node] + ablated.outputs[node].expand_as(out)
        return out

    return [(Site(SiteKind.Z, layer), keep), (Site(SiteKind.ATTN_OUT, layer), swap)]


def _out_of_memory(err: BaseException) -> bool:
    text = str(err).lower()
    return isinstance(err, (MemoryError, torch.cuda.OutOfMemoryError)) or "out of memory" in text or \
        "not enough memory" in text

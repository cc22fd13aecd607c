"""What the edge-scoring methods share: the `Scores` they return, the default edge list,
the scale they are put on, the products of sender differences with receiver gradients
(EAP and EAP-IG), and Spearman's correlation for comparing rankings.

Every method (circuitlang.discovery.methods) estimates, for each edge e = (S -> R), the
share of the model's effect that is lost when e alone is cut from the full model:

    score(e) = (m(M) - m(M without e)) / (m(M) - m(empty))

with m the session's metric averaged over its examples (so scores read like drops of
faithfulness; positive = removing the edge lowers the metric).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Iterable, Sequence

import torch

from ..core.graph import LOGITS, Edge
from ..core.shapes import ModelShape, all_edges
from ..eval.evaluator import Evaluator
from ..eval.positions import position_mask
from ..eval.senders import SenderCache
from ..eval.session import Session
from .receiver_grads import QKV

Scores = dict[Edge, float]


def edges_to_score(session: Session, edges: Iterable[Edge] | None) -> Sequence[Edge]:
    """`edges`, or every edge of the session's model (no positions) in canonical order
    (the cached tuple, whose scoring plan is cached too)."""
    return all_edges(session.backend.shape) if edges is None else list(edges)


def normaliser(session: Session, evaluator: Evaluator | None) -> float:
    """N (m(M) - m(empty)): dividing summed first-order terms by it puts scores on the
    faithfulness scale."""
    evaluator = evaluator or Evaluator(session)
    return len(session.data) * (evaluator.m_model - evaluator.m_empty)


def differences(backend, clean: SenderCache, ablated: SenderCache) -> torch.Tensor:
    """out_S - abl_S of every sender, [S, B, P, d] in `shape.senders()` order, written in
    place (one pass over memory, no stacked copy)."""
    senders = backend.shape.senders()
    first = clean.outputs[senders[0]]
    diff = torch.empty((len(senders), *first.shape), dtype=first.dtype, device=first.device)
    for i, s in enumerate(senders):
        torch.sub(clean.outputs[s].detach(), ablated.outputs[s].detach(), out=diff[i])
    return diff


@dataclass(frozen=True)
class _Block:
    """One product of the scoring step: the first `count` senders' differences times the
    gradients of one (kind, layer) of receiver inputs (`receiver_grads`), and where each
    scored edge's value lies in the flattened [count, rows] result. (Stacking an MLP's
    gradient with the next layer's head inputs into one product was measured slower.)"""

    key: tuple[str, int]
    count: int
    cells: torch.Tensor  # flat index into the [count, rows] product, per edge
    slots: torch.Tensor  # each of those edges' place in the edge list


@dataclass(frozen=True)
class ScoringPlan:
    """Which products score which edges: built once per edge list (not per batch), so the
    per-batch work is a few matrix products and index operations, no Python per edge."""

    blocks: tuple[_Block, ...]
    positioned: tuple[tuple[int, Edge], ...]  # edges at one position: scored one by one


def _receiver_key(shape: ModelShape, e: Edge) -> tuple[str, int]:
    """(kind, layer) of the gradient tensor holding the edge's receiver input."""
    if e.receiver == LOGITS:
        return ("logits", shape.n_layers)
    if e.receiver.kind == "mlp":
        return ("mlp", e.receiver.layer)
    return (QKV, e.receiver.layer)


def _row(shape: ModelShape, e: Edge) -> int:
    """The receiver input's row in its gradient tensor."""
    return shape.input_row(e.receiver, e.channel) if e.receiver.is_head else 0


def scoring_plan(shape: ModelShape, edges: Sequence[Edge]) -> ScoringPlan:
    """The `ScoringPlan` for `edges` on a model of `shape` (cached for the all-edges list)."""
    if isinstance(edges, tuple) and edges is all_edges(shape):
        return _all_edges_plan(shape)
    return _build_plan(shape, edges)


@lru_cache(maxsize=4)
def _all_edges_plan(shape: ModelShape) -> ScoringPlan:
    return _build_plan(shape, all_edges(shape))


def _build_plan(shape: ModelShape, edges: Sequence[Edge]) -> ScoringPlan:
    senders = shape.senders()
    index = {s: i for i, s in enumerate(senders)}
    cells: dict[tuple[str, int], list[int]] = {}
    slots: dict[tuple[str, int], list[int]] = {}
    positioned = []
    for slot, e in enumerate(edges):
        if e.position is not None:
            positioned.append((slot, e))
            continue
        key = _receiver_key(shape, e)
        width = shape.n_heads + 2 * shape.n_kv_heads if key[0] == QKV else 1
        cells.setdefault(key, []).append(index[e.sender] * width + _row(shape, e))
        slots.setdefault(key, []).append(slot)
    blocks = []
    for key in sorted(cells, key=lambda k: k[1]):
        # the senders are in layer order, so those that can feed the key's receivers are
        # a prefix: all before the layer, and for an MLP also its own layer's heads (and
        # itself, a cell no edge reads)
        kind, layer = key
        count = sum(1 for s in senders if s.layer < layer or (kind == "mlp" and s.layer == layer))
        blocks.append(_Block(key, count, torch.tensor(cells[key]), torch.tensor(slots[key])))
    return ScoringPlan(tuple(blocks), tuple(positioned))


def accumulate(totals: torch.Tensor, session: Session, plan: ScoringPlan, grads, clean: SenderCache,
               ablated: SenderCache, named) -> None:
    """Add sum over batch, positions, d_model of (out_S - abl_S) . grad_R to every edge's
    entry of `totals` (float64, one per edge of the plan's edge list).

    (out_S - abl_S) . grad is minus the first-order change of the metric when the edge
    is cut, i.e. positive when cutting lowers the metric.
    """
    shape = session.backend.shape
    index = {s: i for i, s in enumerate(shape.senders())}
    diff = differences(session.backend, clean, ablated)
    flat = diff.reshape(diff.shape[0], -1)
    for slot, e in plan.positioned:
        g = grads[_receiver_key(shape, e)][_row(shape, e)]
        mask = position_mask(e.position, named, g.shape[1]).to(g.device, g.dtype)
        totals[slot] += float(torch.einsum("bpd,bpd,bp->", diff[index[e.sender]].to(g.dtype), g, mask))
    for block in plan.blocks:
        columns = grads[block.key].reshape(grads[block.key].shape[0], -1)
        product = flat[:block.count].to(columns.dtype) @ columns.T
        values = product.reshape(-1)[block.cells.to(product.device)]
        totals.index_add_(0, block.slots, values.to("cpu", torch.float64))


def scores_from(totals: torch.Tensor, edges: Sequence[Edge], scale: float) -> Scores:
    """The edge -> score mapping of summed first-order terms divided by `scale`."""
    return dict(zip(edges, (totals / scale).tolist()))


# ---------------------------------------------------------------------------------
# Comparing rankings
# ---------------------------------------------------------------------------------


def _ranks(values: Sequence[float]) -> torch.Tensor:
    """Ranks 1..n with ties given their average rank."""
    x = torch.tensor(values, dtype=torch.float64)
    order = torch.argsort(x, stable=True)
    ranks = torch.empty_like(x)
    sorted_x = x[order]
    i = 0
    n = len(values)
    while i < n:
        j = i
        while j + 1 < n and sorted_x[j + 1] == sorted_x[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def spearman(a: Scores, b: Scores) -> float:
    """Spearman rank correlation of two edge scorings over their common edges."""
    common = [e for e in a if e in b]
    if len(common) < 2:
        raise ValueError("need at least two common edges")
    ra, rb = _ranks([a[e] for e in common]), _ranks([b[e] for e in common])
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denominator = (ra.norm() * rb.norm()).item()
    return float((ra @ rb).item() / denominator) if denominator else 0.0

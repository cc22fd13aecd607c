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

from typing import Iterable, Sequence

import torch

from ..core.graph import LOGITS, Edge
from ..core.shapes import all_edges
from ..eval.evaluator import Evaluator
from ..eval.positions import position_mask
from ..eval.senders import SenderCache
from ..eval.session import Session
from .receiver_grads import QKV

Scores = dict[Edge, float]


def edges_to_score(session: Session, edges: Iterable[Edge] | None) -> list[Edge]:
    """`edges`, or every edge of the session's model (no positions) in canonical order."""
    return list(all_edges(session.backend.shape)) if edges is None else list(edges)


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


def accumulate(totals: dict, session: Session, edges: Sequence[Edge], grads, clean: SenderCache,
               ablated: SenderCache, named) -> None:
    """Add sum over batch, positions, d_model of (out_S - abl_S) . grad_R for every edge.

    (out_S - abl_S) . grad is minus the first-order change of the metric when the edge
    is cut, i.e. positive when cutting lowers the metric.
    """
    shape = session.backend.shape
    senders = shape.senders()
    index = {s: i for i, s in enumerate(senders)}
    diff = differences(session.backend, clean, ablated)
    flat = diff.reshape(len(senders), -1)

    def key_of(e: Edge) -> tuple[str, int]:
        if e.receiver == LOGITS:
            return ("logits", shape.n_layers)
        if e.receiver.kind == "mlp":
            return ("mlp", e.receiver.layer)
        return (QKV, e.receiver.layer)

    def row_of(e: Edge) -> int:
        """The receiver input's row in its gradient tensor."""
        return shape.input_row(e.receiver, e.channel) if e.receiver.is_head else 0

    by_key: dict[tuple[str, int], list[Edge]] = {}
    for e in edges:
        if e.position is None:
            by_key.setdefault(key_of(e), []).append(e)
        else:
            key = key_of(e)
            g = grads[key][row_of(e)]
            mask = position_mask(e.position, named, g.shape[1]).to(g.device, g.dtype)
            value = float(torch.einsum("bpd,bpd,bp->", diff[index[e.sender]].to(g.dtype), g, mask))
            totals[e] = totals.get(e, 0.0) + value
    for key, group in by_key.items():
        # [S', R] = flat diffs of the senders before R @ flat gradients (R = a layer's
        # n_heads + 2 n_kv_heads head inputs, or 1); the senders are in layer order, so those that can feed
        # R are a prefix
        kind, layer = key
        count = sum(1 for x in senders if x.layer < layer or (kind == "mlp" and x.layer == layer))
        g = grads[key].reshape(grads[key].shape[0], -1)
        matrix = flat[:count].to(g.dtype) @ g.T
        rows = torch.tensor([index[e.sender] for e in group])
        cols = torch.tensor([row_of(e) for e in group])
        for e, value in zip(group, matrix[rows, cols].tolist()):
            totals[e] = totals.get(e, 0.0) + value


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

"""Edge scores: exact patching, edge attribution patching (EAP) and EAP-IG.

All three estimate, for each edge e = (S -> R), the share of the model's effect that is
lost when e alone is cut from the full model:

    score(e) = (m(M) - m(M without e)) / (m(M) - m(empty))

with m the session's metric averaged over its examples (so scores read like drops of
faithfulness; positive = removing the edge lowers the metric).

- `exact_scores` evaluates the |E| circuits "every edge but e" with the fast engine
  (batched and chunked by `Evaluator.faithfulness`), plus the full circuit.
- `eap_scores` replaces each of those runs by its first-order Taylor estimate around the
  clean run: m(M without e) - m(M) ~ (abl_S - out_S) . d m / d input_R, summed over
  examples, positions and d_model. One forward pass with gradients and one backward pass
  per batch give every edge at once (the ablated outputs come from the session).
- `eap_ig_scores` averages that gradient over `steps` runs whose input embedding is
  interpolated between the ablated and the clean one (alpha = k / steps, k = 1..steps,
  as in Hanna et al.'s code), the rest of the model left intact.

The gradients at every receiver's input come from `receiver_grads` (one forward and one
backward pass, taken in head space where the model allows).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Iterable, Sequence

import torch

from ..backend import cache_senders
from ..evaluation import Evaluator, Progress, Session
from ..graph import EMBED, LOGITS, CircuitGraph, Edge, Node
from ..models import ModelShape, all_edges
from ..positions import position_mask
from .receiver_grads import CHANNELS, QKV, receiver_grads

Scores = dict[Edge, float]


def model_edges(shape: ModelShape) -> list[Edge]:
    """Every edge of a model (no positions), q/k/v channels included, in canonical order."""
    return list(_sorted_edges(shape))


@lru_cache(maxsize=8)
def _sorted_edges(shape: ModelShape) -> tuple[Edge, ...]:
    return tuple(sorted(all_edges(shape), key=Edge.sort_key))  # 40 ms for GPT-2: worth keeping


def _edges(session: Session, edges: Iterable[Edge] | None) -> list[Edge]:
    return model_edges(session.loaded.shape) if edges is None else list(edges)


# ---------------------------------------------------------------------------------
# Exact patching
# ---------------------------------------------------------------------------------


def exact_scores(session: Session, edges: Iterable[Edge] | None = None,
                 evaluator: Evaluator | None = None) -> Scores:
    """f(M) - f(M without e) for each edge e (default: every edge of the model), exactly.

    |E| + 1 circuits, evaluated together by the fast engine (the variants of one chunk
    share their unchanged prefix). Edges with a position are not accepted.
    """
    edge_list = _edges(session, edges)
    evaluator = evaluator or Evaluator(session)
    full = CircuitGraph.from_edges(model_edges(session.loaded.shape))
    unknown = [str(e) for e in edge_list if e not in full.edges]
    if unknown:
        raise ValueError(f"not an edge of the model without positions: {', '.join(unknown[:3])} "
                         "(exact scores cut whole edges; EAP and EAP-IG score positional edges)")
    variants = [full] + [full - CircuitGraph.from_edges([e]) for e in edge_list]
    faith = evaluator.faithfulness(variants).tolist()
    return {e: faith[0] - value for e, value in zip(edge_list, faith[1:])}


# ---------------------------------------------------------------------------------
# Attribution scores
# ---------------------------------------------------------------------------------


def _senders(shape: ModelShape) -> list[Node]:
    return sorted((n for n in shape.all_nodes() if n.is_sender), key=Node.sort_key)


def _accumulate(totals: dict, session: Session, edges: Sequence[Edge], grads, clean_out: dict[Node, torch.Tensor],
                ablated: dict[Node, torch.Tensor], named, weight: float) -> None:
    """Add sum over batch, positions, d_model of (out_S - abl_S) . grad_R for every edge.

    (out_S - abl_S) . grad is minus the first-order change of the metric when the edge
    is cut, i.e. positive when cutting lowers the metric.
    """
    shape = session.loaded.shape
    senders = _senders(shape)
    index = {s: i for i, s in enumerate(senders)}
    diff = torch.stack([(clean_out[s] - ablated[s].expand_as(clean_out[s])).detach() for s in senders])  # [S, B, P, d]
    flat = diff.reshape(len(senders), -1)

    def key_of(e: Edge) -> tuple[str, int]:
        if e.receiver == LOGITS:
            return ("logits", shape.n_layers)
        if e.receiver.kind == "mlp":
            return ("mlp", e.receiver.layer)
        return (QKV, e.receiver.layer)

    def row_of(e: Edge) -> int:
        """The receiver input's row in its gradient tensor."""
        return CHANNELS.index(e.channel or "") * shape.n_heads + e.receiver.head if e.receiver.is_head else 0

    by_key: dict[tuple[str, int], list[Edge]] = {}
    for e in edges:
        if e.position is None:
            by_key.setdefault(key_of(e), []).append(e)
        else:
            key = key_of(e)
            g = grads[key][row_of(e)]
            mask = position_mask(e.position, named, g.shape[1]).to(g.device, g.dtype)
            value = float(torch.einsum("bpd,bpd,bp->", diff[index[e.sender]].to(g.dtype), g, mask))
            totals[e] = totals.get(e, 0.0) + weight * value
    for key, group in by_key.items():
        # [S', R] = flat diffs of the senders before R @ flat gradients (R = a layer's 3 x
        # n_heads head inputs, or 1); the senders are in layer order, so those that can feed
        # R are a prefix
        kind, layer = key
        count = sum(1 for x in senders if x.layer < layer or (kind == "mlp" and x.layer == layer))
        g = grads[key].reshape(grads[key].shape[0], -1)
        matrix = flat[:count].to(g.dtype) @ g.T
        rows = torch.tensor([index[e.sender] for e in group])
        cols = torch.tensor([row_of(e) for e in group])
        for e, value in zip(group, matrix[rows, cols].tolist()):
            totals[e] = totals.get(e, 0.0) + weight * value


def gradient_problem(method: str, metric: str) -> str | None:
    """Why `method` ("eap" or "eap-ig") cannot score edges with `metric`, or None.

    Accuracy is flat almost everywhere (no gradient at all), and KL divergence from the
    model is at its minimum at the clean run, so its gradient there is zero: EAP would
    return scores that are rounding noise. EAP-IG's interpolated runs are away from it.
    """
    if metric == "accuracy":
        return "accuracy has no gradient; score with logit_diff, logprob, prob or kl (eap-ig), or use exact"
    if metric == "kl" and method == "eap":
        return ("KL divergence from the model is at its minimum at the clean run, where EAP takes its "
                "gradient: every score would be 0; use eap-ig or exact, or another metric")
    return None


def _start(session: Session, edges: Iterable[Edge] | None, evaluator: Evaluator | None, method: str):
    """What both gradient methods begin with: the edges, the model, empty totals, and
    N (m(M) - m(empty)), which puts the scores on the faithfulness scale."""
    problem = gradient_problem(method, session.metric)
    if problem:
        raise ValueError(problem)
    evaluator = evaluator or Evaluator(session)
    normaliser = len(session.data) * (evaluator.m_model - evaluator.m_empty)
    return _edges(session, edges), session.loaded.model, {}, normaliser


def eap_scores(session: Session, edges: Iterable[Edge] | None = None,
               evaluator: Evaluator | None = None, progress: Progress | None = None) -> Scores:
    """Edge attribution patching: (out_S - abl_S) . d m / d input_R at the clean run,
    summed over positions and examples, divided by N (m(M) - m(empty)).

    Per batch: one forward pass with gradients (capturing every sender's output) and one
    backward pass; the ablated outputs are the session's (resample, mean or zero).
    """
    edge_list, model, totals, normaliser = _start(session, edges, evaluator, "eap")
    for index, (_, _, ablated, named) in enumerate(session.batches):
        grads, outputs = receiver_grads(session, index, lambda x: x, keep_senders=True)
        _accumulate(totals, session, edge_list, grads, outputs, ablated.outputs, named, 1.0)
        if progress:
            progress(index + 1, len(session.batches))
    return {e: totals.get(e, 0.0) / normaliser for e in edge_list}


def eap_ig_scores(session: Session, edges: Iterable[Edge] | None = None, steps: int = 5,
                  evaluator: Evaluator | None = None, progress: Progress | None = None) -> Scores:
    """EAP-IG (Hanna et al. 2024): the gradient at each receiver averaged over `steps`
    runs whose input embedding is abl_embed + alpha (clean_embed - abl_embed), alpha =
    k / steps for k = 1..steps, times (out_S - abl_S) from the clean run.

    `steps` + 1 forward passes and `steps` backward passes per batch.
    """
    if steps < 1:
        raise ValueError("steps must be at least 1")
    edge_list, model, totals, normaliser = _start(session, edges, evaluator, "eap-ig")
    for index, (_, clean, ablated, named) in enumerate(session.batches):
        with torch.no_grad():
            outputs = cache_senders(model, clean).outputs
        abl_embed = ablated.outputs[EMBED]
        summed: dict[tuple[str, int], torch.Tensor] | None = None
        for k in range(1, steps + 1):
            alpha = k / steps

            def interpolate(x, alpha=alpha):
                base = abl_embed.detach().expand_as(x).to(x.dtype)
                return base + alpha * (x - base)

            grads, _ = receiver_grads(session, index, interpolate)
            summed = grads if summed is None else {key: summed[key] + g for key, g in grads.items()}
            if progress:
                progress(index * steps + k, len(session.batches) * steps)
        assert summed is not None
        mean = {key: g / steps for key, g in summed.items()}
        _accumulate(totals, session, edge_list, mean, outputs, ablated.outputs, named, 1.0)
    return {e: totals.get(e, 0.0) / normaliser for e in edge_list}


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

"""`eap-ig`, the default: EAP with integrated gradients (Hanna et al. 2024).

The gradient at each receiver is averaged over `steps` runs whose input embedding is
abl_embed + alpha (clean_embed - abl_embed), alpha = k / steps for k = 1..steps (as in
the authors' code), the rest of the model left intact, and multiplied by
(out_S - abl_S) from the clean run. Its runs are away from the clean run, so metrics
whose gradient vanishes there (KL divergence from the model) still work.
"""

from __future__ import annotations

from typing import Callable, Iterable

import torch

from ...core.graph import EMBED, Edge
from ...eval.evaluator import Evaluator
from ...eval.senders import cache_senders
from ...eval.session import Session
from ..edge_scores import Scores, accumulate, edges_to_score, normaliser, scores_from, scoring_plan
from ..receiver_grads import receiver_grads
from .base import Found, Gradient, Method, Request


def eap_ig_scores(session: Session, edges: Iterable[Edge] | None = None, steps: int = 5,
                  evaluator: Evaluator | None = None, progress: Callable[[int, int], None] | None = None) -> Scores:
    """EAP-IG scores of `edges` (default: every edge): `steps` + 1 forward passes and
    `steps` backward passes per batch."""
    if steps < 1:
        raise ValueError("steps must be at least 1")
    ENTRY.check(session.metric)
    edge_list, scale = edges_to_score(session, edges), normaliser(session, evaluator)
    plan = scoring_plan(session.backend.shape, edge_list)
    totals = torch.zeros(len(edge_list), dtype=torch.float64)
    for index, (_, clean, ablated, named) in enumerate(session.batches):
        with torch.no_grad():
            clean_senders = cache_senders(session.backend, clean)
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
        accumulate(totals, session, plan, mean, clean_senders, ablated, named)
    return scores_from(totals, edge_list, scale)


def _run(request: Request) -> Found:
    progress = request.progress
    scores = eap_ig_scores(request.evaluator.session, steps=request.steps, evaluator=request.evaluator,
                           progress=(lambda done, total: progress("eap-ig: scoring edges", done, total))
                           if progress else None)
    return Found("eap-ig", scores=scores)


ENTRY = Method("eap-ig", 0, "EAP with integrated gradients: the gradient averaged over `steps` runs between the "
               "ablated and the clean input", True, Gradient.ALONG_PATH, _run)

"""`eap`: edge attribution patching (Syed et al. 2023), a first-order estimate of each
edge's exact score from one forward and one backward pass per batch:

    m(M without e) - m(M) ~ (abl_S - out_S) . d m / d input_R

at the clean run, summed over examples, positions and d_model. The gradients at every
receiver's input come from `receiver_grads` (taken in head space where the model
allows); the ablated outputs are the session's (resample, mean or zero).
"""

from __future__ import annotations

from typing import Callable, Iterable

import torch

from ...core.graph import Edge
from ...eval.evaluator import Evaluator
from ...eval.session import Session
from ..edge_scores import Scores, accumulate, edges_to_score, normaliser, scores_from, scoring_plan
from ..receiver_grads import receiver_grads
from .base import Found, Gradient, Method, Request


def eap_scores(session: Session, edges: Iterable[Edge] | None = None,
               evaluator: Evaluator | None = None, progress: Callable[[int, int], None] | None = None) -> Scores:
    """Edge attribution patching: (out_S - abl_S) . d m / d input_R at the clean run,
    summed over positions and examples, divided by N (m(M) - m(empty)).

    Per batch: one forward pass with gradients (capturing every sender's output) and one
    backward pass.
    """
    ENTRY.check(session.metric)
    edge_list, scale = edges_to_score(session, edges), normaliser(session, evaluator)
    plan = scoring_plan(session.backend.shape, edge_list)
    totals = torch.zeros(len(edge_list), dtype=torch.float64)
    for index, (_, _, ablated, named) in enumerate(session.batches):
        grads, clean = receiver_grads(session, index, lambda x: x, keep_senders=True)
        accumulate(totals, session, plan, grads, clean, ablated, named)
        if progress:
            progress(index + 1, len(session.batches))
    return scores_from(totals, edge_list, scale)


def _run(request: Request) -> Found:
    progress = request.progress
    scores = eap_scores(request.evaluator.session, evaluator=request.evaluator,
                        progress=(lambda done, total: progress("eap: scoring edges", done, total)) if progress else None)
    return Found("eap", scores=scores)


ENTRY = Method("eap", 1, "edge attribution patching: one forward and one backward pass, gradients at the clean run",
               True, Gradient.AT_CLEAN, _run)

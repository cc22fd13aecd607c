"""`exact`: the exact patching score of every edge: the model without that one edge.

|E| + 1 circuits (the full model and the model missing each edge), evaluated together
by the fast engine in chunks (the variants of one chunk share their unchanged prefix).
The reference the gradient methods are compared with; expensive on big models.
"""

from __future__ import annotations

from typing import Iterable

from ...core.graph import CircuitGraph, Edge
from ...core.shapes import all_edges
from ...eval.evaluator import Evaluator
from ...eval.session import Session
from ..edge_scores import Scores, edges_to_score
from .base import Found, Gradient, Method, Request


def exact_scores(session: Session, edges: Iterable[Edge] | None = None,
                 evaluator: Evaluator | None = None) -> Scores:
    """f(M) - f(M without e) for each edge e (default: every edge of the model), exactly.

    Edges with a position are not accepted.
    """
    edge_list = edges_to_score(session, edges)
    evaluator = evaluator or Evaluator(session)
    full = CircuitGraph.from_edges(all_edges(session.backend.shape))
    unknown = [str(e) for e in edge_list if e not in full.edges]
    if unknown:
        raise ValueError(f"not an edge of the model without positions: {', '.join(unknown[:3])} "
                         "(exact scores cut whole edges; EAP and EAP-IG score positional edges)")
    variants = [full] + [full - CircuitGraph.from_edges([e]) for e in edge_list]
    faith = evaluator.faithfulness(variants).tolist()
    return {e: faith[0] - value for e, value in zip(edge_list, faith[1:])}


def _run(request: Request) -> Found:
    return Found("exact", scores=exact_scores(request.evaluator.session, evaluator=request.evaluator))


ENTRY = Method("exact", 2, "ablate each edge alone, exactly: one circuit per edge and the full model, batched by "
               "the fast engine",
               True, Gradient.NONE, _run)

"""Circuit discovery: score every edge of a model, then select a circuit from the scores.

- `exact_scores`: the exact patching score of each edge (the model without that one edge,
  all edges' variants evaluated batched by the fast engine);
- `eap_scores`: edge attribution patching (Syed et al. 2023), a first-order estimate of
  the same quantity from one forward and one backward pass per batch;
- `eap_ig_scores`: EAP with integrated gradients over the input embeddings (Hanna et al.
  2024);
- `select`: top-k, threshold, smallest circuit reaching a faithfulness, and MIB's
  integrated metrics CPR and CMD over a ranking.

Every score is normalised like faithfulness: score(e) estimates
(m(M) - m(M without e)) / (m(M) - m(empty)), so a positive score means removing the edge
lowers the metric, and an exact score of 0.3 means the edge alone carries 30% of the
model's effect.
"""

from __future__ import annotations

from .attribution import eap_ig_scores, eap_scores, exact_scores, model_edges, spearman
from .select import (FRACTIONS, Curve, area_under, by_threshold, cpr_cmd, edge_counts, ranking, smallest_reaching,
                     top_edges)

__all__ = ["exact_scores", "eap_scores", "eap_ig_scores", "model_edges", "spearman", "ranking", "top_edges",
           "by_threshold", "smallest_reaching", "cpr_cmd", "area_under", "edge_counts", "FRACTIONS", "Curve"]

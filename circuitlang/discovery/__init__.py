"""Layer 4, discovery: find a circuit for a task by scoring every edge of a model, then
selecting from the scores, or by pruning.

- `methods/`: one file per method, each the algorithm and its registry entry: `exact`
  (each edge ablated alone, batched by the fast engine), `eap` (edge attribution
  patching, Syed et al. 2023), `eap-ig` (EAP with integrated gradients, Hanna et al.
  2024) and `acdc` (pruning, Conmy et al. 2023), collected in `methods.METHODS`;
- `edge_scores`: what the scoring methods share (the scale, the products of sender
  differences and receiver gradients, Spearman's correlation);
- `receiver_grads`: the gradient of the metric at every receiver's input;
- `select`: top-k, threshold, the smallest circuit reaching a faithfulness, and MIB's
  integrated metrics CPR and CMD over a ranking; `plot`: the faithfulness curve as SVG.

Every score is normalised like faithfulness: score(e) estimates
(m(M) - m(M without e)) / (m(M) - m(empty)), so a positive score means removing the edge
lowers the metric, and an exact score of 0.3 means the edge alone carries 30% of the
model's effect.
"""

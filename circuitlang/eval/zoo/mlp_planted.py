"""`zoo:mlp-planted`: a 2-layer model (2 heads, MLPs, no LayerNorm) whose hand-set
circuit runs through an MLP. It computes (a + b) mod 5 for the prompt
`BOS a filler... b` (task `mod_sum`; digit d is token 1 + d).

Residual stream (d_model 32) = [token one-hot 0:12 | position one-hot 12:20 |
moved slot 20:25 | output slot 25:30 | spare 30:32].

- L0.H0, mover head: query reads position (every position p >= 1 -> e_0), key reads
  position (position 1 -> e_0), so it attends to position 1; value reads the digit
  one-hot, output writes it into the moved slot (a, moved to every later position).
- L0.MLP, lookup table: 25 ReLU units, unit (a, b) = ReLU(2 moved[a] + 2 token[1+b] - 3),
  fires only when both features are on (an AND, so the sum is not linear in the
  inputs); it writes e_{(a+b) mod 5} into the output slot. 7 more units are distractors.
- W_U reads only the output slot (logit 10 for digit (a + b) mod 5).
- L0.H1, both L1 heads, the L1 MLP and the L0 MLP's spare units are distractors with
  small random weights (seeded) that write the token, position and spare blocks (std
  0.05) and only faintly (std 0.005) the moved and output slots.

Attention score gap 6 nats (not saturated, so attribution methods see the mover's
query and key edges; see induction.py). Biases are zero except the MLP units' thresholds.
"""

from __future__ import annotations

import math

import torch

from ._build import Blank, Weights, ZooModel, attn_scale, normal

MODULUS = 5
D_VOCAB = 1 + MODULUS + 6  # BOS, digits 1..5, fillers 6..11
N_CTX = 8
TOK, POS, MOVED, OUT, SPARE = 0, 12, 20, 25, 30
D_MODEL, D_HEAD, N_HEADS, D_MLP = 32, 16, 2, 32
MOVER = (0, 0)
SCORE_GAP = 6.0
LOGIT = 10.0
DISTRACTOR_QK, DISTRACTOR_V, DISTRACTOR_O = 0.3, 0.05, 0.05
LEAK = 0.005  # std of distractor writes into the moved and output slots
SEED = 4321


def _writable() -> list[int]:
    """Residual dimensions distractors may write: token, position and spare blocks."""
    return list(range(TOK, MOVED)) + list(range(SPARE, D_MODEL))


CONFIG = dict(n_layers=2, d_model=D_MODEL, n_ctx=N_CTX, d_head=D_HEAD, n_heads=N_HEADS, d_mlp=D_MLP,
              d_vocab=D_VOCAB, act_fn="relu", normalization_type=None, positional_embedding_type="standard",
              model_name="zoo:mlp-planted")


def build(blank: Blank, score_gap: float = SCORE_GAP) -> ZooModel:
    """The model's weights; `score_gap` (nats) other than the default only to study
    attribution on saturated attention (tests/test_discovery.py)."""
    state = blank(CONFIG)
    w = Weights(state)
    amp = math.sqrt(score_gap * attn_scale(CONFIG))
    gen = torch.Generator().manual_seed(SEED)
    out_dims = torch.tensor(_writable())
    with torch.no_grad():
        w.W_E[:, TOK:TOK + D_VOCAB] = torch.eye(D_VOCAB)
        w.W_pos[:, POS:POS + N_CTX] = torch.eye(N_CTX)
        for r in range(MODULUS):
            w.W_U[OUT + r, 1 + r] = LOGIT
        for layer in range(2):
            attn = w.attn(layer)
            for head in range(N_HEADS):
                if (layer, head) == MOVER:
                    attn.W_Q[head, POS + 1:POS + N_CTX, 0] = amp
                    attn.W_K[head, POS + 1, 0] = amp
                    for d in range(MODULUS):
                        attn.W_V[head, TOK + 1 + d, d] = 1.0
                        attn.W_O[head, d, MOVED + d] = 1.0
                else:
                    attn.W_Q[head] = normal(gen, (D_MODEL, D_HEAD), DISTRACTOR_QK)
                    attn.W_K[head] = normal(gen, (D_MODEL, D_HEAD), DISTRACTOR_QK)
                    attn.W_V[head] = normal(gen, (D_MODEL, D_HEAD), DISTRACTOR_V)
                    attn.W_O[head, :, out_dims] = normal(gen, (D_HEAD, len(out_dims)), DISTRACTOR_O)
                    attn.W_O[head, :, MOVED:SPARE] = normal(gen, (D_HEAD, SPARE - MOVED), LEAK)
            mlp = w.mlp(layer)
            first_spare = MODULUS * MODULUS if layer == 0 else 0
            if layer == 0:
                for a in range(MODULUS):
                    for b in range(MODULUS):
                        unit = a * MODULUS + b
                        mlp.W_in[MOVED + a, unit] = 2.0
                        mlp.W_in[TOK + 1 + b, unit] = 2.0
                        mlp.b_in[unit] = -3.0
                        mlp.W_out[unit, OUT + (a + b) % MODULUS] = 1.0
            spare = D_MLP - first_spare
            mlp.W_in[:, first_spare:] = normal(gen, (D_MODEL, spare), DISTRACTOR_QK)
            mlp.W_out[first_spare:, out_dims] = normal(gen, (spare, len(out_dims)), DISTRACTOR_O)
            mlp.W_out[first_spare:, MOVED:SPARE] = normal(gen, (spare, SPARE - MOVED), LEAK)
    return ZooModel(CONFIG, state)

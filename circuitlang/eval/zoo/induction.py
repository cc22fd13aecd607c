"""`zoo:induction-2l`: a 2-layer attention-only model with a hand-set induction circuit.

Residual stream (d_model 128) = [token one-hot 0:32 | position one-hot 32:64 |
previous-token slot 64:96 | output slot 96:128]; token 0 is BOS, put at position 0.

- L0.H2, previous-token head: query and key read the position one-hot through a shift
  (query at p = e_p, key at j = e_{j+1}, so p attends to p-1); value reads the token
  one-hot; output writes that token into the previous-token slot.
- L1.H1, induction head: query reads the token one-hot, key reads the previous-token
  slot (K-composition with L0.H2), value reads the token one-hot, output writes the
  output slot. So at a repeated token it attends to the position after the token's
  earlier occurrence and copies what stood there.
- W_U reads only the output slot (logit 10 for the copied token, 0 elsewhere).
- The other six heads are distractors: small random weights (seeded), writing into the
  token and position blocks (std 0.05) and only faintly (std 0.005) into the
  previous-token and output slots, so they matter a little, never much.

Attention score gaps are 6 nats: the planted heads put ~96% of their attention on the
right position, and their softmax is not saturated, so gradients through queries and
keys are informative (at 20 nats first-order attribution scored the q/k edges ~0 and EAP
missed them; scripts/sweep_zoo_gap.py measures 4-8 and 20). All biases are zero.
"""

from __future__ import annotations

import math

import torch

from ._build import Blank, Weights, ZooModel, attn_scale, normal

D_VOCAB = 32
N_CTX = 32
D_HEAD = 32
N_HEADS = 4
TOK, POS, PREV, OUT = 0, 32, 64, 96  # block offsets in the residual stream
D_MODEL = 128
PREV_HEAD = (0, 2)
IND_HEAD = (1, 1)
SCORE_GAP = 6.0  # attention logit margin of the planted heads
LOGIT = 10.0  # W_U scale: logit of the copied token
DISTRACTOR_QK, DISTRACTOR_V, DISTRACTOR_O = 0.3, 0.05, 0.05  # std of distractor weights
LEAK = 0.005  # std of distractor writes into the previous-token and output slots
SEED = 1234


CONFIG = dict(n_layers=2, d_model=D_MODEL, n_ctx=N_CTX, d_head=D_HEAD, n_heads=N_HEADS, d_vocab=D_VOCAB,
              attn_only=True, normalization_type=None, positional_embedding_type="standard",
              model_name="zoo:induction-2l")


def build(blank: Blank, score_gap: float = SCORE_GAP) -> ZooModel:
    """The model's weights; `score_gap` (nats) other than the default only to study
    attribution on saturated attention (tests/test_discovery.py)."""
    state = blank(CONFIG)
    w = Weights(state)
    # Each of q and k carries sqrt(gap * attn_scale), so q.k / attn_scale = gap.
    amp = math.sqrt(score_gap * attn_scale(CONFIG))
    eye = torch.eye(D_VOCAB)
    gen = torch.Generator().manual_seed(SEED)
    with torch.no_grad():
        w.W_E[:, TOK:TOK + D_VOCAB] = eye
        w.W_pos[:, POS:POS + N_CTX] = torch.eye(N_CTX)
        w.W_U[OUT:OUT + D_VOCAB, :] = LOGIT * eye
        for layer in range(2):
            attn = w.attn(layer)
            for head in range(N_HEADS):
                if (layer, head) == PREV_HEAD:
                    for p in range(N_CTX):
                        attn.W_Q[head, POS + p, p] = amp
                    for j in range(N_CTX - 1):
                        attn.W_K[head, POS + j, j + 1] = amp
                    attn.W_V[head, TOK:TOK + D_VOCAB, :] = eye
                    attn.W_O[head, :, PREV:PREV + D_VOCAB] = eye
                elif (layer, head) == IND_HEAD:
                    attn.W_Q[head, TOK:TOK + D_VOCAB, :] = amp * eye
                    attn.W_K[head, PREV:PREV + D_VOCAB, :] = amp * eye
                    attn.W_V[head, TOK:TOK + D_VOCAB, :] = eye
                    attn.W_O[head, :, OUT:OUT + D_VOCAB] = eye
                else:  # distractor: reads anything, writes only token and position blocks
                    attn.W_Q[head] = normal(gen, (D_MODEL, D_HEAD), DISTRACTOR_QK)
                    attn.W_K[head] = normal(gen, (D_MODEL, D_HEAD), DISTRACTOR_QK)
                    attn.W_V[head] = normal(gen, (D_MODEL, D_HEAD), DISTRACTOR_V)
                    attn.W_O[head, :, TOK:POS + N_CTX] = normal(gen, (D_HEAD, POS + N_CTX - TOK), DISTRACTOR_O)
                    attn.W_O[head, :, PREV:D_MODEL] = normal(gen, (D_HEAD, D_MODEL - PREV), LEAK)
    return ZooModel(CONFIG, state)

"""`zoo:gpt2-random`: GPT-2-small shape with random weights from a fixed seed.

12 layers x 12 heads, d_model 768, d_mlp 3072, n_ctx 1024, d_vocab 50257, LayerNorm,
gelu_new. GPT-2's initialisation: weights N(0, 0.02), the residual-writing matrices
(W_O, W_out) scaled by 1/sqrt(2 n_layers); unlike TransformerLens's default, biases are
small random values too (N(0, 0.02)), so code that forgets a bias term shows it.
LayerNorm weights 1, biases 0. No circuit: it is for speed and shape work.
"""

from __future__ import annotations

import math

import torch

from ._build import Blank, ZooModel

SEED = 0
CONFIG = dict(model_name="zoo:gpt2-random", n_layers=12, d_model=768, n_ctx=1024, d_head=64, n_heads=12,
              d_mlp=3072, d_vocab=50257, act_fn="gelu_new", normalization_type="LN",
              positional_embedding_type="standard")


def build(blank: Blank) -> ZooModel:
    state = blank(CONFIG)
    gen = torch.Generator().manual_seed(SEED)
    std = 0.02
    with torch.no_grad():
        for name, param in state.items():  # TransformerLens's parameter order: a fixed stream of numbers
            leaf = name.rsplit(".", 1)[-1]
            if leaf == "w":  # LayerNorm scale
                param.fill_(1.0)
            elif leaf == "b" and ".ln" in f".{name}":  # LayerNorm bias
                param.zero_()
            else:
                scale = std / math.sqrt(2 * CONFIG["n_layers"]) if leaf in ("W_O", "W_out") else std
                param.normal_(0.0, scale, generator=gen)  # CPU float32: the loader moves and casts
    return ZooModel(CONFIG, state)

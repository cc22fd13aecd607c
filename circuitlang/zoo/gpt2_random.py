"""`zoo:gpt2-random`: GPT-2-small shape with random weights from a fixed seed.

12 layers x 12 heads, d_model 768, d_mlp 3072, n_ctx 1024, d_vocab 50257, LayerNorm,
gelu_new. GPT-2's initialisation: weights N(0, 0.02), the residual-writing matrices
(W_O, W_out) scaled by 1/sqrt(2 n_layers); unlike TransformerLens's default, biases are
small random values too (N(0, 0.02)), so code that forgets a bias term shows it.
LayerNorm weights 1, biases 0. No circuit: it is for speed and shape work.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

from ._build import blank_model, place

if TYPE_CHECKING:
    from transformer_lens import HookedTransformer

SEED = 0
CONFIG = dict(n_layers=12, d_model=768, n_ctx=1024, d_head=64, n_heads=12, d_mlp=3072, d_vocab=50257,
              act_fn="gelu_new", normalization_type="LN", positional_embedding_type="standard")


def build(device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32) -> "HookedTransformer":
    model = blank_model(model_name="zoo:gpt2-random", **CONFIG)
    gen = torch.Generator().manual_seed(SEED)
    std = 0.02
    with torch.no_grad():
        for name, param in model.named_parameters():  # a fixed order, so a fixed stream of numbers
            leaf = name.rsplit(".", 1)[-1]
            if leaf == "w":  # LayerNorm scale
                param.fill_(1.0)
            elif leaf == "b" and ".ln" in f".{name}":  # LayerNorm bias
                param.zero_()
            else:
                scale = std / math.sqrt(2 * model.cfg.n_layers) if leaf in ("W_O", "W_out") else std
                param.normal_(0.0, scale, generator=gen)  # CPU float32: `place` moves and casts
    return place(model, device, dtype)

"""The zoo's weight layout: every parameter a config names, zero, in TransformerLens 3.x's
names, shapes and order, without importing any model library.

The zoo's builders fill these tensors in (gpt2-random draws its random numbers in this
order, so the order is part of the model). Each backend turns the filled dict into its
own model: TransformerLens 3.x loads it as it is, 4.x converts it for a native bridge.
tests/test_backends.py holds this layout equal to TransformerLens 3.x's own where that
version is installed.

>>> state = blank_state(dict(n_layers=1, d_model=8, d_head=4, n_heads=2, d_vocab=5, n_ctx=6,
...                          attn_only=True, normalization_type=None))
>>> list(state)[:3], tuple(state["blocks.0.attn.W_Q"].shape)
(['embed.W_E', 'pos_embed.W_pos', 'blocks.0.attn.W_Q'], (2, 8, 4))
"""

from __future__ import annotations

from typing import Any, Mapping

import torch

_NORM_PARAMS = {None: (), "LNPre": (), "RMSPre": (), "LN": ("w", "b"), "RMS": ("w",)}


def _shapes(config: Mapping[str, Any]) -> list[tuple[str, tuple[int, ...]]]:
    d, heads, d_head = int(config["d_model"]), int(config["n_heads"]), int(config["d_head"])
    vocab, n_ctx = int(config["d_vocab"]), int(config["n_ctx"])
    kind = config.get("normalization_type", "LN")
    if kind not in _NORM_PARAMS:
        raise ValueError(f"the zoo's layout has no normalization_type {kind!r}")
    norm = _NORM_PARAMS[kind]
    attn_only = bool(config.get("attn_only", False))
    out: list[tuple[str, tuple[int, ...]]] = [("embed.W_E", (vocab, d))]
    if config.get("positional_embedding_type", "standard") == "standard":
        out.append(("pos_embed.W_pos", (n_ctx, d)))
    for layer in range(int(config["n_layers"])):
        block = f"blocks.{layer}."
        out += [(f"{block}ln1.{p}", (d,)) for p in norm]
        if not attn_only:
            out += [(f"{block}ln2.{p}", (d,)) for p in norm]
        out += [(f"{block}attn.W_Q", (heads, d, d_head)), (f"{block}attn.W_O", (heads, d_head, d)),
                (f"{block}attn.b_Q", (heads, d_head)), (f"{block}attn.b_O", (d,)),
                (f"{block}attn.W_K", (heads, d, d_head)), (f"{block}attn.W_V", (heads, d, d_head)),
                (f"{block}attn.b_K", (heads, d_head)), (f"{block}attn.b_V", (heads, d_head))]
        if not attn_only:
            d_mlp = int(config["d_mlp"])
            out += [(f"{block}mlp.W_in", (d, d_mlp)), (f"{block}mlp.b_in", (d_mlp,)),
                    (f"{block}mlp.W_out", (d_mlp, d)), (f"{block}mlp.b_out", (d,))]
    out += [(f"ln_final.{p}", (d,)) for p in norm]
    out += [("unembed.W_U", (d, vocab)), ("unembed.b_U", (vocab,))]
    return out


def blank_state(config: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """Every parameter of the model `config` describes (HookedTransformerConfig fields),
    zero, float32 on the CPU, in TransformerLens 3.x's names and order."""
    return {name: torch.zeros(shape) for name, shape in _shapes(config)}

"""Small random TransformerLens models covering the architectures the engines support,
as backends (TransformerLens 3.x `HookedTransformer`s behind the backend protocol)."""

from __future__ import annotations

import warnings

import torch

from circuitlang.core.graph import CircuitGraph
from circuitlang.core.shapes import ModelShape, all_edges
from circuitlang.eval.backends.transformer_lens import TransformerLensBackend, shape_of

ARCHITECTURES = {
    "ln-mlp": dict(normalization_type="LN", attn_only=False),
    "no-norm-attn-only": dict(normalization_type=None, attn_only=True),
    "lnpre-parallel": dict(normalization_type="LNPre", attn_only=False, parallel_attn_mlp=True),
    "rms-rotary": dict(normalization_type="RMS", attn_only=False, positional_embedding_type="rotary",
                       rotary_dim=8),
}


def tiny_model(architecture: str, dtype: torch.dtype = torch.float64, seed: int = 0,
               config: dict | None = None) -> tuple[TransformerLensBackend, ModelShape]:
    """A 3-layer random model of `architecture` (a key of ARCHITECTURES, or any name with
    its `config`), random biases included, and its shape."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from transformer_lens import HookedTransformer, HookedTransformerConfig

        cfg = HookedTransformerConfig(n_layers=3, d_model=32, n_ctx=16, d_head=8, n_heads=3, d_vocab=23,
                                      d_mlp=48, act_fn="gelu", seed=seed, dtype=dtype,
                                      **(ARCHITECTURES[architecture] if config is None else config))
        model = HookedTransformer(cfg)
    model.eval()
    # TransformerLens initialises biases to zero; random biases test the constants too.
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.split(".")[-1].startswith("b"):
                param.copy_(torch.randn(param.shape, generator=generator, dtype=param.dtype) * 0.1)
    shape = shape_of(model, architecture)
    return TransformerLensBackend(model, architecture, shape), shape


def full_circuit(shape: ModelShape) -> CircuitGraph:
    return CircuitGraph.from_edges(all_edges(shape))

"""Small random models covering the architectures the engines support, as backends of
the installed TransformerLens (3.x: HookedTransformer; 4.x: a native TransformerBridge),
built from HookedTransformerConfig fields and the zoo's weight layout, the path zoo
models take.

TransformerLens 4's native bridge has no parallel attention + MLP block, so under 4.x
`ARCHITECTURES` leaves "lnpre-parallel" out; parallel blocks are tested there on a
GPT-NeoX Hugging Face model (tests/test_hf_architectures.py), and here under 3.x (the
backend suite, run in a second environment by `make test`).
"""

from __future__ import annotations

import math

import torch

from circuitlang.core.graph import CircuitGraph
from circuitlang.core.shapes import ModelShape, all_edges
from circuitlang.eval.backends.base import Backend
from circuitlang.eval.backends.installed import library, transformer_lens_major
from circuitlang.eval.zoo.layout import blank_state

BASE = dict(n_layers=3, d_model=32, n_ctx=16, d_head=8, n_heads=3, d_vocab=23, d_mlp=48, act_fn="gelu")

ALL_ARCHITECTURES = {
    "ln-mlp": dict(normalization_type="LN", attn_only=False),
    "no-norm-attn-only": dict(normalization_type=None, attn_only=True),
    "lnpre-parallel": dict(normalization_type="LNPre", attn_only=False, parallel_attn_mlp=True),
    "rms-rotary": dict(normalization_type="RMS", attn_only=False, positional_embedding_type="rotary",
                       rotary_dim=8),
}
NATIVE_LACKS = {"lnpre-parallel"} if transformer_lens_major() >= 4 else set()
ARCHITECTURES = {k: v for k, v in ALL_ARCHITECTURES.items() if k not in NATIVE_LACKS}


def random_state(config: dict, seed: int) -> dict[str, torch.Tensor]:
    """Random weights for `config`: matrices N(0, 0.8/sqrt(d_model)), biases N(0, 0.1),
    norm scales 1 + N(0, 0.1) (so a norm whose scale is dropped shows)."""
    generator = torch.Generator().manual_seed(seed)
    std = 0.8 / math.sqrt(config["d_model"])
    state = blank_state(config)
    for name, param in state.items():
        leaf = name.rsplit(".", 1)[-1]
        noise = torch.randn(param.shape, generator=generator)
        if leaf == "w":
            param.copy_(1.0 + 0.1 * noise)
        elif leaf.startswith("b"):
            param.copy_(0.1 * noise)
        else:
            param.copy_(std * noise)
    return state


def tiny_model(architecture: str, dtype: torch.dtype = torch.float64, seed: int = 0,
               config: dict | None = None) -> tuple[Backend, ModelShape]:
    """A 3-layer random model of `architecture` (a key of ARCHITECTURES, or any name with
    its `config`), random biases included, and its shape."""
    fields = {**BASE, **(ALL_ARCHITECTURES[architecture] if config is None else config)}
    backend = library().from_state(fields, random_state(fields, seed), architecture, dtype=dtype)
    return backend, backend.shape


def full_circuit(shape: ModelShape) -> CircuitGraph:
    return CircuitGraph.from_edges(all_edges(shape))


def norm_rounding(backend: Backend) -> float:
    """The largest error of the backend's normalisations against the exact formula on a
    probe in the backend's dtype: 0 where they compute in that dtype; ~1e-7 in a float64
    model whose norms compute in float32 (TransformerLens 4's native RMSNorm does). Two
    engines summing the same terms in different orders then differ by that much where a
    sum straddles a float32 rounding step, so tests comparing engines allow it."""
    generator = torch.Generator().manual_seed(0)
    worst = 0.0
    for norm in [backend.final_norm] + [n for layer in backend.layers for n in (layer.attn_norm, layer.mlp_norm)]:
        if norm is None or norm.kind not in ("LN", "RMS", "LNPre", "RMSPre"):
            continue
        x = torch.randn(2, 3, backend.shape.d_model, generator=generator).to(backend.device, backend.dtype)
        centred = x - x.mean(-1, keepdim=True) if norm.kind.startswith("LN") else x
        exact = centred / (centred.pow(2).mean(-1, keepdim=True) + norm.eps).sqrt()
        if norm.scale is not None:
            exact = exact * norm.scale
        bias = getattr(getattr(norm.apply, "original_component", norm.apply), "bias", None)
        if norm.kind == "LN" and bias is not None:
            exact = exact + bias
        with torch.no_grad():
            worst = max(worst, float((norm.apply(x) - exact).abs().max()))
    return worst

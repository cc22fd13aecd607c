"""Per-head q/k/v inputs on a backend that has no sites for them (`Backend.split_inputs`
is False: TransformerLens 4's native bridges).

Each head's query, key and value are overwritten with its own input, normalised by the
layer's attention norm and projected with that head's weights, at the q/k/v sites; the
layer's `resid_pre` (what every head reads in the unpatched model) is captured first.
The reference engine patches those inputs; the split-input gradient route takes
gradients at them. The one piece of the model this uses is the projection; rotary
embeddings, scores, softmax and everything after stay the model's own.

Rows follow the site's head axis: every query head for q; for k and v one row per
key/value head (under grouped-query attention a group's heads share it).
"""

from __future__ import annotations

from typing import Callable

import torch

from .backends.base import HEAD_SITES, Backend, Hook, Site, SiteKind

# (channel, resid_pre [B, P, d_model]) -> the per-row inputs [B, P, rows, d_model]
MakeInputs = Callable[[str, torch.Tensor], torch.Tensor]


def emulated_hooks(backend: Backend, layer: int, make_inputs: MakeInputs) -> list[tuple[Site, Hook]]:
    """Hooks for one layer: capture resid_pre, then replace q, k and v with the
    projections of `make_inputs(channel, resid_pre)`."""
    pieces = backend.layers[layer]
    stream: dict[str, torch.Tensor] = {}

    def capture(x: torch.Tensor) -> None:
        stream["resid"] = x

    def project(channel: str) -> Hook:
        weight = getattr(pieces.attn, f"W_{channel.upper()}")  # [rows, d_model, d_head]
        bias = getattr(pieces.attn, f"b_{channel.upper()}")  # [rows, d_head]

        def hook(x: torch.Tensor) -> torch.Tensor:
            inputs = make_inputs(channel, stream["resid"])
            out = torch.einsum("bphd,hde->bphe", pieces.attn_norm.apply(inputs), weight) + bias
            return out.to(x.dtype).reshape(x.shape)
        return hook

    return [(Site(SiteKind.RESID_PRE, layer), capture)] + [
        (Site(kind, layer), project(channel)) for channel, kind in HEAD_SITES.items()]


def rows(backend: Backend, channel: str) -> int:
    """How many rows a layer's `channel` site has (query heads, or key/value heads)."""
    shape = backend.shape
    return shape.n_heads if channel == "q" else shape.n_kv_heads

"""Sender outputs: what each node writes into the residual stream on some input.

The evaluator caches them for the ablated values (`abl_S`) and the engines subtract
them; EAP multiplies their clean-minus-ablated differences with gradients.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from ..core.graph import EMBED, Node
from .backends.base import Backend, Site, SiteKind
from .post_norms import head_scale, scale_sites


@dataclass(frozen=True)
class SenderCache:
    """What every sender writes on some input: `outputs` per node ([B, P, d_model] each),
    and the raw per-layer `z` ([B, P, H, d_head]) and `mlp_out` for activation patching.

    A head's output is `z @ W_O[h]` (TransformerLens's hook_result without the flag); the
    attention bias b_O belongs to no head and stays a constant of the stream. In a model
    with post-norms it is the head's contribution, `g * z @ W_O[h] / s` with this run's
    divisor `s` (`post_norms`).
    """

    outputs: dict[Node, torch.Tensor]
    z: list[torch.Tensor]
    mlp_out: list[torch.Tensor]

    def map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> "SenderCache":
        """The same cache with `fn` applied to every tensor (e.g. a mean over examples)."""
        return SenderCache({k: fn(v) for k, v in self.outputs.items()}, [fn(z) for z in self.z],
                           [fn(m) for m in self.mlp_out])

    def __add__(self, other: "SenderCache") -> "SenderCache":
        return SenderCache({k: self.outputs[k] + other.outputs[k] for k in self.outputs},
                           [x + y for x, y in zip(self.z, other.z)],
                           [x + y for x, y in zip(self.mlp_out, other.mlp_out)])


def head_outputs(backend: Backend, layer: int, z: torch.Tensor,
                 divisor: torch.Tensor | None = None) -> dict[Node, torch.Tensor]:
    """Each head's output [B, P, d_model] from the layer's z [B, P, H, d_head], as data: no
    gradient flows back into W_O (EAP reads these under autograd). In a layer with an
    attention post-norm, its contribution with the post-norm divisor `divisor` [B, P, 1]."""
    result = torch.einsum("bphd,hdm->bphm", z, backend.layers[layer].attn.W_O.detach())
    scale = head_scale(backend, layer, divisor)
    if scale is not None:
        result = result * scale.detach().to(result.dtype).unsqueeze(2)
    return {Node.attn(layer, head): result[:, :, head] for head in range(backend.shape.n_heads)}


def cache_senders(backend: Backend, tokens: torch.Tensor) -> SenderCache:
    """One forward pass on `tokens`, kept per sender (no gradients)."""
    shape = backend.shape
    captured: dict[Site, torch.Tensor] = {}

    def keep(site: Site):
        def hook(act: torch.Tensor) -> None:
            captured[site] = act
        return hook

    sites = [Site(SiteKind.EMBED)] + scale_sites(backend)
    for layer in range(shape.n_layers):
        sites.append(Site(SiteKind.Z, layer))
        if not shape.attn_only:
            sites.append(Site(SiteKind.MLP_OUT, layer))
    with torch.no_grad():
        backend.run_with_hooks(tokens, [(site, keep(site)) for site in sites], stop_at_final=True)
        outputs: dict[Node, torch.Tensor] = {EMBED: captured[Site(SiteKind.EMBED)]}
        zs, mlps = [], []
        for layer in range(shape.n_layers):
            z = captured[Site(SiteKind.Z, layer)]
            zs.append(z)
            divisor = captured.get(Site(SiteKind.ATTN_POST_SCALE, layer))
            outputs.update((node, out.contiguous()) for node, out in head_outputs(backend, layer, z, divisor).items())
            if not shape.attn_only:
                mlps.append(captured[Site(SiteKind.MLP_OUT, layer)])
                outputs[Node.mlp(layer)] = mlps[-1]
    return SenderCache(outputs, zs, mlps)

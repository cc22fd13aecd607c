"""Post-norms (Gemma 2/3): the semantics that make head and MLP contributions add.

A post-norm normalises what a block writes: `attn_out = g * (sum_h head_h + b_O) / s`
with `s` the RMS of that sum at each position. `s` depends on every head at once, so
the heads' contributions do not add and edge patching would not be defined. As
attribution graphs do, circuitlang freezes each post-norm's divisor `s` at its value
on the input being explained (the clean run, per example and position): then

    contribution of head h = g * (z_h @ W_O[h]) / s,   of an MLP = g * mlp_out / s

are linear in each node's output and add up to exactly what the block writes on the
clean input. A sender's ablated value is its contribution in the run it comes from
(the corrupted run's own divisor), so "no edges" still reproduces the corrupted model.
Under this semantics all edges = the model, no edges = the corruption, and a
node-level circuit = activation patching with the divisors frozen (`knockout_logits`);
activation patching that lets the divisors move differs, because the real model's
post-norm mixes the heads (docs/models.md, "Post-norms").
"""

from __future__ import annotations

import torch

from .backends.base import Backend, Hook, Site, SiteKind

SCALE_SITES = (SiteKind.ATTN_POST_SCALE, SiteKind.MLP_POST_SCALE)


def has_post_norms(backend: Backend) -> bool:
    """Whether any block of the model normalises what it writes."""
    return any(layer.attn_post is not None or layer.mlp_post is not None for layer in backend.layers)


def scale_sites(backend: Backend) -> list[Site]:
    """The post-norm divisor sites of the model, in layer order."""
    sites = []
    for index, layer in enumerate(backend.layers):
        if layer.attn_post is not None:
            sites.append(Site(SiteKind.ATTN_POST_SCALE, index))
        if layer.mlp_post is not None:
            sites.append(Site(SiteKind.MLP_POST_SCALE, index))
    return sites


def divisors(backend: Backend, tokens: torch.Tensor) -> dict[Site, torch.Tensor]:
    """Every post-norm divisor [B, P, 1] of a plain run on `tokens` (empty without post-norms)."""
    sites = scale_sites(backend)
    if not sites:
        return {}
    found: dict[Site, torch.Tensor] = {}

    def keep(site: Site) -> Hook:
        def hook(act: torch.Tensor) -> None:
            found[site] = act.detach()
        return hook

    with torch.no_grad():
        backend.run_with_hooks(tokens, [(site, keep(site)) for site in sites], stop_at_final=True)
    return found


def freeze(frozen: dict[Site, torch.Tensor], repeats: int = 1) -> list[tuple[Site, Hook]]:
    """Hooks that set each post-norm divisor to its frozen value (the batch repeated
    `repeats` times, as the reference engine runs K variants in one batch)."""
    return [(site, lambda act, value=value: value.repeat(repeats, 1, 1).to(act.dtype))
            for site, value in frozen.items()]


def head_scale(backend: Backend, layer: int, divisor: torch.Tensor | None) -> torch.Tensor | None:
    """What a head's output is multiplied by to give its contribution, g / s [B, P, 1|d]
    (None in a layer without an attention post-norm)."""
    post = backend.layers[layer].attn_post
    if post is None:
        return None
    if divisor is None:
        raise ValueError(f"layer {layer} has an attention post-norm: its divisor is needed")
    return post.scale / divisor

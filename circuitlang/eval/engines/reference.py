"""The reference engine: edge patching's masked formula, literally, with hooks.

For every receiver R (a head's q/k/v input, an MLP's input, the logits' input):

    input_R = resid_in_R(patched) - sum_S (1 - mask[S, R]) * (out_S(patched) - abl_S)

applied at the backend's per-head q/k/v input sites (`split_qkv`), the MLP input site
and the final residual stream, one einsum per layer over a [senders x receivers] mask.
A backend without per-head input sites (TransformerLens 4's native bridges) gets them
emulated (`eval.split_inputs`: each head's q, k and v are overwritten with its own
patched input, normalised and projected with its weights, the one place this engine
uses a piece of the model).
K circuits are evaluated in one pass by repeating the batch K times. It is slow (split
q/k/v inputs multiply the cost of a forward pass) and simple: it runs the model's own
forward pass and uses no hand-written piece of it (only W_O, to split z into head
outputs), so it is the yardstick the fast engine is tested against, and the "one
run_with_hooks per circuit" baseline of the benchmarks.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import torch

from ...core.graph import EMBED, LOGITS, CircuitGraph, Node
from ...core.shapes import ModelShape, feeds
from ..backends.base import INPUT_SITES, Backend, Site, SiteKind
from ..positions import position_mask
from ..post_norms import divisors, freeze
from ..senders import head_outputs
from ..split_inputs import emulated_hooks


def _senders(shape: ModelShape) -> list[Node]:
    return shape.senders()


def _absent(model_shape: ModelShape, variants: Sequence[CircuitGraph], senders: list[Node],
            receivers: list[tuple[Node, str | None]], named: Mapping[str, torch.Tensor], length: int) -> torch.Tensor:
    """[K, S, R, B|1, P|1]: 1 where sender S's term is cut from receiver R's input."""
    batch = next(iter(named.values())).shape[0]
    positional = any(e.position is not None for v in variants for e in v.edges)
    s_index = {s: i for i, s in enumerate(senders)}
    r_index = {r: i for i, r in enumerate(receivers)}
    shape = (len(variants), len(senders), len(receivers)) + ((batch, length) if positional else (1, 1))
    present = torch.zeros(shape)
    for k, variant in enumerate(variants):
        for edge in variant.edges:
            r = r_index.get(model_shape.port(edge.receiver, edge.channel))
            s = s_index.get(edge.sender)
            if r is None or s is None:
                continue
            mask = position_mask(edge.position, named, length)
            if mask is None:
                present[k, s, r] = 1.0
            else:
                present[k, s, r] = torch.maximum(present[k, s, r], mask)
    return 1.0 - present


def run_reference(backend: Backend, clean: torch.Tensor, ablated: Mapping[Node, torch.Tensor],
                  variants: Sequence[CircuitGraph], named: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Logits [K, B, vocab] at each example's END position, one row per circuit variant."""
    shape = backend.shape
    k_count, (batch, length) = len(variants), clean.shape
    senders = _senders(shape)
    outputs: dict[Node, torch.Tensor] = {}
    hooks = []

    def delta(s: Node) -> torch.Tensor:  # [K, B, P, d]
        return outputs[s].view(k_count, batch, length, -1) - ablated[s].to(outputs[s].dtype)

    def correction(receivers) -> torch.Tensor:
        feeding = [s for s in senders if feeds(s, receivers[0][0], shape)]
        absent = _absent(shape, variants, feeding, receivers, named, length).to(backend.dtype)
        deltas = torch.stack([delta(s) for s in feeding])  # [S, K, B, P, d]
        return torch.einsum("skbpd,ksrbp->kbprd", deltas, absent.expand(-1, -1, -1, batch, length))

    def capture_embed(x):
        outputs[EMBED] = x

    hooks.append((Site(SiteKind.EMBED), capture_embed))
    frozen = divisors(backend, clean)  # post-norm divisors of the clean run (eval.post_norms)
    hooks += freeze(frozen, k_count)

    for layer in range(shape.n_layers):
        def capture_z(z, layer=layer):
            divisor = frozen.get(Site(SiteKind.ATTN_POST_SCALE, layer))
            outputs.update(head_outputs(backend, layer, z, None if divisor is None else divisor.repeat(k_count, 1, 1)))

        hooks.append((Site(SiteKind.Z, layer), capture_z))
        if backend.split_inputs:
            for channel, kind in INPUT_SITES.items():
                def patch_qkv(x, layer=layer, channel=channel):
                    receivers = _ports(shape, layer, channel)
                    corr = correction(receivers)  # [K, B, P, H (or key/value heads), d]
                    return x - corr.reshape(x.shape)

                hooks.append((Site(kind, layer), patch_qkv))
        else:
            def patched(channel, resid, layer=layer):
                corr = correction(_ports(shape, layer, channel))  # [K, B, P, rows, d]
                return resid.unsqueeze(2) - corr.reshape(*resid.shape[:2], -1, resid.shape[-1])

            hooks += emulated_hooks(backend, layer, patched)
        if not shape.attn_only:
            def patch_mlp(x, layer=layer):
                corr = correction([(Node.mlp(layer), None)])[:, :, :, 0]
                return x - corr.reshape(x.shape)

            def capture_mlp(x, layer=layer):
                outputs[Node.mlp(layer)] = x

            hooks.append((Site(SiteKind.MLP_IN, layer), patch_mlp))
            hooks.append((Site(SiteKind.MLP_OUT, layer), capture_mlp))

    def patch_final(x):
        corr = correction([(LOGITS, None)])[:, :, :, 0]
        return x - corr.reshape(x.shape)

    hooks.append((Site(SiteKind.FINAL), patch_final))
    with torch.no_grad():
        logits = backend.run_with_hooks(clean.repeat(k_count, 1), hooks, split_qkv=backend.split_inputs, mlp_in=True)
    logits = logits.view(k_count, batch, length, -1)
    readout = named["END"]
    return logits[:, torch.arange(batch), readout]


def _ports(shape: ModelShape, layer: int, channel: str) -> list[tuple[Node, str]]:
    """The receiver inputs of one channel of a layer, in the order of its input site's
    head axis: every query head for q (and without grouped-query attention), the first
    head of each key/value group for k and v."""
    return [(Node.attn(layer, h), channel) for h in range(shape.n_heads) if shape.is_port(Node.attn(layer, h), channel)]

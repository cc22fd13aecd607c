"""The reference engine: DESIGN.md section 4's masked formula, literally, with TransformerLens hooks.

For every receiver R (a head's q/k/v input, an MLP's input, the logits' input):

    input_R = resid_in_R(patched) - sum_S (1 - mask[S, R]) * (out_S(patched) - abl_S)

applied in `hook_{q,k,v}_input`, `hook_mlp_in` and the last `hook_resid_post`, one
einsum per layer over a [senders x receivers] mask. K circuits are evaluated in one
pass by repeating the batch K times. It is slow (split q/k/v inputs multiply the cost
of a forward pass) and simple: it is the yardstick the fast engine is tested against,
and the "one run_with_hooks per circuit" baseline of the benchmarks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Mapping, Sequence

import torch

from .backend import hook
from .graph import EMBED, LOGITS, CircuitGraph, Node
from .models import ModelShape, feeds
from .positions import position_mask

if TYPE_CHECKING:
    from transformer_lens import HookedTransformer


def _senders(shape: ModelShape) -> list[Node]:
    return [n for n in shape.all_nodes() if n.is_sender]


def _receivers(shape: ModelShape, layer: int, kind: str) -> list[tuple[Node, str | None]]:
    if kind == "attn":
        return [(Node.attn(layer, h), ch) for ch in ("q", "k", "v") for h in range(shape.n_heads)]
    if kind == "mlp":
        return [(Node.mlp(layer), None)]
    return [(LOGITS, None)]


def _absent(variants: Sequence[CircuitGraph], senders: list[Node], receivers: list[tuple[Node, str | None]],
            named: Mapping[str, torch.Tensor], length: int) -> torch.Tensor:
    """[K, S, R, B|1, P|1]: 1 where sender S's term is cut from receiver R's input."""
    batch = next(iter(named.values())).shape[0]
    positional = any(e.position for v in variants for e in v.edges)
    s_index = {s: i for i, s in enumerate(senders)}
    r_index = {r: i for i, r in enumerate(receivers)}
    shape = (len(variants), len(senders), len(receivers)) + ((batch, length) if positional else (1, 1))
    present = torch.zeros(shape)
    for k, variant in enumerate(variants):
        for edge in variant.edges:
            r = r_index.get((edge.receiver, edge.channel))
            s = s_index.get(edge.sender)
            if r is None or s is None:
                continue
            mask = position_mask(edge.position, named, length)
            if mask is None:
                present[k, s, r] = 1.0
            else:
                present[k, s, r] = torch.maximum(present[k, s, r], mask)
    return 1.0 - present


def run_reference(model: "HookedTransformer", shape: ModelShape, clean: torch.Tensor,
                  ablated: Mapping[Node, torch.Tensor], variants: Sequence[CircuitGraph],
                  named: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Logits [K, B, vocab] at each example's END position, one row per circuit variant."""
    cfg = model.cfg
    k_count, (batch, length) = len(variants), clean.shape
    senders = _senders(shape)
    outputs: dict[Node, torch.Tensor] = {}
    hooks = []

    def delta(s: Node) -> torch.Tensor:  # [K, B, P, d]
        return outputs[s].view(k_count, batch, length, -1) - ablated[s].to(outputs[s].dtype)

    def correction(receivers) -> torch.Tensor:
        feeding = [s for s in senders if feeds(s, receivers[0][0], shape)]
        absent = _absent(variants, feeding, receivers, named, length).to(cfg.dtype)
        deltas = torch.stack([delta(s) for s in feeding])  # [S, K, B, P, d]
        return torch.einsum("skbpd,ksrbp->kbprd", deltas, absent.expand(-1, -1, -1, batch, length))

    def capture_embed(x, hook):
        outputs[EMBED] = x if EMBED not in outputs else outputs[EMBED] + x
        return x

    hooks.append((hook("embed"), capture_embed))
    if cfg.positional_embedding_type == "standard":
        hooks.append((hook("pos_embed"), capture_embed))

    for layer in range(cfg.n_layers):
        def capture_z(z, hook, layer=layer):
            result = torch.einsum("bphd,hdm->bphm", z, model.blocks[layer].attn.W_O)
            for h in range(cfg.n_heads):
                outputs[Node.attn(layer, h)] = result[:, :, h]
            return z

        def patch_qkv(x, hook, layer=layer):
            channel = hook.name.split(".")[-1][len("hook_")]  # hook_q_input -> q
            receivers = [(Node.attn(layer, h), channel) for h in range(cfg.n_heads)]
            corr = correction(receivers)  # [K, B, P, H, d]
            return x - corr.reshape(x.shape)

        hooks.append((hook("z", layer), capture_z))
        for name in ("q_input", "k_input", "v_input"):
            hooks.append((hook(name, layer), patch_qkv))
        if not cfg.attn_only:
            def patch_mlp(x, hook, layer=layer):
                corr = correction([(Node.mlp(layer), None)])[:, :, :, 0]
                return x - corr.reshape(x.shape)

            def capture_mlp(x, hook, layer=layer):
                outputs[Node.mlp(layer)] = x
                return x

            hooks.append((hook("mlp_in", layer), patch_mlp))
            hooks.append((hook("mlp_out", layer), capture_mlp))

    def patch_final(x, hook):
        corr = correction([(LOGITS, None)])[:, :, :, 0]
        return x - corr.reshape(x.shape)

    hooks.append((hook("resid_post", cfg.n_layers - 1), patch_final))
    flags = (cfg.use_split_qkv_input, cfg.use_hook_mlp_in)
    model.set_use_split_qkv_input(True)
    if not cfg.attn_only:
        model.set_use_hook_mlp_in(True)
    try:
        with torch.no_grad():
            logits = model.run_with_hooks(clean.repeat(k_count, 1), fwd_hooks=hooks, reset_hooks_end=True)
    finally:
        model.set_use_split_qkv_input(flags[0])
        if not cfg.attn_only:
            model.set_use_hook_mlp_in(flags[1])
    logits = logits.view(k_count, batch, length, -1)
    readout = named["END"]
    return logits[:, torch.arange(batch), readout]

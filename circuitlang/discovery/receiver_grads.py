"""The gradient of the metric with respect to every receiver's input, in one forward and
one backward pass: what EAP and EAP-IG multiply sender output differences with.

A receiver's input is the residual stream it reads before its own normalisation: for a
head's q, k or v channel, the head's own copy of `resid_pre` (so heads of one layer have
different gradients although they read the same stream); for an MLP, its input before its
norm; for `logits`, the final residual stream.

Two routes give the same numbers:

- **head space** (the default where the model is plain enough): run the model unchanged,
  take gradients at the q/k/v sites ([batch, pos, head, d_head]) and carry
  them back by hand through W_Q/W_K/W_V and the layer's normalisation (its vector-Jacobian
  product, `norm_vjp`). The shared `resid_pre` is normalised once per layer, as in a plain
  forward pass.
- **split inputs**: the backend's per-head q/k/v input sites (`split_qkv`), which give
  every head its own input tensor, normalisation included, so autograd differentiates
  each separately (emulated, `eval.split_inputs`, on a backend without such sites).
  Works for every model the backend runs, at about twice the cost; used
  when the backend's pieces do not reproduce the model (`Backend.unsupported`), and as
  the head-space route's reference in the tests.

Gradients are returned as (kind, layer) -> [R, batch, pos, d_model], R the receiver
inputs of that kind in the layer: for kind "qkv" the n_heads + 2 n_kv_heads head inputs
(every head's q, then each key/value group's shared k, then v: `ModelShape.input_row`;
without grouped-query attention, every head's k and v), 1 for "mlp" and "logits".
"""

from __future__ import annotations

from typing import Callable

import torch

from ..core.graph import EMBED, Node
from ..core.metrics import METRICS
from ..eval.backends.base import HEAD_SITES, INPUT_SITES, Backend, Site, SiteKind
from ..eval.post_norms import scale_sites
from ..eval.senders import SenderCache, head_outputs
from ..eval.split_inputs import emulated_hooks, rows
from ..eval.session import Session

Grads = dict[tuple[str, int], torch.Tensor]
CHANNELS = "qkv"
QKV = "qkv"  # the key of a layer's head-input gradients


def norm_vjp(kind: str | None, x: torch.Tensor, grad: torch.Tensor, eps: float) -> torch.Tensor:
    """d/dx of sum(grad * normalise(x)) for each head: J(x)^T grad, computed in place.

    x: [B, P, d] (the stream the normalisation reads); grad: [H, B, P, d], the gradient
    at the normalised output *before* the learned scale (fold the scale into what
    produced `grad`); it is overwritten with the result. `kind` is the norm's kind
    ("LN", "LNPre", "RMS", "RMSPre" or None); the learned bias has no Jacobian. Exact,
    eps included: with xhat = x_c / s (x_c centred for LayerNorm, s = sqrt(mean(x_c^2) +
    eps)), J^T g = (g - mean(g) - xhat mean(g xhat)) / s, without the mean(g) term for RMS
    norms.
    """
    if kind is None:
        return grad
    xhat, scale = norm_statistics(kind, x.to(grad.dtype), eps)
    return vjp_of_scaled(kind, xhat, grad.div_(scale))


def norm_statistics(kind: str, x: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """xhat = x_c / s and s [B, P, 1] of a normalisation of kind `kind` (norm_vjp)."""
    if kind in ("LN", "LNPre"):
        x = x - x.mean(-1, keepdim=True)
    scale = (x.pow(2).mean(-1, keepdim=True) + eps).sqrt()
    return x / scale, scale


def vjp_of_scaled(kind: str, xhat: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """norm_vjp given g / s instead of g (s folded in earlier, where it is cheaper):
    g' - xhat mean(g' xhat) (- mean(g') for LayerNorm), in place."""
    # mean(g' * xhat) over d as a batched dot product: no [H, B, P, d] temporary
    coef = torch.einsum("hbpd,bpd->hbp", grad, xhat).unsqueeze(-1).div_(xhat.shape[-1])  # [H, B, P, 1]
    shift = grad.mean(-1, keepdim=True) if kind in ("LN", "LNPre") else None
    grad.addcmul_(xhat, coef, value=-1.0)
    if shift is not None:
        grad.sub_(shift)
    return grad


def head_space_supported(backend: Backend) -> bool:
    """Whether the head-space route knows every step between resid_pre and q/k/v."""
    return not backend.unsupported()


def _capture_points(backend: Backend, split: bool) -> dict[Site, tuple[str, int]]:
    """Site -> (kind, layer) of every activation whose gradient is taken."""
    shape = backend.shape
    sites: dict[Site, tuple[str, int]] = {}
    for layer in range(shape.n_layers):
        if not split or backend.split_inputs:  # else emulated (`_emulated_split`)
            for ch in CHANNELS:
                sites[Site((INPUT_SITES if split else HEAD_SITES)[ch], layer)] = (ch, layer)
        if not shape.attn_only:
            sites[Site(SiteKind.MLP_IN, layer)] = ("mlp", layer)
    sites[Site(SiteKind.FINAL)] = ("logits", shape.n_layers)
    return sites


def _metric_sum(session: Session, end_logits: torch.Tensor, part, reference) -> torch.Tensor:
    device = end_logits.device
    values = METRICS[session.metric](end_logits.unsqueeze(0), part.answer.to(device), part.wrong.to(device),
                                     reference)
    return values.sum()


def _to_inputs(backend: Backend, grads: Grads, streams: dict[int, torch.Tensor]) -> Grads:
    """Head-space gradients at q, k, v ([B, P, H, d_head] each) -> the heads' input
    gradients, one [3H, B, P, d_model] per layer (q heads, then k, then v)."""
    shape = backend.shape
    out: Grads = {}
    for layer in range(shape.n_layers):
        pieces = backend.layers[layer]
        first = grads["q", layer]
        batch, pos, _, _ = first.shape
        # in float32 at least: half precision here loses more than autograd's own route
        dtype = torch.promote_types(first.dtype, torch.float32)
        norm = pieces.attn_norm
        rows = shape.n_heads + 2 * shape.n_kv_heads
        at_norm = torch.empty((rows, batch, pos, shape.d_model), dtype=dtype, device=first.device)
        if norm.kind is not None:
            # the norm's 1/s multiplies each (example, position) row: fold it into the small
            # head-space gradient instead of the d_model-wide result
            xhat, divisor = norm_statistics(norm.kind, streams[layer].to(dtype), norm.eps)
            per_row = (1.0 / divisor).reshape(1, batch * pos, 1)
        start = 0
        for ch in CHANNELS:
            # [H, d_model, d_head] for q, [key/value heads, d_model, d_head] for k and v
            weight = getattr(pieces.attn, f"W_{ch.upper()}").detach().to(dtype)
            heads = weight.shape[0]
            if norm.scale is not None:
                weight = weight * norm.scale.detach().to(dtype)[None, :, None]
            g = grads[ch, layer].to(dtype).permute(2, 0, 1, 3).reshape(heads, batch * pos, -1)
            if norm.kind is not None:
                g = g * per_row
            torch.bmm(g, weight.transpose(1, 2), out=at_norm[start:start + heads].view(heads, batch * pos, -1))
            start += heads
        out[QKV, layer] = at_norm if norm.kind is None else vjp_of_scaled(norm.kind, xhat, at_norm)
    return out


def _emulated_split(backend: Backend, captured: dict[tuple[str, int], torch.Tensor]) -> list:
    """The split route's per-head inputs on a backend without input sites
    (`eval.split_inputs`): each row of a q/k/v site gets its own copy of resid_pre."""
    hooks = []
    for layer in range(backend.shape.n_layers):
        def copies(channel: str, resid: torch.Tensor, layer: int = layer) -> torch.Tensor:
            inputs = resid.unsqueeze(2).repeat(1, 1, rows(backend, channel), 1)
            captured[channel, layer] = inputs
            return inputs

        hooks += emulated_hooks(backend, layer, copies)
    return hooks


def receiver_grads(session: Session, index: int, embed_input: Callable, keep_senders: bool = False,
                   split: bool | None = None) -> tuple[Grads, SenderCache | None]:
    """d (sum of the metric over batch `index` of the session) / d every receiver input,
    with the input embedding (the stream entering layer 0) replaced by
    `embed_input(clean_embedding)`.

    Returns the gradients (module docstring) and, with `keep_senders`, every sender's
    output in this run (a `SenderCache`, as `senders.cache_senders` gives). `split` picks the route; default:
    head space where supported.
    """
    part, clean, _, named = session.batches[index]
    backend = session.backend
    shape = backend.shape
    if split is None:
        split = not head_space_supported(backend)
    sites = _capture_points(backend, split)
    captured: dict[tuple[str, int], torch.Tensor] = {}
    streams: dict[int, torch.Tensor] = {}  # resid_pre per layer, for the norm's Jacobian
    outputs: dict[Node, torch.Tensor] = {}

    def capture(key: tuple[str, int]):
        def hook(act: torch.Tensor) -> torch.Tensor:
            # A new view, returned: some backends (TransformerLens 4) hand hooks a reshaped
            # view and carry on with the original unless the hook returns another tensor,
            # so the view handed in would not be on the path to the metric. A view of it
            # is (and, unlike a copy, costs nothing).
            captured[key] = act.view_as(act)
            return captured[key]
        return hook

    def stream(layer: int):
        def hook(act: torch.Tensor) -> None:
            streams[layer] = act.detach()
        return hook

    def embed(act: torch.Tensor) -> torch.Tensor:
        new = embed_input(act.detach()).requires_grad_(True)
        streams[0] = new.detach()
        if keep_senders:
            outputs[EMBED] = new.detach()
        return new

    zs: dict[int, torch.Tensor] = {}
    scales: dict[Site, torch.Tensor] = {}

    def z_out(layer: int):
        def hook(act: torch.Tensor) -> None:
            zs[layer] = act.detach()
        return hook

    def frozen_divisor(site: Site):
        def hook(act: torch.Tensor) -> torch.Tensor:
            # a post-norm's divisor is a constant of the clean run (eval.post_norms)
            scales[site] = act.detach()
            return scales[site]
        return hook

    def mlp_out(layer: int):
        def hook(act: torch.Tensor) -> None:
            outputs[Node.mlp(layer)] = act.detach()
        return hook

    reference = session.kl_reference(index)
    hooks = [(Site(SiteKind.EMBED), embed)] + [(site, capture(key)) for site, key in sites.items()]
    if split and not backend.split_inputs:
        hooks += _emulated_split(backend, captured)
    hooks += [(site, frozen_divisor(site)) for site in scale_sites(backend)]
    if not split:
        hooks += [(Site(SiteKind.RESID_PRE, layer), stream(layer)) for layer in range(1, shape.n_layers)]
    if keep_senders:
        for layer in range(shape.n_layers):
            hooks.append((Site(SiteKind.Z, layer), z_out(layer)))
            if not shape.attn_only:
                hooks.append((Site(SiteKind.MLP_OUT, layer), mlp_out(layer)))
    with torch.enable_grad():
        # The metric reads END only: unembed that position alone (the full vocabulary at
        # every position would cost more than the rest of the pass on GPT-2).
        resid = backend.run_with_hooks(clean, hooks, split_qkv=split and backend.split_inputs, mlp_in=True,
                                       stop_at_final=True)
        at_end = resid[torch.arange(resid.shape[0], device=resid.device), named["END"]].unsqueeze(1)
        end_logits = backend.unembed(backend.final_norm.apply(at_end))[:, 0]
        keys = list(captured)
        grads = torch.autograd.grad(_metric_sum(session, end_logits, part, reference),
                                    [captured[k] for k in keys], allow_unused=True)
    senders = None
    if keep_senders:
        for layer, z in zs.items():
            outputs.update(head_outputs(backend, layer, z, scales.get(Site(SiteKind.ATTN_POST_SCALE, layer))))
        senders = SenderCache(outputs, [zs[layer] for layer in range(shape.n_layers)],
                              [] if shape.attn_only else [outputs[Node.mlp(layer)] for layer in range(shape.n_layers)])
    found = {k: (torch.zeros_like(captured[k]) if g is None else g.detach()) for k, g in zip(keys, grads)}
    result: Grads = {k: g.unsqueeze(0) for k, g in found.items() if k[0] not in CHANNELS}  # mlp, logits
    if split:
        for layer in range(shape.n_layers):
            result[QKV, layer] = torch.cat([found[ch, layer].permute(2, 0, 1, 3) for ch in CHANNELS])
    else:
        result.update(_to_inputs(backend, found, streams))
    return result, senders

"""The gradient of the metric with respect to every receiver's input, in one forward and
one backward pass: what EAP and EAP-IG multiply sender output differences with.

A receiver's input is the residual stream it reads before its own normalisation: for a
head's q, k or v channel, the head's own copy of `resid_pre` (so heads of one layer have
different gradients although they read the same stream); for an MLP, `hook_mlp_in`; for
`logits`, the last `resid_post`.

Two routes give the same numbers:

- **head space** (the default where the model is plain enough): run the model unchanged,
  take gradients at `hook_q`/`hook_k`/`hook_v` ([batch, pos, head, d_head]) and carry
  them back by hand through W_Q/W_K/W_V and the layer's normalisation (its vector-Jacobian
  product, `norm_vjp`). The shared `resid_pre` is normalised once per layer, as in a plain
  forward pass.
- **split inputs**: TransformerLens's `use_split_qkv_input`, which gives every head its
  own input tensor, normalisation included, so autograd differentiates each separately.
  Works for every model TransformerLens runs, at about twice the cost; used when the head
  space route does not know the model (`engine_fast.check_supported`), and as its
  reference in the tests.

Gradients are returned as (kind, layer) -> [R, batch, pos, d_model], R the receiver
inputs of that kind in the layer: for kind "qkv" the 3 x n_heads head inputs (every
head's q, then every head's k, then v), 1 for "mlp" and "logits".
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

import torch

from ..backend import hook, unembed
from ..engine_fast import Unsupported, check_supported
from ..evaluation import Session
from ..graph import EMBED, Node
from ..metrics import per_example

Grads = dict[tuple[str, int], torch.Tensor]
CHANNELS = "qkv"
QKV = "qkv"  # the key of a layer's head-input gradients


def norm_vjp(kind: str | None, x: torch.Tensor, grad: torch.Tensor, eps: float) -> torch.Tensor:
    """d/dx of sum(grad * normalise(x)) for each head: J(x)^T grad, computed in place.

    x: [B, P, d] (the stream the normalisation reads); grad: [H, B, P, d], the gradient
    at the normalised output *before* the learned scale (fold the scale into what
    produced `grad`); it is overwritten with the result. `kind` is the model's
    normalization_type; the learned bias has no Jacobian. Exact, eps included: with
    xhat = x_c / s (x_c centred for LayerNorm, s = sqrt(mean(x_c^2) + eps)),
    J^T g = (g - mean(g) - xhat mean(g xhat)) / s, without the mean(g) term for RMS norms.
    """
    if kind is None:
        return grad
    centred = kind in ("LN", "LNPre")
    x = x.to(grad.dtype)
    if centred:
        x = x - x.mean(-1, keepdim=True)
    scale = (x.pow(2).mean(-1, keepdim=True) + eps).sqrt()  # [B, P, 1]
    xhat = x / scale
    coef = (grad * xhat).mean(-1, keepdim=True) / scale  # [H, B, P, 1]
    shift = grad.mean(-1, keepdim=True) / scale if centred else None
    out = grad.div_(scale)
    out.addcmul_(xhat, coef, value=-1.0)
    if shift is not None:
        out.sub_(shift)
    return out


def head_space_supported(model) -> bool:
    """Whether the head-space route knows every step between resid_pre and q/k/v."""
    try:
        check_supported(model)
    except Unsupported:
        return False
    return True


@contextmanager
def _hooks_on(model, split: bool) -> Iterator[None]:
    """MLP input hooks (and, for `split`, per-head q/k/v inputs) on; flags restored after."""
    cfg = model.cfg
    saved = (cfg.use_split_qkv_input, cfg.use_hook_mlp_in)
    try:
        if split:
            model.set_use_split_qkv_input(True)
        if not cfg.attn_only:
            model.set_use_hook_mlp_in(True)
        yield
    finally:
        cfg.use_split_qkv_input, cfg.use_hook_mlp_in = saved


def _capture_points(model, split: bool) -> dict[str, tuple[str, int]]:
    """Hook name -> (kind, layer) of every activation whose gradient is taken."""
    cfg = model.cfg
    names: dict[str, tuple[str, int]] = {}
    for layer in range(cfg.n_layers):
        for ch in CHANNELS:
            names[hook(f"{ch}_input", layer) if split else f"blocks.{layer}.attn.hook_{ch}"] = (ch, layer)
        if not cfg.attn_only:
            names[hook("mlp_in", layer)] = ("mlp", layer)
    names[hook("resid_post", cfg.n_layers - 1)] = ("logits", cfg.n_layers)
    return names


def _metric_sum(session: Session, end_logits: torch.Tensor, part, reference) -> torch.Tensor:
    device = end_logits.device
    values = per_example(session.metric, end_logits.unsqueeze(0), part.answer.to(device), part.wrong.to(device),
                         reference)
    return values.sum()


def _to_inputs(model, grads: Grads, streams: dict[int, torch.Tensor]) -> Grads:
    """Head-space gradients at q, k, v ([B, P, H, d_head] each) -> the heads' input
    gradients, one [3H, B, P, d_model] per layer (q heads, then k, then v)."""
    cfg = model.cfg
    out: Grads = {}
    for layer in range(cfg.n_layers):
        block = model.blocks[layer]
        first = grads["q", layer]
        batch, pos, heads, _ = first.shape
        # in float32 at least: half precision here loses more than autograd's own route
        dtype = torch.promote_types(first.dtype, torch.float32)
        scale = getattr(block.ln1, "w", None)
        at_norm = torch.empty((len(CHANNELS) * heads, batch, pos, cfg.d_model), dtype=dtype, device=first.device)
        for i, ch in enumerate(CHANNELS):
            weight = getattr(block.attn, f"W_{ch.upper()}").detach().to(dtype)  # [H, d_model, d_head]
            if scale is not None:
                weight = weight * scale.detach().to(dtype)[None, :, None]
            g = grads[ch, layer].to(dtype).permute(2, 0, 1, 3).reshape(heads, batch * pos, -1)
            torch.bmm(g, weight.transpose(1, 2), out=at_norm[i * heads:(i + 1) * heads].view(heads, batch * pos, -1))
        out[QKV, layer] = norm_vjp(cfg.normalization_type, streams[layer], at_norm, cfg.eps)
    return out


def receiver_grads(session: Session, index: int, embed_input: Callable, keep_senders: bool = False,
                   split: bool | None = None) -> tuple[Grads, dict[Node, torch.Tensor]]:
    """d (sum of the metric over batch `index` of the session) / d every receiver input,
    with the input embedding (blocks.0.hook_resid_pre) replaced by
    `embed_input(clean_embedding)`.

    Returns the gradients (module docstring) and, with `keep_senders`, every sender's
    output in this run (as `backend.cache_senders`). `split` picks the route; default:
    head space where supported.
    """
    part, clean, _, named = session.batches[index]
    model = session.loaded.model
    cfg = model.cfg
    if split is None:
        split = not head_space_supported(model)
    names = _capture_points(model, split)
    captured: dict[tuple[str, int], torch.Tensor] = {}
    streams: dict[int, torch.Tensor] = {}  # resid_pre per layer, for the norm's Jacobian
    outputs: dict[Node, torch.Tensor] = {}

    def capture(act, hook):
        captured[names[hook.name]] = act

    def stream(act, hook):
        streams[int(hook.name.split(".")[1])] = act.detach()

    def embed(act, hook):
        new = embed_input(act.detach()).requires_grad_(True)
        streams[0] = new.detach()
        if keep_senders:
            outputs[EMBED] = new.detach()
        return new

    def z_out(act, hook):
        layer = int(hook.name.split(".")[1])
        result = torch.einsum("bphd,hdm->bphm", act.detach(), model.blocks[layer].attn.W_O.detach())
        for head in range(cfg.n_heads):
            outputs[Node.attn(layer, head)] = result[:, :, head]

    def mlp_out(act, hook):
        outputs[Node.mlp(int(hook.name.split(".")[1]))] = act.detach()

    reference = session.kl_reference(index)
    fwd = [(hook("resid_pre", 0), embed)] + [(name, capture) for name in names]
    if not split:
        fwd += [(hook("resid_pre", layer), stream) for layer in range(1, cfg.n_layers)]
    if keep_senders:
        for layer in range(cfg.n_layers):
            fwd.append((hook("z", layer), z_out))
            if not cfg.attn_only:
                fwd.append((hook("mlp_out", layer), mlp_out))
    with _hooks_on(model, split), torch.enable_grad():
        # The metric reads END only: unembed that position alone (the full vocabulary at
        # every position would cost more than the rest of the pass on GPT-2).
        resid = model.run_with_hooks(clean, fwd_hooks=fwd, reset_hooks_end=True, stop_at_layer=cfg.n_layers)
        at_end = resid[torch.arange(resid.shape[0], device=resid.device), named["END"]].unsqueeze(1)
        final_norm = getattr(model, "ln_final", None)
        end_logits = unembed(model, final_norm(at_end) if final_norm is not None else at_end)[:, 0]
        keys = list(captured)
        grads = torch.autograd.grad(_metric_sum(session, end_logits, part, reference),
                                    [captured[k] for k in keys], allow_unused=True)
    found = {k: (torch.zeros_like(captured[k]) if g is None else g.detach()) for k, g in zip(keys, grads)}
    result: Grads = {k: g.unsqueeze(0) for k, g in found.items() if k[0] not in CHANNELS}  # mlp, logits
    if split:
        for layer in range(cfg.n_layers):
            result[QKV, layer] = torch.cat([found[ch, layer].permute(2, 0, 1, 3) for ch in CHANNELS])
    else:
        result.update(_to_inputs(model, found, streams))
    return result, outputs

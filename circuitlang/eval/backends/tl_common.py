"""What the TransformerLens 3.x and 4.x backends share: the hook names of the backend's
sites (4.x's `TransformerBridge` keeps 3.x's names as aliases) and the calls both
libraries spell alike (tokens, the plain forward pass).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from .base import ModelLoadError, Site, SiteKind

_HOOKS = {
    SiteKind.RESID_PRE: "blocks.{layer}.hook_resid_pre",
    SiteKind.Q_INPUT: "blocks.{layer}.hook_q_input",
    SiteKind.K_INPUT: "blocks.{layer}.hook_k_input",
    SiteKind.V_INPUT: "blocks.{layer}.hook_v_input",
    SiteKind.Q: "blocks.{layer}.attn.hook_q",
    SiteKind.K: "blocks.{layer}.attn.hook_k",
    SiteKind.V: "blocks.{layer}.attn.hook_v",
    SiteKind.Z: "blocks.{layer}.attn.hook_z",
    SiteKind.MLP_IN: "blocks.{layer}.hook_mlp_in",
    SiteKind.MLP_OUT: "blocks.{layer}.hook_mlp_out",
    SiteKind.ATTN_OUT: "blocks.{layer}.hook_attn_out",
    SiteKind.ATTN_POST_SCALE: "blocks.{layer}.ln1_post.hook_scale",  # TransformerLens 4 only
    SiteKind.MLP_POST_SCALE: "blocks.{layer}.ln2_post.hook_scale",
}


def hook_name(site: Site, n_layers: int) -> str:
    """The TransformerLens hook point of `site` in a model of `n_layers` layers."""
    if site.kind is SiteKind.EMBED:
        return "blocks.0.hook_resid_pre"
    if site.kind is SiteKind.FINAL:
        return f"blocks.{n_layers - 1}.hook_resid_post"
    return _HOOKS[site.kind].format(layer=site.layer)


class TokensAndLogits:
    """`has_tokenizer`, `to_tokens` and `logits` of a backend whose `model` is a
    HookedTransformer or a TransformerBridge."""

    model: Any

    @property
    def has_tokenizer(self) -> bool:
        return getattr(self.model, "tokenizer", None) is not None

    def to_tokens(self, text: str, prepend_bos: bool) -> list[int]:
        return self.model.to_tokens(text, prepend_bos=prepend_bos, truncate=False)[0].tolist()

    def logits(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.model(tokens)


def read_weights(path: Path, device: str = "cpu") -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file; ModelLoadError naming the file when it cannot be
    read (truncated or corrupt past the header `core.models` checks, unreadable)."""
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device=device)
    except Exception as err:  # noqa: BLE001 - safetensors raises its own SafetensorError, OSError, ...
        raise ModelLoadError(f"cannot read the weights in {path} ({type(err).__name__}: {str(err)[:120]})",
                             "write the weights again with safetensors' save_file") from None

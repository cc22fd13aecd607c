"""The backend protocol: what the engines, the evaluator, discovery and the tasks need
from a model, and nothing more.

A backend is a loaded model behind this interface. It offers four kinds of things:

- **facts**: `name`, `shape` (layers, query and key/value heads, d_model, d_head, block
  layout), `device`, `dtype`, `n_ctx`, `d_vocab`;
- **tokens**: `has_tokenizer`, `prepends_bos`, `to_tokens(text, prepend_bos)`;
- **runs**: `logits(tokens)`, and `run_with_hooks(tokens, hooks, ...)` with a hook at
  any of the named `Site`s (the embedding, each layer's residual input, per-head q/k/v
  inputs, q/k/v, z, the MLP's input and output, the final residual stream);
- **pieces** for the engines that recompute the model by hand: `embed`, per layer the
  attention weights (`Attention`), its norms (`Norm`) and MLP (`Layer`), `final_norm`,
  `unembed`, and `unsupported()`, which names what of the model the hand-written
  computation does not reproduce exactly.

The fast engine and EAP's head-space gradients use the pieces; the reference engine
and activation patching use only hooked runs, which is what keeps the reference an
independent yardstick (docs/architecture.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Callable, NamedTuple, Protocol, Sequence

import torch

from ...core.errors import CircuitlangError
from ...core.shapes import ModelShape


class SiteKind(Enum):
    """Where in a forward pass a hook can read or replace an activation."""

    EMBED = "embed"  # the stream entering layer 0 (token + positional embedding) [B, P, d_model]
    RESID_PRE = "resid_pre"  # the stream entering a layer [B, P, d_model]
    Q_INPUT = "q_input"  # each head's own copy of its query input, before the norm [B, P, H, d_model]
    K_INPUT = "k_input"  # (the *_INPUT sites exist only with split_qkv=True)
    V_INPUT = "v_input"
    Q = "q"  # queries per head [B, P, H, d_head]
    K = "k"
    V = "v"
    Z = "z"  # attention-weighted values per head, before W_O [B, P, H, d_head]
    MLP_IN = "mlp_in"  # the MLP's input, before its norm [B, P, d_model] (only with mlp_in=True)
    MLP_OUT = "mlp_out"  # the MLP's output [B, P, d_model] (after its post-norm, where it has one)
    ATTN_OUT = "attn_out"  # the attention's output [B, P, d_model] (after its post-norm, where it has one)
    ATTN_POST_SCALE = "attn_post_scale"  # the attention post-norm's divisor [B, P, 1] (Gemma 2/3 only)
    MLP_POST_SCALE = "mlp_post_scale"  # the MLP post-norm's divisor [B, P, 1]
    FINAL = "final"  # the stream after the last layer, before the final norm [B, P, d_model]


class Site(NamedTuple):
    """A hook point: a kind and, for per-layer kinds, the layer."""

    kind: SiteKind
    layer: int | None = None


INPUT_SITES = {"q": SiteKind.Q_INPUT, "k": SiteKind.K_INPUT, "v": SiteKind.V_INPUT}
HEAD_SITES = {"q": SiteKind.Q, "k": SiteKind.K, "v": SiteKind.V}

# A hook gets the activation and returns a replacement, or None to leave it as it is.
Hook = Callable[[torch.Tensor], "torch.Tensor | None"]


class Unsupported(CircuitlangError):
    """The model has a feature the hand-written computation does not reproduce."""


@dataclass(frozen=True)
class Norm:
    """A normalisation: `kind` "LN", "LNPre", "RMS", "RMSPre" or None (none), the learned
    `scale` (None when there is none), `eps`, and `apply`, the model's own computation
    (the identity for None), on any leading dimensions."""

    kind: str | None
    scale: torch.Tensor | None
    eps: float
    apply: Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Attention:
    """One layer's attention weights: W_Q [H, d_model, d_head], W_K and W_V
    [H / kv_group, d_model, d_head] (fewer key/value heads under grouped-query attention:
    query head h reads key/value head h // kv_group), their biases, W_O [H, d_head,
    d_model], b_O [d_model]. Scores are q.k / `scale`, then `softcap * tanh(scores /
    softcap)` when `softcap` is set; `window`, when set, lets a query see only the last
    `window` positions (local attention). `q_norm` and `k_norm`, when the model
    normalises each head's query and key (Gemma 3), apply after the projection and before
    `rotary`, which, when the model rotates queries and keys, maps [N, P, d_head] to itself."""

    W_Q: torch.Tensor
    W_K: torch.Tensor
    W_V: torch.Tensor
    b_Q: torch.Tensor
    b_K: torch.Tensor
    b_V: torch.Tensor
    W_O: torch.Tensor
    b_O: torch.Tensor
    scale: float
    rotary: Callable[[torch.Tensor], torch.Tensor] | None = None
    kv_group: int = 1
    softcap: float | None = None
    window: int | None = None
    q_norm: Callable[[torch.Tensor], torch.Tensor] | None = None
    k_norm: Callable[[torch.Tensor], torch.Tensor] | None = None

    def weight(self, channel: str, head: int | None = None) -> torch.Tensor:
        """W_Q, W_K or W_V (channel "q", "k", "v") of one query head [d_model, d_head],
        or of every query head [H, d_model, d_head] (key/value weights repeated per group)."""
        return self._per_head(getattr(self, f"W_{channel.upper()}"), channel, head)

    def bias(self, channel: str, head: int | None = None) -> torch.Tensor:
        """b_Q, b_K or b_V of one query head [d_head], or of every one [H, d_head]."""
        return self._per_head(getattr(self, f"b_{channel.upper()}"), channel, head)

    def _per_head(self, tensor: torch.Tensor, channel: str, head: int | None) -> torch.Tensor:
        group = 1 if channel == "q" else self.kv_group
        if head is not None:
            return tensor[head // group]
        return tensor if group == 1 else tensor.repeat_interleave(group, dim=0)

    def query_key(self, q: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Queries and keys [..., P, d_head] as the scores read them: through the per-head
        q/k norms and the rotary embedding where the model has them."""
        if self.q_norm is not None:
            q = self.q_norm(q)
        if self.k_norm is not None:
            k = self.k_norm(k)
        if self.rotary is not None:
            shape = q.shape
            q = self.rotary(q.reshape(-1, *shape[-2:])).reshape(shape)
            k = self.rotary(k.reshape(-1, *k.shape[-2:])).reshape(k.shape)
        return q, k

    def scores(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """Attention scores [..., P, P] of queries and keys [..., P, d_head], masked
        (causal, and the window if any) with -inf."""
        scores = (q @ k.transpose(-1, -2)) / self.scale
        if self.softcap:
            scores = self.softcap * torch.tanh(scores / self.softcap)
        length = q.shape[-2]
        visible = torch.ones(length, length, dtype=torch.bool, device=q.device).tril()
        if self.window:
            visible = visible.triu(-(self.window - 1))
        return scores.masked_fill(~visible, float("-inf"))


@dataclass(frozen=True)
class Layer:
    """One block: attention with the norm before it; the MLP (None for attention-only
    models) with its norm, mapping [N, P, d_model] to [N, P, d_model]; and, in models
    that normalise what a block writes (Gemma 2/3), the post-norms of the attention and
    MLP outputs (RMS norms: output = x * scale / divisor, the divisor at the
    *_POST_SCALE sites; docs/models.md, "Post-norms")."""

    attn: Attention
    attn_norm: Norm
    mlp_norm: Norm | None
    mlp: Callable[[torch.Tensor], torch.Tensor] | None
    attn_post: Norm | None = None
    mlp_post: Norm | None = None


class Backend(Protocol):
    """A loaded model (module docstring)."""

    name: str
    shape: ModelShape
    n_ctx: int
    d_vocab: int
    layers: Sequence[Layer]
    final_norm: Norm
    split_inputs: bool  # whether the *_INPUT sites exist (else the reference engine emulates them)

    @property
    def device(self) -> torch.device: ...

    @property
    def dtype(self) -> torch.dtype: ...

    # -- tokens -------------------------------------------------------------------------
    @property
    def has_tokenizer(self) -> bool: ...

    @property
    def prepends_bos(self) -> bool:
        """Whether the model's own text prompts start with a BOS token."""

    def to_tokens(self, text: str, prepend_bos: bool) -> list[int]:
        """Token ids of `text` (never truncated)."""

    # -- runs -----------------------------------------------------------------------------
    def logits(self, tokens: torch.Tensor) -> torch.Tensor:
        """The plain forward pass: logits [B, P, vocab]."""

    def run_with_hooks(self, tokens: torch.Tensor, hooks: Sequence[tuple[Site, Hook]], *, split_qkv: bool = False,
                       mlp_in: bool = False, stop_at_final: bool = False) -> torch.Tensor:
        """A forward pass with hooks; logits [B, P, vocab], or with `stop_at_final` the
        final residual stream [B, P, d_model] (before the final norm). `split_qkv` gives
        every head its own q/k/v input (the *_INPUT sites); `mlp_in` makes MLP_IN
        available. The model is left as it was."""

    # -- pieces -----------------------------------------------------------------------------
    def embed(self, tokens: torch.Tensor) -> torch.Tensor:
        """What the residual stream starts with: [B, P, d_model]."""

    def unembed(self, resid: torch.Tensor) -> torch.Tensor:
        """Logits from the normalised final stream: [..., d_model] -> [..., vocab]."""

    def unembed_columns(self, resid: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
        """The logits of some tokens only: resid [N, d_model], columns [N, C] token ids ->
        [N, C], equal to `unembed(resid)` gathered at `columns` (float rounding aside)."""

    def unsupported(self) -> list[str]:
        """What of this model the pieces do not reproduce exactly (empty when all is)."""


class ModelLoadError(CircuitlangError):
    """A model that cannot be had; the message says why and `help` how to get it."""

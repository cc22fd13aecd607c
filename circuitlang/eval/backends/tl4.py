"""The TransformerLens 4.x backend: a `TransformerBridge` behind the `Backend` protocol.

Loading: zoo weights and checkpoint directories with HookedTransformerConfig fields
become a native bridge (`TransformerBridge.boot_native` + `convert_tl_checkpoint`); a
Hugging Face directory (`save_pretrained`'s config.json, safetensors and tokenizer
files) or a name in the local Hugging Face cache becomes a bridge over the Hugging Face
model (`boot_transformers`), offline.

The bridge keeps TransformerLens 3.x's hook names (`tl_common`). What differs, and is
handled here: it has no `attn_scale` (Hugging Face attention has `scaling`, its
reciprocal; the native one `scale`) and no per-head `apply_rotary` (rotary embeddings
live in a model-level module); `stop_at_layer=n_layers` returns logits, so the final
residual stream is captured by a hook that ends the run; feature flags are set through
the `set_use_*` setters; native bridges have no split q/k/v inputs (`split_inputs` is
False and the reference engine emulates them). What the pieces cannot reproduce is read
from the model's modules, not from the bridge config's flags (which, for Gemma, report
no post-norms and no local attention although the model has both).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import warnings
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch

from ...core.models import ShapeError, checkpoint_config, shape_from_config
from ...core.paths import is_file
from ...core.shapes import ModelShape
from .base import Attention, Hook, Layer, ModelLoadError, Norm, Site, SiteKind
from .tl_common import TokensAndLogits, hook_name, read_weights


# Freezing a post-norm's divisor (eval.post_norms) edits `hook_scale` on purpose; the
# bridge warns about every such edit.
warnings.filterwarnings("ignore", message="A forward hook edited hook_scale", category=UserWarning)


class _Stop(Exception):
    """Raised by the hook that captures the final residual stream, to end the run there."""

    def __init__(self, value: torch.Tensor):
        super().__init__()
        self.value = value


def _bridge_classes():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from transformer_lens import TransformerBridgeConfig
        from transformer_lens.model_bridge import TransformerBridge
    return TransformerBridge, TransformerBridgeConfig


# ---------------------------------------------------------------------------------
# Pieces, read from the modules the bridge wraps
# ---------------------------------------------------------------------------------


def _original(component: Any) -> Any:
    return getattr(component, "original_component", None) or component


def _norm(component: Any) -> Norm:
    """The normalisation a bridge component runs, with its kind, scale and eps when they
    are understood (checked on a probe: a kind that does not reproduce the module is
    reported as "unknown" so that the head-space gradient route is not used)."""
    module = _original(component)
    if component is None or isinstance(module, torch.nn.Identity):
        return Norm(None, None, 0.0, lambda x: x)
    name = type(module).__name__
    eps = float(getattr(module, "eps", getattr(module, "variance_epsilon", 1e-5)))
    weight = getattr(module, "weight", None)
    if isinstance(module, torch.nn.LayerNorm):
        kind, scale = "LN", weight
    elif name.endswith("LayerNormPre"):
        kind, scale = "LNPre", None
    elif name.endswith("RMSNormPre"):
        kind, scale = "RMSPre", None
    elif name.endswith("RMSNorm") and name.startswith("Gemma") and weight is not None:
        kind, scale = "RMS", 1.0 + weight  # Gemma scales by (1 + weight)
    elif name.endswith("RMSNorm"):
        kind, scale = "RMS", weight
    else:
        kind, scale = "unknown", None
    norm = Norm(kind, scale, eps, component)
    if kind != "unknown" and not _norm_matches(norm, module):
        norm = Norm("unknown", None, eps, component)
    return norm


def _norm_matches(norm: Norm, module: Any) -> bool:
    """Whether `norm`'s kind, scale and eps reproduce `module` on a probe."""
    param = next(module.parameters(), None)
    dtype = param.dtype if param is not None else torch.float32
    device = param.device if param is not None else torch.device("cpu")
    width = norm.scale.shape[0] if norm.scale is not None else None
    if width is None:
        return True  # parameter-free norms are matched by their class alone
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, width, generator=generator).to(device, dtype) * 3 + 1
    with torch.no_grad():
        y = module(x)
        centred = x - x.mean(-1, keepdim=True) if norm.kind == "LN" else x
        ours = centred / (centred.pow(2).mean(-1, keepdim=True) + norm.eps).sqrt() * norm.scale
        if getattr(module, "bias", None) is not None:
            ours = ours + module.bias
    return bool(torch.allclose(y.float(), ours.float(), rtol=1e-3, atol=1e-4))


def _attention_scale(module: Any, cfg: Any) -> float:
    if getattr(module, "scaling", None):
        return 1.0 / float(module.scaling)  # Hugging Face multiplies by `scaling`
    if getattr(module, "scale", None):
        return float(module.scale)  # the native attention divides by `scale`
    return float(cfg.d_head) ** 0.5


def _native_rotary(rotary: Any) -> Callable[[torch.Tensor], torch.Tensor]:
    def rotate(x: torch.Tensor) -> torch.Tensor:  # [N, P, d_head]; native rotates [N, heads, P, d_head]
        q, _ = rotary.apply_rope(x.unsqueeze(1), x.unsqueeze(1))
        return q.squeeze(1)
    return rotate


def _hf_rotary(bridge: Any, module: Any, layer: int) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """Rotary embedding as the Hugging Face model applies it in `module`'s layer: the
    model-level `rotary_emb` (Gemma 3's local layers: `rotary_emb_local`) gives cos and
    sin, the attention module's own file `apply_rotary_pos_emb` applies them (partial
    rotary included, as in GPT-NeoX)."""
    inner = getattr(bridge.original_model, "model", None) or getattr(bridge.original_model, "gpt_neox", None)
    if inner is None:
        return None
    emb = getattr(inner, "rotary_emb", None)
    if getattr(module, "sliding_window", None) and getattr(inner, "rotary_emb_local", None) is not None:
        emb = inner.rotary_emb_local
    apply = getattr(sys.modules[type(module).__module__], "apply_rotary_pos_emb", None)
    if emb is None or apply is None:
        return None
    layer_type = getattr(module, "layer_type", None) or _layer_type(bridge, layer)

    def rotate(x: torch.Tensor) -> torch.Tensor:  # [N, P, d_head]
        positions = torch.arange(x.shape[1], device=x.device).unsqueeze(0)
        try:
            cos, sin = emb(x, positions, layer_type) if layer_type else emb(x, positions)
        except TypeError:
            cos, sin = emb(x, positions)
        rotated, _ = apply(x.unsqueeze(1), x.unsqueeze(1), cos, sin)
        return rotated.squeeze(1)
    return rotate


def _layer_type(bridge: Any, layer: int) -> str | None:
    types = getattr(getattr(bridge.original_model, "config", None), "layer_types", None)
    return types[layer] if types and layer < len(types) else None


def _attention(bridge: Any, block: Any, layer: int) -> Attention:
    attn = block.attn
    module = _original(attn)
    cfg = bridge.cfg
    hf_config = getattr(bridge.original_model, "config", None)
    kv_heads = attn.W_K.shape[0]
    rotary = None
    if getattr(module, "rotary", None) is not None:
        rotary = _native_rotary(module.rotary)
    elif hf_config is not None and getattr(cfg, "positional_embedding_type", "standard") == "rotary":
        rotary = _hf_rotary(bridge, module, layer)
    softcap = getattr(hf_config, "attn_logit_softcapping", None) or getattr(module, "attn_scores_soft_cap", 0.0)
    window = getattr(module, "sliding_window", None)
    W_Q, W_K, W_V, W_O = attn.W_Q, attn.W_K, attn.W_V, attn.W_O
    zeros = lambda w: torch.zeros(w.shape[0], w.shape[-1], dtype=w.dtype, device=w.device)  # noqa: E731
    b_Q = attn.b_Q if attn.b_Q is not None else zeros(W_Q)  # Llama, Gemma: no biases
    b_K = attn.b_K if attn.b_K is not None else zeros(W_K)
    b_V = attn.b_V if attn.b_V is not None else zeros(W_V)
    b_O = attn.b_O if attn.b_O is not None else torch.zeros(W_O.shape[-1], dtype=W_O.dtype, device=W_O.device)
    return Attention(W_Q, W_K, W_V, b_Q, b_K, b_V, W_O, b_O,
                     _attention_scale(module, cfg), rotary, cfg.n_heads // kv_heads,
                     float(softcap) if softcap and softcap > 0 else None, int(window) if window else None,
                     getattr(module, "q_norm", None), getattr(module, "k_norm", None))


def shape_of(bridge: Any, name: str) -> ModelShape:
    """The shape of a loaded bridge, from its config and attention weights."""
    cfg = bridge.cfg
    block = bridge.blocks[0]
    kv_heads = block.attn.W_K.shape[0]
    attn_only = bool(getattr(cfg, "attn_only", False)) or getattr(block, "mlp", None) is None
    parallel = bool(getattr(cfg, "parallel_attn_mlp", False))
    return ModelShape(name, cfg.n_layers, cfg.n_heads, cfg.d_model, attn_only, parallel, "loaded",
                      int(block.attn.W_Q.shape[-1]), int(kv_heads))


class BridgeBackend(TokensAndLogits):
    """A TransformerLens 4.x `TransformerBridge` as a `Backend` (see `base`)."""

    def __init__(self, bridge: Any, name: str, shape: ModelShape | None = None):
        self.model = bridge
        self.name = name
        self.shape = shape or shape_of(bridge, name)
        cfg = bridge.cfg
        self.n_ctx = int(cfg.n_ctx)
        self.d_vocab = int(cfg.d_vocab)
        self.layers = tuple(self._layer(layer, block) for layer, block in enumerate(bridge.blocks))
        self.final_norm = _norm(getattr(bridge, "ln_final", None))
        self.split_inputs = self._can_split()
        hf_config = getattr(bridge.original_model, "config", None)
        cap = getattr(hf_config, "final_logit_softcapping", None) if hf_config is not None else \
            getattr(cfg, "output_logits_soft_cap", None)
        self._logit_cap = float(cap) if cap and cap > 0 else None

    def _layer(self, layer: int, block: Any) -> Layer:
        attn = _attention(self.model, block, layer)
        attn_post = _norm(block.ln1_post) if hasattr(block, "ln1_post") else None
        if self.shape.attn_only:
            return Layer(attn, _norm(block.ln1), None, None, attn_post)
        mlp_post = _norm(block.ln2_post) if hasattr(block, "ln2_post") else None
        return Layer(attn, _norm(block.ln1), _norm(block.ln2), block.mlp, attn_post, mlp_post)

    def _can_split(self) -> bool:
        try:
            self.model.set_use_split_qkv_input(True)
        except (NotImplementedError, ValueError):
            return False
        self.model.set_use_split_qkv_input(False)
        return True

    def __repr__(self) -> str:
        return f"BridgeBackend({self.name!r}, {self.shape.describe()})"

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    # -- tokens ------------------------------------------------------------------------------
    @property
    def prepends_bos(self) -> bool:
        return bool(getattr(self.model.cfg, "default_prepend_bos", True))

    # -- runs ----------------------------------------------------------------------------------
    def run_with_hooks(self, tokens: torch.Tensor, hooks: Sequence[tuple[Site, Hook]], *, split_qkv: bool = False,
                       mlp_in: bool = False, stop_at_final: bool = False) -> torch.Tensor:
        model, cfg = self.model, self.model.cfg
        n_layers = cfg.n_layers
        fwd = [(hook_name(site, n_layers), lambda act, hook, fn=fn: fn(act)) for site, fn in hooks]
        if stop_at_final:
            last = Site(SiteKind.FINAL)
            user = [fn for site, fn in hooks if site == last]

            def stop(act, hook):
                for fn in user:
                    new = fn(act)
                    act = act if new is None else new
                raise _Stop(act)

            fwd = [(n, f) for (n, f), (site, _) in zip(fwd, hooks) if site != last]
            fwd.append((hook_name(last, n_layers), stop))
        saved = (bool(getattr(cfg, "use_split_qkv_input", False)), bool(getattr(cfg, "use_hook_mlp_in", False)))
        try:
            if split_qkv:
                model.set_use_split_qkv_input(True)
            if mlp_in and not self.shape.attn_only:
                model.set_use_hook_mlp_in(True)
            return model.run_with_hooks(tokens, fwd_hooks=fwd, reset_hooks_end=True)
        except _Stop as stopped:
            return stopped.value
        finally:
            if split_qkv:
                model.set_use_split_qkv_input(saved[0])
            if mlp_in and not self.shape.attn_only:
                model.set_use_hook_mlp_in(saved[1])

    # -- pieces ----------------------------------------------------------------------------------
    def embed(self, tokens: torch.Tensor) -> torch.Tensor:
        """The stream entering layer 0, as the model computes it (embedding scales such
        as Gemma's included): a run stopped there."""
        def stop(act, hook):
            raise _Stop(act)
        try:
            self.model.run_with_hooks(tokens, fwd_hooks=[(hook_name(Site(SiteKind.EMBED), 1), stop)],
                                      reset_hooks_end=True)
        except _Stop as stopped:
            return stopped.value
        raise RuntimeError("the embedding hook did not fire")

    def unembed(self, resid: torch.Tensor) -> torch.Tensor:
        logits = torch.nn.functional.linear(resid, self.model.W_U.T, self.model.b_U)
        if self._logit_cap:
            logits = self._logit_cap * torch.tanh(logits / self._logit_cap)
        return logits

    def unembed_columns(self, resid: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
        """Logits of `columns` only (logit difference reads two of GPT-2's 50,257)."""
        logits = torch.einsum("nd,ncd->nc", resid, self.model.W_U.T[columns]) + self.model.b_U[columns]
        if self._logit_cap:
            logits = self._logit_cap * torch.tanh(logits / self._logit_cap)
        return logits

    def unsupported(self) -> list[str]:
        problems = []
        for block, pieces in zip(self.model.blocks, self.layers):
            module = _original(block)
            # Gemma-style blocks normalise their outputs (Llama's `post_attention_layernorm` is
            # its pre-MLP norm: the mark of a post-norm block is `post_feedforward_layernorm`)
            if hasattr(module, "post_feedforward_layernorm") and not hasattr(block, "ln2_post"):
                problems.append("post-norms the bridge does not expose")
            for post in (pieces.attn_post, pieces.mlp_post):
                if post is not None and (post.kind != "RMS" or post.scale is None):
                    problems.append("a post-norm other than RMSNorm")
            if pieces.attn_post is not None and bool(pieces.attn.b_O.abs().max() > 0):
                problems.append("an attention output bias under a post-norm (it belongs to no head)")
            if self.model.cfg.positional_embedding_type == "rotary" and pieces.attn.rotary is None:
                problems.append("rotary embeddings this backend cannot apply")
            for norm in (pieces.attn_norm, pieces.mlp_norm):
                if norm is not None and norm.kind == "unknown":
                    problems.append(f"a normalisation it does not know ({type(_original(norm.apply)).__name__})")
        return sorted(set(problems))


# ---------------------------------------------------------------------------------
# Building and loading
# ---------------------------------------------------------------------------------


def _native(config: Mapping[str, Any], state: Mapping[str, torch.Tensor], name: str, what: str,
            device: str | torch.device, dtype: torch.dtype) -> Any:
    """A native bridge with `config` (HookedTransformerConfig fields) and `state` (the
    TransformerLens 3.x layout)."""
    TransformerBridge, TransformerBridgeConfig = _bridge_classes()
    from transformer_lens.utilities.tl_checkpoint_conversion import convert_tl_checkpoint

    fields = {k: v for k, v in config.items() if k not in ("model_name", "init_weights", "seed")}
    try:
        cfg = TransformerBridgeConfig(**fields)
    except (TypeError, ValueError) as err:
        raise ModelLoadError(f"the config of `{name}` is not a valid TransformerBridgeConfig: {err}") from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            bridge = TransformerBridge.boot_native(cfg, device="cpu", dtype=torch.float32, model_name=name)
    except Exception as err:  # noqa: BLE001 - TransformerLens raises any kind for a config it cannot build
        raise ModelLoadError(f"TransformerLens refuses the config of `{name}`: {type(err).__name__}: "
                             f"{str(err)[:200]}", "correct the field it names in config.json") from None
    weights = {key: value.to("cpu", torch.float32) for key, value in state.items()
               if not key.endswith(("IGNORE", "mask"))}
    try:
        converted = convert_tl_checkpoint(weights, cfg)
        if "unembed.bias" not in converted:
            converted["unembed.bias"] = torch.zeros(cfg.d_vocab)
        result = bridge.load_state_dict(converted, strict=False)
    except (ValueError, RuntimeError) as err:
        raise ModelLoadError(f"{what} does not fit its config: {err}") from None
    if result.missing_keys or result.unexpected_keys:
        raise ModelLoadError(f"{what} does not fit its config: missing {list(result.missing_keys)[:3]}, "
                             f"unexpected {list(result.unexpected_keys)[:3]}")
    bridge.eval()
    return _place(bridge, device, dtype)


def _place(bridge: Any, device: str | torch.device, dtype: torch.dtype) -> Any:
    """Move a float32 CPU bridge to `device` and `dtype` (quietly: the bridge prints)."""
    if dtype == torch.float32 and torch.device(device).type == "cpu":
        return bridge
    with contextlib.redirect_stdout(io.StringIO()):
        return bridge.to(device=torch.device(device), dtype=dtype)


def from_state(config: Mapping[str, Any], state: Mapping[str, torch.Tensor], name: str,
               device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
               shape: ModelShape | None = None) -> BridgeBackend:
    """A backend for the model `config` describes with the weights `state` (a zoo model)."""
    return BridgeBackend(_native(config, state, name, f"the weights of `{name}`", device, dtype), name, shape)


def load_checkpoint(path: Path, name: str, device: str | torch.device = "cpu",
                    dtype: torch.dtype = torch.float32) -> BridgeBackend:
    """A checkpoint directory: `config.json` (HookedTransformerConfig fields) and `model.safetensors`."""
    config_path, weights_path = path / "config.json", path / "model.safetensors"
    if not is_file(config_path) or not is_file(weights_path):
        raise ModelLoadError(f"checkpoint `{name}` needs config.json and model.safetensors in {path}")
    try:
        fields, shape = checkpoint_config(path, name)
    except ShapeError as err:
        raise ModelLoadError(err.message, err.help) from None
    bridge = _native(fields, read_weights(weights_path), name, f"model.safetensors of `{name}`", device, dtype)
    return BridgeBackend(bridge, name, shape)


def _boot_transformers(source: str, name: str, device: str | torch.device, dtype: torch.dtype) -> Any:
    TransformerBridge, _ = _bridge_classes()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bridge = TransformerBridge.boot_transformers(source, device=str(device), dtype=dtype)
    bridge.eval()
    return bridge


def load_hf_directory(path: Path, name: str, device: str | torch.device = "cpu",
                      dtype: torch.dtype = torch.float32) -> BridgeBackend:
    """A Hugging Face directory as `save_pretrained` writes it (config.json with a
    `model_type`, safetensors weights, tokenizer files), offline."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        bridge = _boot_transformers(str(path), name, device, dtype)
    except Exception as err:  # noqa: BLE001 - transformers raises many kinds for a bad directory
        raise ModelLoadError(f"cannot load the Hugging Face model in {path} ({type(err).__name__}: "
                             f"{str(err).splitlines()[0][:200] if str(err) else ''})",
                             "a Hugging Face directory holds config.json, model.safetensors and the "
                             "tokenizer files, as save_pretrained writes them") from None
    config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    return BridgeBackend(bridge, name, shape_from_config(config, name))


def load_pretrained(name: str, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
                    shape: ModelShape | None = None) -> BridgeBackend:
    """A Hugging Face / TransformerLens name, from the local Hugging Face cache only."""
    if os.environ.get("HF_HUB_OFFLINE") != "1":
        os.environ["HF_HUB_OFFLINE"] = "1"  # without it the hub client retries a missing download for ~23 s
    try:
        bridge = _boot_transformers(name, name, device, dtype)
    except Exception as err:  # noqa: BLE001 - the hub and the bridge raise many kinds; all mean "not here"
        raise ModelLoadError(
            f"cannot load pretrained `{name}` offline ({type(err).__name__})",
            f"download it once where there is network (python -c \"from transformer_lens.model_bridge import "
            f"TransformerBridge as T; T.boot_transformers('{name}')\") so it is in the Hugging Face cache, "
            "or name a local directory in quotes") from None
    return BridgeBackend(bridge, name, shape)

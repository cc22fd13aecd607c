"""The TransformerLens 3.x backend: a `HookedTransformer` behind the `Backend` protocol.

Loading: zoo weights (a HookedTransformerConfig's fields and a state dict in this
library's layout, `from_state`), checkpoint directories (`config.json` with
HookedTransformerConfig fields and `model.safetensors`, `load_checkpoint`), and
TransformerLens pretrained names from the local Hugging Face cache (`load_pretrained`).
Importing this module imports torch; TransformerLens is imported when a model is built
(about 4 s).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import torch

from ...core.models import ShapeError, checkpoint_config, shape_from_config
from ...core.paths import is_file
from ...core.shapes import ModelShape
from .base import Attention, Hook, Layer, ModelLoadError, Norm, Site
from .tl_common import TokensAndLogits, hook_name, read_weights

if TYPE_CHECKING:
    from transformer_lens import HookedTransformer

def _quiet_import():
    with warnings.catch_warnings():  # TL 3.x deprecates HookedTransformer in favour of 4.x's bridge
        warnings.simplefilter("ignore")
        import transformer_lens  # noqa: F401
        from transformer_lens import HookedTransformer, HookedTransformerConfig
    return HookedTransformer, HookedTransformerConfig


def shape_of(model: "HookedTransformer", name: str) -> ModelShape:
    """The shape of a loaded model, from its config."""
    cfg = model.cfg
    kv = getattr(cfg, "n_key_value_heads", None) or cfg.n_heads
    return ModelShape(name, cfg.n_layers, cfg.n_heads, cfg.d_model, bool(cfg.attn_only),
                      bool(getattr(cfg, "parallel_attn_mlp", False)), "loaded", cfg.d_head, kv)


def _norm(kind: str | None, module: Any, eps: float) -> Norm:
    if kind is None or module is None or isinstance(module, torch.nn.Identity):
        return Norm(None, None, eps, lambda x: x)
    return Norm(kind, getattr(module, "w", None), eps, module)


def _rotary(attn: Any):
    def rotate(x: torch.Tensor) -> torch.Tensor:  # [N, P, d_head]; TL rotates [N, P, heads, d_head]
        return attn.apply_rotary(x.unsqueeze(2), 0, None).squeeze(2)
    return rotate


def _layer(cfg: Any, block: Any) -> Layer:
    attn = block.attn
    grouped = hasattr(attn, "_W_K")  # GroupedQueryAttention keeps one key/value head per group
    W_K, W_V = (attn._W_K, attn._W_V) if grouped else (attn.W_K, attn.W_V)
    b_K, b_V = (attn._b_K, attn._b_V) if grouped else (attn.b_K, attn.b_V)
    weights = Attention(attn.W_Q, W_K, W_V, attn.b_Q, b_K, b_V, attn.W_O, attn.b_O,
                        attn.attn_scale, _rotary(attn) if cfg.positional_embedding_type == "rotary" else None,
                        cfg.n_heads // W_K.shape[0])
    kind = cfg.normalization_type
    if cfg.attn_only:
        return Layer(weights, _norm(kind, block.ln1, cfg.eps), None, None)
    return Layer(weights, _norm(kind, block.ln1, cfg.eps), _norm(kind, block.ln2, cfg.eps), block.mlp)


class TransformerLensBackend(TokensAndLogits):
    """A TransformerLens 3.x `HookedTransformer` as a `Backend` (see `base`).

    Under grouped-query attention its key/value input sites and weights have a row per
    key/value head: the shared inputs the language names (docs/models.md).
    """

    split_inputs = True

    def __init__(self, model: "HookedTransformer", name: str, shape: ModelShape | None = None):
        self.model = model
        self.name = name
        self.shape = shape or shape_of(model, name)
        cfg = model.cfg
        self.n_ctx = cfg.n_ctx
        self.d_vocab = cfg.d_vocab
        self.layers = tuple(_layer(cfg, block) for block in model.blocks)
        self.final_norm = _norm(cfg.normalization_type, getattr(model, "ln_final", None), cfg.eps)

    def __repr__(self) -> str:
        return f"TransformerLensBackend({self.name!r}, {self.shape.describe()})"

    @property
    def device(self) -> torch.device:
        device = self.model.cfg.device
        return device if isinstance(device, torch.device) else torch.device(device or "cpu")

    @property
    def dtype(self) -> torch.dtype:
        return self.model.cfg.dtype

    # -- tokens ------------------------------------------------------------------------------
    @property
    def prepends_bos(self) -> bool:
        return bool(self.model.cfg.default_prepend_bos)

    # -- runs ----------------------------------------------------------------------------------
    def run_with_hooks(self, tokens: torch.Tensor, hooks: Sequence[tuple[Site, Hook]], *, split_qkv: bool = False,
                       mlp_in: bool = False, stop_at_final: bool = False) -> torch.Tensor:
        model, cfg = self.model, self.model.cfg
        fwd = [(hook_name(site, cfg.n_layers), lambda act, hook, fn=fn: fn(act)) for site, fn in hooks]
        saved = (cfg.use_split_qkv_input, cfg.use_hook_mlp_in)
        try:
            if split_qkv:
                model.set_use_split_qkv_input(True)
            if mlp_in and not cfg.attn_only:
                model.set_use_hook_mlp_in(True)
            return model.run_with_hooks(tokens, fwd_hooks=fwd, reset_hooks_end=True,
                                        stop_at_layer=cfg.n_layers if stop_at_final else None)
        finally:
            model.set_use_split_qkv_input(saved[0])
            if not cfg.attn_only:
                model.set_use_hook_mlp_in(saved[1])

    # -- pieces ----------------------------------------------------------------------------------
    def embed(self, tokens: torch.Tensor) -> torch.Tensor:
        embed = self.model.embed(tokens)
        if self.model.cfg.positional_embedding_type == "standard":
            embed = embed + self.model.pos_embed(tokens)
        return embed

    def unembed(self, resid: torch.Tensor) -> torch.Tensor:
        """Logits from the normalised final residual stream, as `model.unembed` computes them.

        TransformerLens 3.x's Unembed copies W_U's transpose on every call (to match
        Hugging Face's bfloat16 accumulation order); for GPT-2 that copy, 154 MB, costs
        68-88 ms on two CPU cores (bench/bench_discovery.py), more than unembedding a batch's
        END positions. The transposed view gives the same product without it (float
        rounding aside).
        """
        return torch.nn.functional.linear(resid, self.model.W_U.T, self.model.b_U)

    def unembed_columns(self, resid: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
        """Logits of `columns` only (logit difference reads two of GPT-2's 50,257)."""
        return torch.einsum("nd,ncd->nc", resid, self.model.W_U.T[columns]) + self.model.b_U[columns]

    def unsupported(self) -> list[str]:
        cfg = self.model.cfg
        problems = []
        if cfg.positional_embedding_type not in ("standard", "rotary"):
            problems.append(f"{cfg.positional_embedding_type} positional embeddings")
        for flag in ("use_attention_sinks", "use_logn_attn", "use_qk_norm", "use_local_attn",
                     "use_normalization_before_and_after"):
            if getattr(cfg, flag, False):
                problems.append(flag)
        if getattr(cfg, "clip_qkv", None) is not None:
            problems.append("clip_qkv")
        if getattr(cfg, "attn_scores_soft_cap", -1.0) not in (None, -1.0, 0.0):
            problems.append("attention soft-capping")
        if getattr(cfg, "output_logits_soft_cap", -1.0) not in (None, -1.0, 0.0):
            problems.append("logit soft-capping")
        if getattr(cfg, "attention_dir", "causal") != "causal":
            problems.append("bidirectional attention")
        if cfg.normalization_type not in (None, "LN", "LNPre", "RMS", "RMSPre"):
            problems.append(f"{cfg.normalization_type} normalization")
        arch = getattr(cfg, "original_architecture", None) or ""
        if arch.startswith("Olmo"):
            problems.append(arch)
        return problems


# ---------------------------------------------------------------------------------
# Building and loading
# ---------------------------------------------------------------------------------


def _blank_model(config: Mapping[str, Any]) -> "HookedTransformer":
    """A float32 HookedTransformer on the CPU, in eval mode, with no random initialisation
    run (``init_weights=False``: the global RNG is not touched)."""
    HookedTransformer, HookedTransformerConfig = _quiet_import()
    cfg = HookedTransformerConfig(**{**config, "init_weights": False, "device": "cpu", "dtype": torch.float32})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        model = HookedTransformer(cfg)
    model.eval()
    return model


def _place(model: "HookedTransformer", device: str | torch.device, dtype: torch.dtype) -> "HookedTransformer":
    """Move a float32 CPU model to `device` and `dtype`, keeping `model.cfg` in step."""
    from transformer_lens.utilities.devices import move_to_and_update_config

    if dtype != torch.float32:
        model = move_to_and_update_config(model, dtype, print_details=False)
    if torch.device(device).type != "cpu":
        model = move_to_and_update_config(model, torch.device(device), print_details=False)
    return model


def _load_state(model: "HookedTransformer", state: Mapping[str, torch.Tensor], what: str, assign: bool = False) -> None:
    """Load weights, refusing a state dict that does not fit the config; `assign` takes
    the tensors as they are instead of copying them (same dtype and device only)."""
    try:
        missing, unexpected = model.load_state_dict(dict(state), strict=False, assign=assign)
    except RuntimeError as err:  # tensors of the wrong size: the config and the weights disagree
        detail = str(err).strip().splitlines()
        raise ModelLoadError(f"{what} does not fit its config: {detail[1].strip() if len(detail) > 1 else detail[0]}",
                             "compare config.json's sizes with the weights' shapes") from None
    real_missing = [k for k in missing if not k.endswith(("IGNORE", "mask", "rotary_sin", "rotary_cos"))]
    if real_missing or unexpected:
        raise ModelLoadError(f"{what} does not fit its config: missing {real_missing[:3]}, "
                             f"unexpected {list(unexpected)[:3]}")


def from_state(config: Mapping[str, Any], state: Mapping[str, torch.Tensor], name: str,
               device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
               shape: ModelShape | None = None) -> TransformerLensBackend:
    """A backend for the model `config` describes with the weights `state` (a zoo model)."""
    model = _blank_model(config)
    weights = {key: value.to("cpu", torch.float32) for key, value in state.items()}  # no copy when they are
    _load_state(model, weights, f"the weights of `{name}`", assign=True)
    return TransformerLensBackend(_place(model, device, dtype), name, shape)


def load_checkpoint(path: Path, name: str, device: str | torch.device = "cpu",
                    dtype: torch.dtype = torch.float32) -> TransformerLensBackend:
    """A checkpoint directory: `config.json` (HookedTransformerConfig fields) and `model.safetensors`.
    Its shape is read from config.json, as static checks read it."""
    HookedTransformer, HookedTransformerConfig = _quiet_import()
    config_path, weights_path = path / "config.json", path / "model.safetensors"
    if not is_file(config_path) or not is_file(weights_path):
        raise ModelLoadError(f"checkpoint `{name}` needs config.json and model.safetensors in {path}")
    try:
        fields, shape = checkpoint_config(path, name)
    except ShapeError as err:
        raise ModelLoadError(err.message, err.help) from None
    try:
        cfg = HookedTransformerConfig(**{**fields, "device": device, "dtype": dtype})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = HookedTransformer(cfg)
    except Exception as err:  # noqa: BLE001 - TransformerLens raises any kind for a config it cannot build
        raise ModelLoadError(f"TransformerLens refuses the config of `{name}`: {type(err).__name__}: "
                             f"{str(err)[:200]}", "correct the field it names in config.json") from None
    _load_state(model, read_weights(weights_path, str(device)), f"model.safetensors of `{name}`")
    model.eval()
    return TransformerLensBackend(model, name, shape)


def load_pretrained(name: str, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
                    shape: ModelShape | None = None) -> TransformerLensBackend:
    """A TransformerLens pretrained name, from the local Hugging Face cache only."""
    if os.environ.get("HF_HUB_OFFLINE") != "1":
        # Without this the hub client retries a missing download for ~23 s.
        os.environ["HF_HUB_OFFLINE"] = "1"
    HookedTransformer, _ = _quiet_import()
    from transformer_lens.loading_from_pretrained import get_official_model_name

    try:
        get_official_model_name(name)
    except ValueError:
        raise ModelLoadError(
            f"TransformerLens 3.x loads only the models it knows by name, and `{name}` is not one",
            "name the model's directory in quotes (for a cached model, its snapshot folder), or use "
            "TransformerLens 4 (pip install 'transformer-lens>=4,<5'), which loads any cached name") from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = HookedTransformer.from_pretrained(name, device=device, dtype=dtype)
    except Exception as err:  # noqa: BLE001 - the hub and TL raise many kinds; all mean "not here"
        raise ModelLoadError(
            f"cannot load pretrained `{name}` offline ({type(err).__name__})",
            f"download it once where there is network (python -c \"import transformer_lens as t; "
            f"t.HookedTransformer.from_pretrained('{name}')\") so it is in the Hugging Face cache, "
            "or name a checkpoint directory in quotes") from None
    model.eval()
    return TransformerLensBackend(model, name, shape)


def _neutral_view(path: Path, workdir: Path) -> Path:
    """A view of the Hugging Face directory `path` that TransformerLens 3.x reads as it
    should: a neutrally named folder (3.x picks an architecture from a path containing
    "llama" or "gemma") of links to its files, with `n_ctx` added to a GPT-2 config.json
    (transformers 5 no longer writes it; 3.x needs it). The user's files are not touched."""
    view = workdir / "0"
    view.mkdir()
    config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    if config.get("model_type") == "gpt2" and "n_ctx" not in config:
        config["n_ctx"] = config.get("n_positions", 1024)
    (view / "config.json").write_text(json.dumps(config), encoding="utf-8")
    for item in path.iterdir():
        if item.name != "config.json":
            (view / item.name).symlink_to(item.resolve())
    return view


@contextlib.contextmanager
def _digits_only_directory():
    """A fresh temporary directory whose path adds only digits to the temp folder's
    (3.x matches names such as "t5" or "llama" anywhere in a model's path)."""
    base = Path(tempfile.gettempdir())
    for _ in range(100):
        candidate = base / str(secrets.randbelow(10**12))
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        try:
            yield candidate
        finally:
            shutil.rmtree(candidate, ignore_errors=True)
        return
    raise ModelLoadError(f"cannot make a temporary directory in {base}")


def load_hf_directory(path: Path, name: str, device: str | torch.device = "cpu",
                      dtype: torch.dtype = torch.float32) -> TransformerLensBackend:
    """A Hugging Face directory as `save_pretrained` writes it (config.json with a
    `model_type`, safetensors weights, tokenizer files), offline, through TransformerLens
    3.x's config and weight conversion (no weight processing: logits are the Hugging Face
    model's)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    HookedTransformer, _ = _quiet_import()
    from transformer_lens.loading_from_pretrained import (fill_missing_keys, get_pretrained_model_config,
                                                          get_pretrained_state_dict)

    config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    if str(config.get("model_type", "")).startswith("gemma"):
        raise ModelLoadError(f"TransformerLens 3.x cannot load the Gemma model in {path} from a local directory",
                             "use TransformerLens 4 (pip install 'transformer-lens>=4,<5'), whose bridge loads it")
    with _digits_only_directory() as workdir:
        view = _neutral_view(path, workdir)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                cfg = get_pretrained_model_config(str(view), device=str(device), dtype=dtype)
                model = HookedTransformer(cfg)
                state = fill_missing_keys(model, get_pretrained_state_dict(str(view), cfg, dtype=dtype))
        except Exception as err:  # noqa: BLE001 - transformers and TL raise many kinds for a bad directory
            raise ModelLoadError(f"cannot load the Hugging Face model in {path} ({type(err).__name__}: "
                                 f"{str(err).splitlines()[0][:200] if str(err) else ''})",
                                 "a Hugging Face directory holds config.json, model.safetensors and the "
                                 "tokenizer files, as save_pretrained writes them") from None
    _load_state(model, state, f"the weights in {path}")
    model.eval()
    return TransformerLensBackend(model, name, shape_from_config(config, name))

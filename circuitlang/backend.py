"""The model backend: load a TransformerLens `HookedTransformer` by the name a .circ uses,
and the one table of hook names the engines use.

Kept small on purpose (load, shape, hook names, per-sender outputs) so that a
`TransformerBridge` backend can be added beside it. Importing this module imports
torch but not transformer_lens; `load_model` imports it (about 4 s).

Names: `zoo:NAME` (built in code, circuitlang.zoo), a TransformerLens pretrained name
such as `gpt2` (from the local Hugging Face cache only when HF_HUB_OFFLINE=1), or a
checkpoint directory with `config.json` (HookedTransformerConfig fields) and
`model.safetensors` (its state dict).
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from .graph import EMBED, Node
from .paths import is_dir, is_file
from .models import ALIASES, KNOWN_SHAPES, ModelShape, shape_from_config

if TYPE_CHECKING:
    from transformer_lens import HookedTransformer


class ModelLoadError(Exception):
    """A model that cannot be had; the message says why and `help` how to get it."""

    def __init__(self, message: str, help: str | None = None):
        super().__init__(message)
        self.help = help


# The one table of hook names (TransformerLens 3.x HookedTransformer).
HOOKS = {
    "embed": "hook_embed",
    "pos_embed": "hook_pos_embed",
    "z": "blocks.{layer}.attn.hook_z",
    "q_input": "blocks.{layer}.hook_q_input",
    "k_input": "blocks.{layer}.hook_k_input",
    "v_input": "blocks.{layer}.hook_v_input",
    "mlp_in": "blocks.{layer}.hook_mlp_in",
    "mlp_out": "blocks.{layer}.hook_mlp_out",
    "resid_pre": "blocks.{layer}.hook_resid_pre",
    "resid_post": "blocks.{layer}.hook_resid_post",
}


def hook(name: str, layer: int | None = None) -> str:
    return HOOKS[name].format(layer=layer)


@dataclass
class LoadedModel:
    """A model ready for evaluation, with the shape static checks used."""

    model: "HookedTransformer"
    name: str
    shape: ModelShape

    @property
    def device(self) -> torch.device:
        return self.model.cfg.device if isinstance(self.model.cfg.device, torch.device) else \
            torch.device(self.model.cfg.device or "cpu")


def _quiet_import():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import transformer_lens  # noqa: F401
        from transformer_lens import HookedTransformer, HookedTransformerConfig
    return HookedTransformer, HookedTransformerConfig


def unembed(model: "HookedTransformer", resid: torch.Tensor) -> torch.Tensor:
    """Logits from the normalised final residual stream, as `model.unembed` computes them.

    TransformerLens 3.x's Unembed copies W_U's transpose on every call (to match
    Hugging Face's bfloat16 accumulation order); for GPT-2 that copy, 154 MB, costs
    68-88 ms on two CPU cores (bench/bench_discovery.py), more than unembedding a batch's
    END positions. The transposed view gives the same product without it (float
    rounding aside).
    """
    return torch.nn.functional.linear(resid, model.W_U.T, model.b_U)


def shape_of(model: "HookedTransformer", name: str) -> ModelShape:
    cfg = model.cfg
    return ModelShape(name, cfg.n_layers, cfg.n_heads, cfg.d_model, bool(cfg.attn_only),
                      bool(getattr(cfg, "parallel_attn_mlp", False)), "loaded")


def load_model(name: str, quoted: bool = False, base_dir: Path | None = None, device: str = "cpu",
               dtype: torch.dtype = torch.float32) -> LoadedModel:
    """Load the model a `model` line names. Raises ModelLoadError with a way out."""
    base_dir = base_dir or Path.cwd()
    if name.startswith("zoo:") and not quoted:
        from . import zoo

        key = name[len("zoo:"):]
        if key not in zoo.names():
            raise ModelLoadError(f"no zoo model `{name}`", f"the zoo has: {', '.join(zoo.names())}")
        model = zoo.build(key, device=device, dtype=dtype)
        return LoadedModel(model, name, shape_of(model, name))
    path = Path(name) if Path(name).is_absolute() else base_dir / name
    if quoted or is_dir(path):
        return _load_checkpoint(path, name, device, dtype)
    return _load_pretrained(ALIASES.get(name, name), device, dtype)


def _load_checkpoint(path: Path, name: str, device: str, dtype: torch.dtype) -> LoadedModel:
    HookedTransformer, HookedTransformerConfig = _quiet_import()
    config_path, weights_path = path / "config.json", path / "model.safetensors"
    if not is_file(config_path) or not is_file(weights_path):
        raise ModelLoadError(f"checkpoint `{name}` needs config.json and model.safetensors in {path}")
    try:
        fields = json.loads(config_path.read_text(encoding="utf-8"))
        cfg = HookedTransformerConfig(**{**fields, "device": device, "dtype": dtype})
    except (TypeError, ValueError, json.JSONDecodeError) as err:
        raise ModelLoadError(f"config.json of `{name}` is not a valid HookedTransformerConfig: {err}") from None
    from safetensors.torch import load_file

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = HookedTransformer(cfg)
    state = load_file(str(weights_path), device=str(device))
    missing, unexpected = model.load_state_dict(state, strict=False)
    real_missing = [k for k in missing if not k.endswith(("IGNORE", "mask"))]
    if real_missing or unexpected:
        raise ModelLoadError(f"model.safetensors of `{name}` does not fit its config: "
                             f"missing {real_missing[:3]}, unexpected {list(unexpected)[:3]}")
    model.eval()
    return LoadedModel(model, name, shape_from_config(fields, name))


def _load_pretrained(name: str, device: str, dtype: torch.dtype) -> LoadedModel:
    if os.environ.get("HF_HUB_OFFLINE") != "1":
        # Without this the hub client retries a missing download for ~23 s.
        os.environ["HF_HUB_OFFLINE"] = "1"
    HookedTransformer, _ = _quiet_import()
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
    shape = KNOWN_SHAPES.get(name) or shape_of(model, name)
    return LoadedModel(model, name, shape)


# ---------------------------------------------------------------------------------
# Sender outputs: what each node writes into the residual stream on some input.
# ---------------------------------------------------------------------------------


@dataclass
class SenderCache:
    """What every sender writes on some input: `outputs` per node ([B, P, d_model] each),
    and the raw per-layer `z` ([B, P, H, d_head]) and `mlp_out` for activation patching.

    A head's output is `z @ W_O[h]` (TransformerLens's hook_result without the flag); the
    attention bias b_O belongs to no head and stays a constant of the stream.
    """

    outputs: dict[Node, torch.Tensor]
    z: list[torch.Tensor]
    mlp_out: list[torch.Tensor]

    def map(self, fn) -> "SenderCache":
        """The same cache with `fn` applied to every tensor (e.g. a mean over examples)."""
        return SenderCache({k: fn(v) for k, v in self.outputs.items()}, [fn(z) for z in self.z],
                           [fn(m) for m in self.mlp_out])


def cache_senders(model: "HookedTransformer", tokens: torch.Tensor) -> SenderCache:
    """One cached forward pass on `tokens`, kept per sender."""
    cfg = model.cfg
    names = {hook("embed")}
    if cfg.positional_embedding_type == "standard":
        names.add(hook("pos_embed"))
    for layer in range(cfg.n_layers):
        names.add(hook("z", layer))
        if not cfg.attn_only:
            names.add(hook("mlp_out", layer))
    with torch.no_grad():
        return _senders_from_cache(model, *model.run_with_cache(tokens, names_filter=lambda n: n in names))


def _senders_from_cache(model: "HookedTransformer", _logits, cache) -> SenderCache:
    cfg = model.cfg
    out: dict[Node, torch.Tensor] = {}
    embed = cache[hook("embed")]
    if hook("pos_embed") in cache:
        embed = embed + cache[hook("pos_embed")]
    out[EMBED] = embed
    zs, mlps = [], []
    for layer in range(cfg.n_layers):
        z = cache[hook("z", layer)]  # [B, P, H, d_head]
        zs.append(z)
        result = torch.einsum("bphd,hdm->bphm", z, model.blocks[layer].attn.W_O)
        for head in range(cfg.n_heads):
            out[Node.attn(layer, head)] = result[:, :, head].contiguous()
        if not cfg.attn_only:
            mlps.append(cache[hook("mlp_out", layer)])
            out[Node.mlp(layer)] = mlps[-1]
    return SenderCache(out, zs, mlps)

"""Models as a .circ file names them: the reference (`ModelRef`) and shapes known
without weights, so that static checks need no torch.

A `model` line names a zoo model (`zoo:NAME`), a model of the shipped table below (a
TransformerLens or Hugging Face name: `gpt2`, `pythia-1b`, `Qwen/Qwen2.5-0.5B`), a
Hugging Face name found in the local Hugging Face cache (read offline: the cached
`config.json`), or a checkpoint directory with a `config.json`: Hugging Face fields as
`save_pretrained` writes them, or HookedTransformerConfig fields. Config files are read
with the json module only. The zoo's entries must match what `circuitlang.eval.zoo`
builds (a test holds them together).

>>> shape = KNOWN_SHAPES["gpt2"]
>>> (shape.n_layers, shape.n_heads, shape.d_model)
(12, 12, 768)
>>> gemma = KNOWN_SHAPES[ALIASES["gemma-2-2b"]]
>>> (gemma.n_heads, gemma.n_kv_heads, gemma.d_head)
(8, 4, 256)
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from .diagnostics import did_you_mean
from .errors import CircuitlangError
from .paths import is_dir, is_file
from .shapes import ModelShape
from .spans import NO_SPAN, Span


@dataclass(frozen=True)
class ModelRef:
    """The model a `model` line names: the name as written, whether it was quoted (a
    quoted name is always a checkpoint directory), and the folder relative paths start
    from (the file's). Static checks resolve it to a shape; the evaluator loads it."""

    name: str
    quoted: bool = False
    base_dir: Path = field(default=Path("."), compare=False)
    span: Span = field(default=NO_SPAN, compare=False)

    @property
    def is_zoo(self) -> bool:
        return self.name.startswith("zoo:") and not self.quoted

    def path(self) -> Path:
        """Where a checkpoint directory of this name would be."""
        return Path(self.name) if Path(self.name).is_absolute() else self.base_dir / self.name


# ---------------------------------------------------------------------------------
# The shipped table
# ---------------------------------------------------------------------------------

_ALIASES_OF: dict[str, tuple[str, ...]] = {}


def _shape(name: str, layers: int, heads: int, d_model: int, source: str, *, kv: int = 0, d_head: int = 0,
           attn_only: bool = False, parallel: bool = False, aliases: tuple[str, ...] = ()) -> ModelShape:
    if aliases:
        _ALIASES_OF[name] = aliases
    return ModelShape(name, layers, heads, d_model, attn_only=attn_only, parallel_attn_mlp=parallel,
                      source=source, d_head=d_head, n_kv_heads=kv)


def _pythia(size: str, folder: str, layers: int, heads: int, d_model: int) -> ModelShape:
    # Numbers from the training configs in github.com/EleutherAI/pythia (models/*/pythia-*.yml,
    # the table in its README): GPT-NeoX with "gpt-j-residual": true, a parallel residual.
    return _shape(f"pythia-{size}", layers, heads, d_model,
                  f"shipped table: EleutherAI/pythia models/{folder}/pythia-{size}.yml",
                  parallel=True, aliases=(f"EleutherAI/pythia-{size}",))


def _hf(repo: str, layers: int, heads: int, d_model: int, *, kv: int, d_head: int, alias: str) -> ModelShape:
    return _shape(repo, layers, heads, d_model, f"shipped table: config.json of {repo}", kv=kv, d_head=d_head,
                  aliases=(alias,))


KNOWN_SHAPES: dict[str, ModelShape] = {
    s.name: s
    for s in [
        # GPT-2 (config.json of openai-community/gpt2*: n_layer, n_head, n_embd).
        _shape("gpt2", 12, 12, 768, "shipped table: config.json of openai-community/gpt2 (GPT-2 small)",
               aliases=("gpt2-small",)),
        _shape("gpt2-medium", 24, 16, 1024, "shipped table: config.json of openai-community/gpt2-medium"),
        _shape("gpt2-large", 36, 20, 1280, "shipped table: config.json of openai-community/gpt2-large"),
        _shape("gpt2-xl", 48, 25, 1600, "shipped table: config.json of openai-community/gpt2-xl"),
        # TransformerLens's own small models (HookedTransformerConfig on the Hub).
        _shape("attn-only-1l", 1, 8, 512, "shipped table: TransformerLens NeelNanda/Attn_Only_1L512W_C4_Code",
               attn_only=True),
        _shape("attn-only-2l", 2, 8, 512, "shipped table: TransformerLens NeelNanda/Attn_Only_2L512W_C4_Code",
               attn_only=True),
        _shape("attn-only-3l", 3, 8, 512, "shipped table: TransformerLens NeelNanda/Attn_Only_3L512W_C4_Code",
               attn_only=True),
        _shape("attn-only-4l", 4, 8, 512, "shipped table: TransformerLens NeelNanda/Attn_Only_4L512W_C4_Code",
               attn_only=True),
        _shape("redwood_attn_2l", 2, 8, 256, "shipped table: TransformerLens ArthurConmy/redwood_attn_2l",
               attn_only=True),
        # The Pythia suite (GPT-NeoX: attention and MLP in parallel).
        _pythia("14m", "14M", 6, 4, 128),
        _pythia("31m", "31M", 6, 8, 256),
        _pythia("70m", "70M", 6, 8, 512),
        _pythia("160m", "160M", 12, 12, 768),
        _pythia("410m", "410M", 24, 16, 1024),
        _pythia("1b", "1B", 16, 8, 2048),
        _pythia("1.4b", "1.4B", 24, 16, 2048),
        _pythia("2.8b", "2.8B", 32, 32, 2560),
        _pythia("6.9b", "6.9B", 32, 32, 4096),
        _pythia("12b", "12B", 36, 40, 5120),
        # Qwen2.5 (grouped-query attention; head_dim = hidden_size / num_attention_heads).
        _hf("Qwen/Qwen2.5-0.5B", 24, 14, 896, kv=2, d_head=64, alias="qwen2.5-0.5b"),
        _hf("Qwen/Qwen2.5-1.5B", 28, 12, 1536, kv=2, d_head=128, alias="qwen2.5-1.5b"),
        _hf("Qwen/Qwen2.5-3B", 36, 16, 2048, kv=2, d_head=128, alias="qwen2.5-3b"),
        _hf("Qwen/Qwen2.5-7B", 28, 28, 3584, kv=4, d_head=128, alias="qwen2.5-7b"),
        # Gemma 2 (head_dim 256, not hidden_size / num_attention_heads).
        _hf("google/gemma-2-2b", 26, 8, 2304, kv=4, d_head=256, alias="gemma-2-2b"),
        _hf("google/gemma-2-9b", 42, 16, 3584, kv=8, d_head=256, alias="gemma-2-9b"),
        # Llama 3.1 / 3.2.
        _hf("meta-llama/Llama-3.1-8B", 32, 32, 4096, kv=8, d_head=128, alias="llama-3.1-8b"),
        _hf("meta-llama/Llama-3.2-1B", 16, 32, 2048, kv=8, d_head=64, alias="llama-3.2-1b"),
        _hf("meta-llama/Llama-3.2-3B", 28, 24, 3072, kv=8, d_head=128, alias="llama-3.2-3b"),
        # OLMo 2 (full multi-head attention).
        _hf("allenai/OLMo-2-0425-1B", 16, 16, 2048, kv=16, d_head=128, alias="olmo-2-1b"),
        _hf("allenai/OLMo-2-1124-7B", 32, 32, 4096, kv=32, d_head=128, alias="olmo-2-7b"),
        # The zoo: models built in code with known circuits (see docs/evaluation.md).
        _shape("zoo:induction-2l", 2, 4, 128, "zoo: hand-set induction circuit", attn_only=True),
        _shape("zoo:mlp-planted", 2, 2, 32, "zoo: hand-set circuit through an MLP"),
        _shape("zoo:gpt2-random", 12, 12, 768, "zoo: random weights in GPT-2-small shape"),
        _shape("zoo:induction-trained", 2, 4, 64, "zoo: trained on induction, circuit found by patching",
               attn_only=True),
    ]
}

# Names users are likely to write for the same models (each the same weights as its target).
ALIASES: dict[str, str] = {alias: name for name, aliases in _ALIASES_OF.items() for alias in aliases}


def aliases_of(name: str) -> tuple[str, ...]:
    """The other names of a model in the table (`EleutherAI/pythia-1b` for `pythia-1b`)."""
    return _ALIASES_OF.get(name, ())


class ShapeError(CircuitlangError):
    """A `model` line that does not name a model whose shape can be known; `code` is the
    diagnostic it becomes."""

    def __init__(self, message: str, help: str | None = None, code: str = "E203"):
        super().__init__(message, help)
        self.code = code


# ---------------------------------------------------------------------------------
# Shapes from config.json
# ---------------------------------------------------------------------------------

# Hugging Face `model_type`s read here: the keys of layers, query heads and d_model; the
# key of key/value heads (None: as many as query heads) and the default d_head when
# config.json has no `head_dim` (None: d_model / heads).
_HF_GPT2 = ("n_layer", "n_head", "n_embd", None, None)
_HF_NEOX = ("num_hidden_layers", "num_attention_heads", "hidden_size", None, None)
_HF_LLAMA = ("num_hidden_layers", "num_attention_heads", "hidden_size", "num_key_value_heads", None)
_HF_GEMMA = ("num_hidden_layers", "num_attention_heads", "hidden_size", "num_key_value_heads", 256)
HF_MODEL_TYPES: dict[str, tuple] = {
    "gpt2": _HF_GPT2, "gpt_neox": _HF_NEOX, "llama": _HF_LLAMA, "qwen2": _HF_LLAMA, "olmo2": _HF_LLAMA,
    "gemma": _HF_GEMMA, "gemma2": _HF_GEMMA, "gemma3_text": _HF_GEMMA,
}
# What a multimodal Gemma 3 config's `text_config` leaves out means Gemma3TextConfig's
# defaults (the Hub's google/gemma-3-*b configs rely on this for their heads).
_GEMMA3_TEXT_DEFAULTS = {"num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 256}
_HOOKED_FIELDS = ("n_layers", "n_heads", "d_model")


# The most circuitlang takes of each size: beyond them a config is a typo or a hostile
# file, not a model (the largest published models have about 126 layers, 128 heads and
# d_model 16384), and enumerating its components or allocating its weights would never end.
SIZE_LIMITS: dict[str, int] = {
    **dict.fromkeys(("n_layers", "n_layer", "num_hidden_layers"), 1024),
    **dict.fromkeys(("n_heads", "n_head", "num_attention_heads", "num_key_value_heads", "n_key_value_heads"), 1024),
    **dict.fromkeys(("d_model", "n_embd", "hidden_size"), 1 << 17),
    **dict.fromkeys(("d_head", "head_dim"), 1 << 14),
    "d_mlp": 1 << 20, "n_ctx": 1 << 20, "d_vocab": 1 << 22,
}


def _size_problem(key: str, raw: object, present: bool) -> str | None:
    """What is wrong with size field `key` of a config (None: a positive integer within
    its limit), as a phrase naming the field."""
    if not present:
        return f"`{key}` is missing"
    if isinstance(raw, float) and not math.isfinite(raw):
        shown = "a number beyond a float's range" if raw == raw else "not a number"
    elif isinstance(raw, (str, int, float, bool, type(None))):
        shown = json.dumps(raw)[:20]
    else:
        shown = f"a JSON {'array' if isinstance(raw, list) else 'object'}"
    value = raw
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        return f"`{key}` (= {shown}) is not a positive integer"
    if value > SIZE_LIMITS.get(key, 1 << 20):
        return f"`{key}` (= {shown}) is more than {SIZE_LIMITS.get(key, 1 << 20)}, the most circuitlang takes"
    return None


def _fields(config: dict, keys: tuple[str, ...], label: str, kind: str, optional: tuple[str, ...] = ()) -> dict:
    """The positive integers `keys` (all required) and `optional` (None when absent or null)
    of `config`; ShapeError E210 naming every missing, invalid or too large one."""
    found, bad = {}, []
    for key in keys + optional:
        raw = config.get(key)
        problem = None if key in optional and raw is None else _size_problem(key, raw, key in config)
        if problem:
            bad.append(problem)
        found[key] = None if problem or raw is None else int(raw)
    if bad:
        raise ShapeError(f"{label}: {'; '.join(bad)}",
                         f"a {kind} config.json needs positive integers {', '.join(keys)}", "E210")
    return found


def _check_heads(label: str, heads: int, kv: int, d_model: int, d_head: int | None) -> None:
    if heads % kv:
        raise ShapeError(f"{label}: {heads} attention heads do not split into {kv} key/value heads",
                         "the number of attention heads must be a multiple of the number of key/value heads",
                         "E210")
    if d_head is None and d_model % heads:
        raise ShapeError(f"{label}: d_model {d_model} is not a multiple of {heads} heads",
                         "give the head size as `head_dim`", "E210")


def _hf_shape(config: dict, name: str, label: str, model_type: str) -> ModelShape:
    kind = f"Hugging Face {model_type}"
    layers_key, heads_key, width_key, kv_key, default_d_head = HF_MODEL_TYPES[model_type]
    optional = (kv_key, "head_dim") if kv_key else ("head_dim",)
    got = _fields(config, (layers_key, heads_key, width_key), label, kind, optional)
    heads, d_model = got[heads_key], got[width_key]
    kv = (got[kv_key] if kv_key else None) or heads
    d_head = got["head_dim"] or default_d_head
    _check_heads(label, heads, kv, d_model, d_head)
    parallel = model_type == "gpt_neox" and config.get("use_parallel_residual", True) is not False
    return ModelShape(name, got[layers_key], heads, d_model, parallel_attn_mlp=parallel,
                      source=f"Hugging Face config.json ({model_type})", d_head=d_head or 0, n_kv_heads=kv)


def shape_from_config(config: dict, name: str, where: Path | str | None = None) -> ModelShape:
    """A shape from a `config.json`: a Hugging Face one (by its `model_type`: gpt2,
    gpt_neox, llama, qwen2, olmo2, gemma, gemma2, gemma3_text, or a multimodal config whose
    `text_config` is one of these, as Gemma 3's), or HookedTransformerConfig fields
    (`n_layers`, `n_heads`, `d_model`). Every size must be a positive integer within
    `SIZE_LIMITS`. Raises ShapeError E210 naming each bad field, and the file (`where`)."""
    label = f"config.json of `{name}`" + (f" ({where})" if where else "")
    if "model_type" in config:
        model_type = config["model_type"]
        if not isinstance(model_type, str):
            raise ShapeError(f"{label} has a `model_type` that is not a string", None, "E210")
        text = config.get("text_config")
        if model_type not in HF_MODEL_TYPES and isinstance(text, dict):
            inner_type = text.get("model_type") or ("gemma3_text" if model_type == "gemma3" else None)
            if isinstance(inner_type, str) and inner_type in HF_MODEL_TYPES:
                defaults = _GEMMA3_TEXT_DEFAULTS if inner_type == "gemma3_text" else {}
                shape = _hf_shape({**defaults, **{k: v for k, v in text.items() if v is not None}}, name,
                                  label, inner_type)
                return replace(shape, source=f"Hugging Face config.json ({model_type}, text_config {inner_type})")
        if model_type not in HF_MODEL_TYPES:
            raise ShapeError(f"{label} is a Hugging Face `{model_type[:40]}` model, "
                             "whose layout circuitlang does not read",
                             f"circuitlang reads the model types {', '.join(HF_MODEL_TYPES)}", "E210")
        return _hf_shape(config, name, label, model_type)
    if not any(key in config for key in _HOOKED_FIELDS):
        raise ShapeError(f"{label} is neither a Hugging Face config (no `model_type`) "
                         "nor HookedTransformerConfig fields (no n_layers, n_heads, d_model)",
                         "a checkpoint directory holds config.json as save_pretrained or TransformerLens "
                         "writes it", "E210")
    got = _fields(config, _HOOKED_FIELDS, label, "HookedTransformerConfig",
                  ("d_head", "n_key_value_heads", "d_mlp", "n_ctx", "d_vocab"))
    heads, kv = got["n_heads"], got["n_key_value_heads"] or got["n_heads"]
    _check_heads(label, heads, kv, got["d_model"], got["d_head"])
    return ModelShape(
        name=name, n_layers=got["n_layers"], n_heads=heads, d_model=got["d_model"],
        attn_only=bool(config.get("attn_only", False)),
        parallel_attn_mlp=bool(config.get("parallel_attn_mlp", False)),
        source="checkpoint config.json (HookedTransformerConfig fields)",
        d_head=got["d_head"] or 0, n_kv_heads=kv,
    )


def read_config(config_path: Path, name: str) -> dict:
    """A config.json as a dict; ShapeError E210 when it cannot be read, is not JSON (or is
    nested too deeply for the json module), or is not an object."""
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise ShapeError(f"cannot read {config_path}: {err}", None, "E210") from None
    except RecursionError:
        raise ShapeError(f"cannot read {config_path}: its JSON is nested too deeply",
                         "a config.json is a flat object of model settings", "E210") from None
    if not isinstance(config, dict):
        raise ShapeError(f"{config_path} is not a JSON object", None, "E210")
    return config


# ---------------------------------------------------------------------------------
# A checkpoint's weights against its config (HookedTransformerConfig checkpoints)
# ---------------------------------------------------------------------------------

_MAX_HEADER = 100_000_000  # bytes; the safetensors library refuses larger headers too


def safetensors_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """The shape of each tensor in a safetensors file, read from its header (8 bytes of
    little-endian length, then JSON) without loading the weights or torch. ShapeError
    E210 when the file is not a whole safetensors file."""
    def broken(why: str) -> ShapeError:
        return ShapeError(f"{path} is not a valid safetensors file ({why})",
                          "write the weights again with safetensors' save_file", "E210")
    try:
        with open(path, "rb") as handle:
            total = os.fstat(handle.fileno()).st_size
            size = int.from_bytes(handle.read(8), "little")
            if total < 8 or not 2 <= size <= min(total - 8, _MAX_HEADER):
                raise broken("its header length does not fit the file")
            header = json.loads(handle.read(size).decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as err:
        raise broken(f"{type(err).__name__}: {str(err)[:80]}") from None
    if not isinstance(header, dict):
        raise broken("its header is not a JSON object")
    shapes, end = {}, 0
    for key, info in header.items():
        if key == "__metadata__":
            continue
        shape = info.get("shape") if isinstance(info, dict) else None
        offsets = info.get("data_offsets") if isinstance(info, dict) else None
        if not (isinstance(shape, list) and all(isinstance(n, int) and n >= 0 for n in shape)
                and isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(n, int) for n in offsets)):
            raise broken(f"tensor `{key[:60]}` has no valid shape and offsets")
        shapes[key], end = tuple(shape), max(end, offsets[1])
    if end != total - 8 - size:
        raise broken(f"it holds {total - 8 - size} bytes of data where its header describes {end}")
    return shapes


# The norm weights each `normalization_type` has (TransformerLens's layout).
_NORM_WEIGHTS = {"LN": (True, True), "RMS": (True, False), "LNPre": (False, False), "RMSPre": (False, False),
                 None: (False, False)}
_NORM_FIX = {(True, True): '"LN"', (True, False): '"RMS"',
             (False, False): 'null (no normalization) or "LNPre" (LayerNorm with its weights folded in)'}


def _norm_problem(config: dict, tensors: dict) -> tuple[str, str] | None:
    """Where `normalization_type` (TransformerLens's default "LN" when absent) disagrees
    with the norm weights of block 0: (problem, help)."""
    declared = config.get("normalization_type", "LN")
    if declared not in _NORM_WEIGHTS:
        return (f"`normalization_type` (= {json.dumps(declared)[:20]}) is not one of LN, RMS, LNPre, RMSPre, null",
                "set it to the normalization the model was trained with")
    has = ("blocks.0.ln1.w" in tensors, "blocks.0.ln1.b" in tensors)
    if _NORM_WEIGHTS[declared] == has or has not in _NORM_FIX:
        return None
    said = f"(= {json.dumps(declared)})" if "normalization_type" in config else \
        '(absent, which TransformerLens reads as "LN")'
    weights = {(True, True): "LayerNorm weights and biases", (True, False): "RMSNorm weights without biases",
               (False, False): "no norm weights"}[has]
    return (f"`normalization_type` {said} does not fit the weights, which have {weights} (blocks.0.ln1)",
            f'set "normalization_type": {_NORM_FIX[has]} in config.json')


# TransformerLens's positional embeddings (anything else would silently be none in 3.x).
_POSITIONAL = ("standard", "rotary", "shortformer", "alibi")


def _weight_problems(config: dict, shape: ModelShape, tensors: dict) -> list[str]:
    """Config fields the tensor shapes contradict, each naming the field."""
    problems = []
    blocks = {int(m.group(1)) for key in tensors if (m := re.match(r"blocks\.(\d+)\.", key))}
    if len(blocks) != shape.n_layers:
        problems.append(f"`n_layers` (= {shape.n_layers}) but the weights hold {len(blocks)} blocks")
    expected = {
        "embed.W_E": ((config.get("d_vocab"), "d_vocab"), (shape.d_model, "d_model")),
        "pos_embed.W_pos": ((config.get("n_ctx"), "n_ctx"), (shape.d_model, "d_model")),
        "blocks.0.attn.W_Q": ((shape.n_heads, "n_heads"), (shape.d_model, "d_model"), (shape.d_head, "d_head")),
        "blocks.0.mlp.W_in": ((shape.d_model, "d_model"), (config.get("d_mlp"), "d_mlp")),
        "unembed.W_U": ((shape.d_model, "d_model"), (config.get("d_vocab"), "d_vocab")),
    }
    for key, dims in expected.items():
        got = tensors.get(key)
        if got is None or len(got) != len(dims):
            continue
        for size, (want, field_name) in zip(got, dims):
            if want is not None and want != size:
                problems.append(f"`{field_name}` (= {want}) but {key} has {size} there (shape {list(got)})")
                break
    for field_name, key in (("d_vocab", "embed.W_E"), ("n_ctx", "pos_embed.W_pos")):
        if config.get(field_name) is None and key in tensors:
            problems.append(f"`{field_name}` is missing ({key} says {tensors[key][0]})")
    w_in = tensors.get("blocks.0.mlp.W_in")
    if config.get("d_mlp") is None and w_in is not None and len(w_in) == 2 and w_in[1] != 4 * shape.d_model:
        problems.append(f"`d_mlp` is missing, which TransformerLens reads as 4 x d_model = {4 * shape.d_model}, "
                        f"but blocks.0.mlp.W_in says {w_in[1]}")
    positional = config.get("positional_embedding_type", "standard")
    if positional not in _POSITIONAL:
        problems.append(f"`positional_embedding_type` (= {json.dumps(positional)[:20]}) is not one of "
                        f"{', '.join(_POSITIONAL)}")
    elif (positional == "standard") != ("pos_embed.W_pos" in tensors):
        problems.append(f"`positional_embedding_type` (= {json.dumps(positional)}) but the weights "
                        f"{'have no' if positional == 'standard' else 'have'} pos_embed.W_pos")
    has_mlp = "blocks.0.mlp.W_in" in tensors
    if has_mlp == shape.attn_only:
        problems.append(f"`attn_only` (= {json.dumps(shape.attn_only)}) but the weights "
                        f"{'have' if has_mlp else 'have no'} MLPs")
    return problems


def check_checkpoint(config: dict, shape: ModelShape, weights_path: Path, name: str) -> None:
    """Refuse a HookedTransformerConfig checkpoint whose config.json does not fit its
    model.safetensors (read from its header only): ShapeError E210 naming the field."""
    tensors = safetensors_shapes(weights_path)
    label = f"config.json of `{name}` ({weights_path.parent / 'config.json'})"
    problems = _weight_problems(config, shape, tensors)
    if problems:
        raise ShapeError(f"{label} does not fit {weights_path.name}: {'; '.join(problems[:3])}",
                         "config.json and the weights must describe the same model: correct the field", "E210")
    norm = _norm_problem(config, tensors)
    if norm:
        raise ShapeError(f"{label}: {norm[0]}", norm[1], "E210")


def checkpoint_config(path: Path, name: str) -> tuple[dict, ModelShape]:
    """The config and shape of the checkpoint directory `path`, checked: sizes valid and
    within bounds, and, for HookedTransformerConfig fields with a model.safetensors, fitting
    the weights. ShapeError E210 naming the field and the file otherwise."""
    config_path = path / "config.json"
    config = read_config(config_path, name)
    shape = shape_from_config(config, name, config_path)
    weights_path = path / "model.safetensors"
    if "model_type" not in config and is_file(weights_path):
        check_checkpoint(config, shape, weights_path, name)
    return config, shape


# ---------------------------------------------------------------------------------
# The local Hugging Face cache (offline; no huggingface_hub)
# ---------------------------------------------------------------------------------

# A Hub repository id: `name` or `org/name`, of letters, digits, `-`, `_`, `.`.
_REPO_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9][A-Za-z0-9_.-]*)?")


def hf_hub_cache() -> Path:
    """The Hugging Face hub cache folder, as huggingface_hub finds it: `$HF_HUB_CACHE`,
    else `$HF_HOME/hub`, else `$XDG_CACHE_HOME/huggingface/hub`, else
    `~/.cache/huggingface/hub`."""
    env = os.environ
    explicit = env.get("HF_HUB_CACHE") or env.get("HUGGINGFACE_HUB_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    if env.get("HF_HOME"):
        return Path(env["HF_HOME"]).expanduser() / "hub"
    base = Path(env["XDG_CACHE_HOME"]).expanduser() if env.get("XDG_CACHE_HOME") else Path.home() / ".cache"
    return base / "huggingface" / "hub"


def _newest(paths: list[Path]) -> Path | None:
    def mtime(path: Path) -> float:
        try:
            return path.stat().st_mtime
        except OSError:
            return 0.0
    return max(paths, key=mtime, default=None)


def cached_config(repo_id: str, cache: Path | None = None) -> Path | None:
    """The `config.json` of Hub model `repo_id` in the local Hugging Face cache
    (`models--ORG--NAME/snapshots/REVISION/config.json`: the revision `refs/main` names,
    else the newest snapshot), or None. The folder is matched ignoring case, as the Hub
    matches names. Never raises and never touches the network."""
    if not _REPO_ID.fullmatch(repo_id) or ".." in repo_id or "--" in repo_id:
        return None
    cache = hf_hub_cache() if cache is None else cache
    folder = cache / ("models--" + repo_id.replace("/", "--"))
    if not is_dir(folder):
        try:
            wanted = folder.name.lower()
            folder = next((p for p in cache.iterdir() if p.name.lower() == wanted and is_dir(p)), folder)
        except OSError:
            return None
    snapshots = folder / "snapshots"
    try:
        main = (folder / "refs" / "main").read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        main = ""
    if main and "/" not in main and is_file(snapshots / main / "config.json"):
        return snapshots / main / "config.json"
    try:
        found = [p / "config.json" for p in snapshots.iterdir() if is_file(p / "config.json")]
    except OSError:
        return None
    return _newest(found)


# ---------------------------------------------------------------------------------
# Applying a file to another model (`--model`)
# ---------------------------------------------------------------------------------

def shape_differences(written_for: ModelShape, other: ModelShape) -> list[str]:
    """What differs, in what a circuit's components and edges depend on (layers, query
    heads, key/value heads, MLPs), between the model a file was written for and another.
    Widths (d_model, d_head) may differ: the same components and edges exist."""
    def mlps(shape: ModelShape) -> str:
        return "no MLPs" if shape.attn_only else "MLPs"

    def grouped(shape: ModelShape) -> bool:
        return shape.n_kv_heads != shape.n_heads

    pairs = [("layers", written_for.n_layers, other.n_layers), ("heads per layer", written_for.n_heads, other.n_heads)]
    if grouped(written_for) or grouped(other):  # else the key/value heads are the heads, already named
        pairs.append(("key/value heads per layer", written_for.n_kv_heads, other.n_kv_heads))
    pairs.append(("blocks", mlps(written_for), mlps(other)))
    return [f"{label} {theirs} instead of {ours}" for label, ours, theirs in pairs if ours != theirs]


def check_fits(written_for: ModelShape, file_model: str, other: str, shape: ModelShape) -> None:
    """ShapeError E215 naming every difference when `other` (of `shape`) lacks components
    of the model a file was written for, `file_model`; nothing when it has them all."""
    differences = shape_differences(written_for, shape)
    if differences:
        raise ShapeError(f"{other} does not have the shape of {file_model}, the file's model: it has "
                         f"{'; '.join(differences)}",
                         "a file's circuits can be applied to another model (a checkpoint, a retrained copy) only "
                         "when it has the same layers and heads", "E215")


def fit_override(written_for: ModelShape, file_model: str, other: ModelRef) -> ModelShape:
    """The shape of `other`, the model given with `--model` for a file about `file_model`,
    checked to fit (`check_fits`) before anything loads."""
    shape = resolve_shape(other)
    check_fits(written_for, file_model, f"--model {other.name}", shape)
    return shape


# ---------------------------------------------------------------------------------
# Resolving a `model` line
# ---------------------------------------------------------------------------------

def resolve_shape(ref: ModelRef) -> ModelShape:
    """The shape of the model a `model` line names; raises ShapeError with a helpful message.

    An unquoted name is looked up in order: the shipped table and its aliases, the local
    Hugging Face cache, then a checkpoint directory (a name with `/` or an existing
    folder). A quoted name is always a checkpoint directory."""
    name, quoted = ref.name, ref.quoted
    if not quoted:
        canonical = ALIASES.get(name, name)
        if canonical in KNOWN_SHAPES:
            return KNOWN_SHAPES[canonical]
        cached = cached_config(name)
        if cached is not None:
            shape = shape_from_config(read_config(cached, name), name, cached)
            kind = shape.source.partition(" (")[2]  # "llama)", "HookedTransformerConfig fields)"
            return replace(shape, source=f"Hugging Face cache config.json ({kind}")
    candidate = ref.path()
    if quoted or is_dir(candidate) or "/" in name:
        config_path = candidate / "config.json"
        if not is_file(config_path):
            help_ = "a checkpoint directory holds config.json and model.safetensors"
            if quoted and (ALIASES.get(name, name) in KNOWN_SHAPES or cached_config(name) is not None):
                help_ = f"a quoted name is always a directory; write `model {name}` without quotes for the model"
            elif not quoted and _REPO_ID.fullmatch(name):
                help_ = (f"`{name}` is not in `circ models` nor in the Hugging Face cache ({hf_hub_cache()}); "
                         "download it once where there is network, or name a checkpoint directory")
            raise ShapeError(f"no checkpoint at `{name}` (looked for {config_path})", help_, "E210")
        return checkpoint_config(candidate, name)[1]
    help_ = did_you_mean(name, list(KNOWN_SHAPES) + list(ALIASES)) or \
        "`circ models` lists the known models; a checkpoint directory can be named in quotes"
    raise ShapeError(f"unknown model `{name}`", help_)

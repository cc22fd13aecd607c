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


def _positive_int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return value if isinstance(value, int) and value > 0 else None


def _fields(config: dict, keys: tuple[str, ...], name: str, kind: str, optional: tuple[str, ...] = ()) -> dict:
    """The positive integers `keys` (all required) and `optional` (None when absent or null)
    of `config`; ShapeError E210 naming every missing or invalid one."""
    found, bad = {}, []
    for key in keys + optional:
        raw = config.get(key)
        value = _positive_int(raw)
        if value is None and (key in keys or raw is not None):
            bad.append(f"`{key}`" + ("" if key not in config else f" (= {json.dumps(raw)[:20]})"))
        found[key] = value
    if bad:
        raise ShapeError(f"config.json of `{name}` lacks a valid {', '.join(bad)}",
                         f"a {kind} config.json needs positive integers {', '.join(keys)}", "E210")
    return found


def _check_heads(name: str, heads: int, kv: int, d_model: int, d_head: int | None) -> None:
    if heads % kv:
        raise ShapeError(f"config.json of `{name}`: {heads} attention heads do not split into {kv} key/value heads",
                         "the number of attention heads must be a multiple of the number of key/value heads",
                         "E210")
    if d_head is None and d_model % heads:
        raise ShapeError(f"config.json of `{name}`: d_model {d_model} is not a multiple of {heads} heads",
                         "give the head size as `head_dim`", "E210")


def _hf_shape(config: dict, name: str, model_type: str) -> ModelShape:
    kind = f"Hugging Face {model_type}"
    layers_key, heads_key, width_key, kv_key, default_d_head = HF_MODEL_TYPES[model_type]
    optional = (kv_key, "head_dim") if kv_key else ("head_dim",)
    got = _fields(config, (layers_key, heads_key, width_key), name, kind, optional)
    heads, d_model = got[heads_key], got[width_key]
    kv = (got[kv_key] if kv_key else None) or heads
    d_head = got["head_dim"] or default_d_head
    _check_heads(name, heads, kv, d_model, d_head)
    parallel = model_type == "gpt_neox" and config.get("use_parallel_residual", True) is not False
    return ModelShape(name, got[layers_key], heads, d_model, parallel_attn_mlp=parallel,
                      source=f"Hugging Face config.json ({model_type})", d_head=d_head or 0, n_kv_heads=kv)


def shape_from_config(config: dict, name: str) -> ModelShape:
    """A shape from a `config.json`: a Hugging Face one (by its `model_type`: gpt2,
    gpt_neox, llama, qwen2, olmo2, gemma, gemma2, gemma3_text, or a multimodal config whose
    `text_config` is one of these, as Gemma 3's), or HookedTransformerConfig fields
    (`n_layers`, `n_heads`, `d_model`). Raises ShapeError E210 naming what is missing."""
    if "model_type" in config:
        model_type = config["model_type"]
        if not isinstance(model_type, str):
            raise ShapeError(f"config.json of `{name}` has a `model_type` that is not a string", None, "E210")
        text = config.get("text_config")
        if model_type not in HF_MODEL_TYPES and isinstance(text, dict):
            inner_type = text.get("model_type") or ("gemma3_text" if model_type == "gemma3" else None)
            if isinstance(inner_type, str) and inner_type in HF_MODEL_TYPES:
                defaults = _GEMMA3_TEXT_DEFAULTS if inner_type == "gemma3_text" else {}
                shape = _hf_shape({**defaults, **{k: v for k, v in text.items() if v is not None}}, name,
                                  inner_type)
                return replace(shape, source=f"Hugging Face config.json ({model_type}, text_config {inner_type})")
        if model_type not in HF_MODEL_TYPES:
            raise ShapeError(f"config.json of `{name}` is a Hugging Face `{model_type}` model, "
                             "whose layout circuitlang does not read",
                             f"circuitlang reads the model types {', '.join(HF_MODEL_TYPES)}", "E210")
        return _hf_shape(config, name, model_type)
    if not any(key in config for key in _HOOKED_FIELDS):
        raise ShapeError(f"config.json of `{name}` is neither a Hugging Face config (no `model_type`) "
                         "nor HookedTransformerConfig fields (no n_layers, n_heads, d_model)",
                         "a checkpoint directory holds config.json as save_pretrained or TransformerLens "
                         "writes it", "E210")
    got = _fields(config, _HOOKED_FIELDS, name, "HookedTransformerConfig", ("d_head", "n_key_value_heads"))
    heads, kv = got["n_heads"], got["n_key_value_heads"] or got["n_heads"]
    _check_heads(name, heads, kv, got["d_model"], got["d_head"])
    return ModelShape(
        name=name, n_layers=got["n_layers"], n_heads=heads, d_model=got["d_model"],
        attn_only=bool(config.get("attn_only", False)),
        parallel_attn_mlp=bool(config.get("parallel_attn_mlp", False)),
        source="checkpoint config.json (HookedTransformerConfig fields)",
        d_head=got["d_head"] or 0, n_kv_heads=kv,
    )


def _read_config(config_path: Path, name: str) -> dict:
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ShapeError(f"cannot read {config_path}: {err}", None, "E210") from None
    if not isinstance(config, dict):
        raise ShapeError(f"{config_path} is not a JSON object", None, "E210")
    return config


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
            shape = shape_from_config(_read_config(cached, name), name)
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
        return shape_from_config(_read_config(config_path, name), name)
    help_ = did_you_mean(name, list(KNOWN_SHAPES) + list(ALIASES)) or \
        "`circ models` lists the known models; a checkpoint directory can be named in quotes"
    raise ShapeError(f"unknown model `{name}`", help_)

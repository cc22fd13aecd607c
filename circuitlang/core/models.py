"""Models as a .circ file names them: the reference (`ModelRef`) and shapes known
without weights, so that static checks need no torch.

A `model` line names a zoo model (`zoo:NAME`), a TransformerLens pretrained name
(`gpt2`), or a checkpoint directory with a `config.json` (read here, with the json
module only). The table below is the source for the shapes of named models; the zoo's
entries must match what `circuitlang.eval.zoo` builds (a test holds them together).

>>> shape = KNOWN_SHAPES["gpt2"]
>>> (shape.n_layers, shape.n_heads, shape.d_model)
(12, 12, 768)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
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


def _shape(name: str, layers: int, heads: int, d_model: int, source: str, **kw: bool) -> ModelShape:
    return ModelShape(name, layers, heads, d_model, source=source, **kw)


KNOWN_SHAPES: dict[str, ModelShape] = {
    s.name: s
    for s in [
        _shape("gpt2", 12, 12, 768, "TransformerLens pretrained (GPT-2 small)"),
        _shape("gpt2-medium", 24, 16, 1024, "TransformerLens pretrained"),
        _shape("gpt2-large", 36, 20, 1280, "TransformerLens pretrained"),
        _shape("gpt2-xl", 48, 25, 1600, "TransformerLens pretrained"),
        _shape("attn-only-1l", 1, 8, 512, "TransformerLens pretrained (Neel Nanda)", attn_only=True),
        _shape("attn-only-2l", 2, 8, 512, "TransformerLens pretrained (Neel Nanda)", attn_only=True),
        _shape("attn-only-3l", 3, 8, 512, "TransformerLens pretrained (Neel Nanda)", attn_only=True),
        _shape("attn-only-4l", 4, 8, 512, "TransformerLens pretrained (Neel Nanda)", attn_only=True),
        _shape("redwood_attn_2l", 2, 8, 256, "TransformerLens pretrained (Redwood Research)", attn_only=True),
        _shape("pythia-70m", 6, 8, 512, "TransformerLens pretrained (EleutherAI)", parallel_attn_mlp=True),
        _shape("pythia-160m", 12, 12, 768, "TransformerLens pretrained (EleutherAI)", parallel_attn_mlp=True),
        _shape("pythia-410m", 24, 16, 1024, "TransformerLens pretrained (EleutherAI)", parallel_attn_mlp=True),
        # The zoo: models built in code with known circuits (see docs/evaluation.md).
        _shape("zoo:induction-2l", 2, 4, 128, "zoo: hand-set induction circuit", attn_only=True),
        _shape("zoo:mlp-planted", 2, 2, 32, "zoo: hand-set circuit through an MLP"),
        _shape("zoo:gpt2-random", 12, 12, 768, "zoo: random weights in GPT-2-small shape"),
        _shape("zoo:induction-trained", 2, 4, 64, "zoo: trained on induction, circuit found by patching",
               attn_only=True),
    ]
}

# Names users are likely to write for the same models.
ALIASES = {
    "gpt2-small": "gpt2",
    "EleutherAI/pythia-70m": "pythia-70m",
    "EleutherAI/pythia-160m": "pythia-160m",
    "EleutherAI/pythia-410m": "pythia-410m",
}


class ShapeError(CircuitlangError):
    """A `model` line that does not name a model whose shape can be known; `code` is the
    diagnostic it becomes."""

    def __init__(self, message: str, help: str | None = None, code: str = "E203"):
        super().__init__(message, help)
        self.code = code


def shape_from_config(config: dict, name: str) -> ModelShape:
    """A shape from HookedTransformerConfig fields (`n_layers`, `n_heads`, `d_model`)."""
    try:
        return ModelShape(
            name=name,
            n_layers=int(config["n_layers"]),
            n_heads=int(config["n_heads"]),
            d_model=int(config["d_model"]),
            attn_only=bool(config.get("attn_only", False)),
            parallel_attn_mlp=bool(config.get("parallel_attn_mlp", False)),
            source="checkpoint config.json",
            d_head=int(config.get("d_head") or 0),
            n_kv_heads=int(config.get("n_key_value_heads") or 0),
        )
    except (KeyError, TypeError, ValueError) as err:
        raise ShapeError(f"config.json of `{name}` lacks a valid {err}", "it needs n_layers, n_heads and d_model",
                         "E210") from None


def resolve_shape(ref: ModelRef) -> ModelShape:
    """The shape of the model a `model` line names; raises ShapeError with a helpful message."""
    name, quoted = ref.name, ref.quoted
    canonical = ALIASES.get(name, name)
    if canonical in KNOWN_SHAPES and not quoted:
        return KNOWN_SHAPES[canonical]
    candidate = ref.path()
    if quoted or is_dir(candidate) or "/" in name:
        config_path = candidate / "config.json"
        if not is_file(config_path):
            raise ShapeError(f"no checkpoint at `{name}` (looked for {config_path})",
                             "a checkpoint directory holds config.json and model.safetensors", "E210")
        try:
            config = json.loads(config_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ShapeError(f"cannot read {config_path}: {err}", None, "E210") from None
        if not isinstance(config, dict):
            raise ShapeError(f"{config_path} is not a JSON object", None, "E210")
        return shape_from_config(config, name)
    help_ = did_you_mean(name, list(KNOWN_SHAPES) + list(ALIASES)) or \
        "`circ models` lists the known models; a checkpoint directory can be named in quotes"
    raise ShapeError(f"unknown model `{name}`", help_)

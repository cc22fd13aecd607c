"""Model shapes known without weights, so that static checks need no torch.

A `model` line names a zoo model (`zoo:NAME`), a TransformerLens pretrained name
(`gpt2`), or a checkpoint directory with a `config.json` (read here, with the json
module only). The table below is the source for the shapes of named models; the zoo's
entries must match what `circuitlang.zoo` builds (a test holds them together).

>>> shape = KNOWN_SHAPES["gpt2"]
>>> (shape.n_layers, shape.n_heads, shape.d_model)
(12, 12, 768)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .graph import EMBED, LOGITS, Edge, Node
from .paths import is_dir, is_file


@dataclass(frozen=True)
class ModelShape:
    """What static checks need to know about a model: its layers, heads and block layout."""

    name: str
    n_layers: int
    n_heads: int
    d_model: int
    attn_only: bool = False
    parallel_attn_mlp: bool = False
    source: str = ""

    def heads(self) -> list[Node]:
        return [Node.attn(layer, head) for layer in range(self.n_layers) for head in range(self.n_heads)]

    def mlps(self) -> list[Node]:
        return [] if self.attn_only else [Node.mlp(layer) for layer in range(self.n_layers)]

    def all_nodes(self) -> list[Node]:
        return [EMBED, *sorted(self.heads() + self.mlps()), LOGITS]

    def describe(self) -> str:
        kind = "attention-only" if self.attn_only else "attention + MLP"
        return f"{self.n_layers} layers x {self.n_heads} heads, d_model {self.d_model}, {kind}"


def feeds(sender: Node, receiver: Node, shape: ModelShape | None) -> bool:
    """Whether `sender`'s output is a term of `receiver`'s input in the residual stream."""
    if sender.kind == "logits" or receiver.kind == "embed":
        return False
    if sender.kind == "embed" or receiver.kind == "logits":
        return True
    if sender.layer < receiver.layer:
        return True
    parallel = shape is not None and shape.parallel_attn_mlp
    return sender.layer == receiver.layer and sender.kind == "head" and receiver.kind == "mlp" and not parallel


def all_edges(shape: ModelShape) -> list[Edge]:
    """Every edge of the model: each receiver input (q, k, v of heads) from each sender feeding it."""
    nodes = shape.all_nodes()
    return [Edge(s, r, ch) for r in nodes if r.is_receiver for s in nodes
            if s.is_sender and feeds(s, r, shape) for ch in (("q", "k", "v") if r.is_head else (None,))]


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


class ShapeError(Exception):
    """A `model` line that does not name a model whose shape can be known."""

    def __init__(self, message: str, help: str | None = None, code: str = "E203"):
        super().__init__(message)
        self.help = help
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
        )
    except (KeyError, TypeError, ValueError) as err:
        raise ShapeError(f"config.json of `{name}` lacks a valid {err}", "it needs n_layers, n_heads and d_model",
                         "E210") from None


def resolve_shape(name: str, quoted: bool, base_dir: Path) -> ModelShape:
    """The shape of the model a `model` line names; raises ShapeError with a helpful message."""
    canonical = ALIASES.get(name, name)
    if canonical in KNOWN_SHAPES and not quoted:
        return KNOWN_SHAPES[canonical]
    candidate = Path(name) if Path(name).is_absolute() else base_dir / name
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
    from .diagnostics import did_you_mean

    help_ = did_you_mean(name, list(KNOWN_SHAPES) + list(ALIASES)) or \
        "`circ models` lists the known models; a checkpoint directory can be named in quotes"
    raise ShapeError(f"unknown model `{name}`", help_)

"""What the zoo's builders share: the `ZooModel` they return and a view of its weights.

A zoo model is data: HookedTransformerConfig fields and a state dict in TransformerLens
3.x's layout (`embed.W_E`, `blocks.0.attn.W_Q`, ...). Builders receive a function that
makes the blank (all-zero, float32, CPU) state dict for a config, fill it from their own
seeded generators (the global RNG is never touched) and return it; the model loader
(circuitlang.eval.loading) turns it into a backend on the device and dtype asked for.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import torch

Blank = Callable[[Mapping[str, Any]], dict[str, torch.Tensor]]


@dataclass(frozen=True)
class ZooModel:
    """A zoo model's config (HookedTransformerConfig fields) and weights (state dict)."""

    config: Mapping[str, Any]
    state: Mapping[str, torch.Tensor]


class Weights:
    """Named access to a state dict being filled: `w.W_E`, `w.attn(0).W_Q`, `w.mlp(1).W_in`."""

    _TOP = {"W_E": "embed.W_E", "W_pos": "pos_embed.W_pos", "W_U": "unembed.W_U", "b_U": "unembed.b_U"}

    def __init__(self, state: dict[str, torch.Tensor], prefix: str = ""):
        self._state, self._prefix = state, prefix

    def __getattr__(self, name: str) -> torch.Tensor:
        key = self._TOP.get(name, name) if not self._prefix else self._prefix + name
        try:
            return self._state[key]
        except KeyError:
            raise AttributeError(f"no weight {key}") from None

    def attn(self, layer: int) -> "Weights":
        return Weights(self._state, f"blocks.{layer}.attn.")

    def mlp(self, layer: int) -> "Weights":
        return Weights(self._state, f"blocks.{layer}.mlp.")


def attn_scale(config: Mapping[str, Any]) -> float:
    """What attention scores are divided by: sqrt(d_head), as TransformerLens computes it."""
    return math.sqrt(float(config["d_head"]))


def normal(generator: torch.Generator, shape: tuple[int, ...], std: float) -> torch.Tensor:
    """float32 normal noise from `generator` on the CPU (same numbers on every device)."""
    return torch.randn(shape, generator=generator, dtype=torch.float32) * std

"""Helpers shared by the zoo's model builders (TransformerLens is imported lazily)."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from transformer_lens import HookedTransformer


def blank_model(**config: Any) -> "HookedTransformer":
    """A float32 HookedTransformer on the CPU with every parameter zero, in eval mode.

    No random initialisation runs (``init_weights=False``) and the global RNG is not
    touched: the builders set every weight themselves, from their own generators, on the
    CPU in float32 (the same numbers everywhere), then `place` the model.
    """
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    cfg = HookedTransformerConfig(init_weights=False, device="cpu", dtype=torch.float32, **config)
    with warnings.catch_warnings():  # TL 3.x deprecates HookedTransformer in favour of 4.x's bridge
        warnings.simplefilter("ignore", DeprecationWarning)
        model = HookedTransformer(cfg)
    with torch.no_grad():
        for param in model.parameters():
            param.zero_()
    model.eval()
    return model


def place(model: "HookedTransformer", device: str | torch.device = "cpu",
          dtype: torch.dtype = torch.float32) -> "HookedTransformer":
    """Move a built model to `device` and `dtype`, keeping `model.cfg` in step."""
    from transformer_lens.utilities.devices import move_to_and_update_config

    if dtype != torch.float32:
        model = move_to_and_update_config(model, dtype, print_details=False)
    if torch.device(device).type != "cpu":
        model = move_to_and_update_config(model, torch.device(device), print_details=False)
    return model


def normal(generator: torch.Generator, shape: tuple[int, ...], std: float) -> torch.Tensor:
    """float32 normal noise from `generator` on the CPU (same numbers on every device)."""
    return torch.randn(shape, generator=generator, dtype=torch.float32) * std

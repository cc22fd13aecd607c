"""circuitlang: a declarative language, compiler and evaluator for transformer circuits.

The static pipeline (parse, resolve, lower, check) imports no torch. `evaluate`,
`load_model`, `check_file` and `match` load torch and TransformerLens on first use. The layers
(core, lang, present, eval, discovery, cli) are described in docs/architecture.md.

>>> import circuitlang
>>> circuitlang.compile_text("model gpt2\\ncircuit c { L9.H6 -> logits }").ok
True
"""

from __future__ import annotations

from .core.diagnostics import CircuitError, Diagnostic
from .core.errors import CircuitlangError
from .core.graph import EMBED, LOGITS, CircuitGraph, Edge, Node
from .core.positions import Position
from .core.version import __version__
from .lang.pipeline import Compiled, compile_file, compile_text, load
from .present import notebook as _notebook  # noqa: F401  (registers how circuits show in a notebook)

__all__ = [
    "__version__",
    "CircuitError",
    "CircuitlangError",
    "CircuitGraph",
    "Compiled",
    "Diagnostic",
    "EMBED",
    "Edge",
    "LOGITS",
    "Node",
    "Position",
    "check_file",
    "compile_file",
    "compile_text",
    "evaluate",
    "load",
    "load_model",
    "match",
]
_LAZY = {"evaluate": ("eval.api", "evaluate"), "load_model": ("eval.loading", "load_model"),
         "check_file": ("eval.runner", "check_file"), "match": ("discovery.match", "match")}


def __getattr__(name: str):
    """Import the evaluator (torch, TransformerLens) only when it is asked for."""
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(f".{module}", __name__), attr)
    raise AttributeError(f"module 'circuitlang' has no attribute {name!r}")

"""circuitlang: a declarative language, compiler and evaluator for transformer circuits.

The static pipeline (parse, resolve, lower, check) imports no torch. `evaluate`,
`load_model` and `check_file` load torch and TransformerLens on first use.

>>> import circuitlang
>>> circuitlang.compile_text("model gpt2\\ncircuit c { L9.H6 -> logits }").ok
True
"""

from __future__ import annotations

from .api import Compiled, compile_file, compile_text, load
from .diagnostics import CircuitError, Diagnostic
from .graph import EMBED, LOGITS, CircuitGraph, Edge, Node

__all__ = [
    "CircuitError",
    "CircuitGraph",
    "Compiled",
    "Diagnostic",
    "EMBED",
    "Edge",
    "LOGITS",
    "Node",
    "check_file",
    "compile_file",
    "compile_text",
    "evaluate",
    "load",
    "load_model",
]
__version__ = "0.1.0"

_LAZY = {"evaluate": ("evaluation", "evaluate"), "load_model": ("backend", "load_model"),
         "check_file": ("runner", "check_file")}


def __getattr__(name: str):
    """Import the evaluator (torch, TransformerLens) only when it is asked for."""
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(f".{module}", __name__), attr)
    raise AttributeError(f"module 'circuitlang' has no attribute {name!r}")

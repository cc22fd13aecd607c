"""circuitlang: a declarative language, compiler and evaluator for transformer circuits.

Everything importable from here is static (no torch): parse, resolve, lower, check.

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
    "compile_file",
    "compile_text",
    "load",
]
__version__ = "0.1.0"

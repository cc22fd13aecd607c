"""The pipeline in one call: parse -> resolve -> lower -> check, for files or text.

`compile_file` never raises on bad input: everything wrong comes back as
diagnostics in the `Compiled` result. `load` is the strict form for scripts: it
raises `CircuitError` when the file has errors.

>>> result = compile_text("model gpt2\\ncircuit c { L9.H6 -> logits }")
>>> result.ok, len(result.circuits["c"].edges), result.model_ref.name
(True, 1, 'gpt2')
"""

from __future__ import annotations

import gc
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Iterator, Mapping

from ..core.diagnostics import CircuitError, Diagnostic, has_errors, unique_sorted
from ..core.graph import CircuitGraph
from ..core.models import ModelRef
from ..core.shapes import ModelShape
from ..core.spans import Span
from .analysis import graph_warnings
from .check import CheckSpec, TaskSpec, check_program
from .lower import Lowerer, lower_program
from .parse import parse_text
from .resolve import Program, load_program, resolve_module

# Syntax errors stop the pipeline before lowering (their module is empty or partial).
_STOPPING = frozenset({"E101", "E102", "E103", "E104", "E105", "E107", "E108"})


@dataclass(frozen=True)
class Compiled:
    """What the static pipeline knows about one file: its circuits and tasks by name,
    its checks in file order, the model it names, and every diagnostic."""

    path: str
    program: Program | None
    circuits: Mapping[str, CircuitGraph] = field(default_factory=dict)
    tasks: Mapping[str, TaskSpec] = field(default_factory=dict)
    checks: tuple[CheckSpec, ...] = ()
    diagnostics: tuple[Diagnostic, ...] = ()

    @property
    def ok(self) -> bool:
        return not has_errors(self.diagnostics)

    @property
    def shape(self) -> ModelShape | None:
        return self.program.root.shape if self.program else None

    @property
    def model_ref(self) -> ModelRef | None:
        """The model the file names (None without a `model` line)."""
        return self.program.root.model_ref if self.program else None

    @property
    def model(self) -> str | None:
        return self.program.root.model_name if self.program else None

    def circuit(self, name: str | None = None) -> CircuitGraph:
        """The named circuit, or the only/last one when no name is given."""
        if name is not None:
            if name not in self.circuits:
                raise KeyError(f"no circuit `{name}` in {self.path}; it has: {', '.join(self.circuits) or 'none'}")
            return self.circuits[name]
        if not self.circuits:
            raise KeyError(f"{self.path} defines no circuit")
        return list(self.circuits.values())[-1]


def _finish(path: str, program: Program, diagnostics: list[Diagnostic], check_files: bool) -> Compiled:
    if any(d.code in _STOPPING or d.code.startswith("E00") for d in diagnostics if d.span.path == path):
        return Compiled(path, program, diagnostics=tuple(unique_sorted(diagnostics)))
    lowerer = Lowerer(program)
    circuits, _ = lower_program(program, lowerer)
    checks, tasks, check_diags = check_program(program, lowerer, check_files)
    found = diagnostics + lowerer.diagnostics + check_diags
    found += graph_warnings(program, circuits, found)
    return Compiled(path, program, MappingProxyType(circuits), MappingProxyType(tasks), tuple(checks),
                    tuple(unique_sorted(found)))


@contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while compiling. A large file allocates
    millions of small objects (tokens, spans, syntax nodes, edges) and few reference
    cycles, and the collector's repeated passes over them cost more than half the time of
    compiling a 32k-edge file (bench/bench_static.py); reference counting still frees
    everything, and the collector runs again as soon as the pipeline returns."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def compile_file(path: str | Path, check_files: bool = True) -> Compiled:
    """Run the static pipeline on a file (and what it imports)."""
    path = Path(path)
    try:
        with _cyclic_gc_paused():
            program, diagnostics = load_program(path, str(path))
            return _finish(str(path), program, diagnostics, check_files)
    except RecursionError:
        return _too_deep(str(path))


def compile_text(text: str, path: str = "<string>", base_dir: Path | None = None,
                 check_files: bool = True) -> Compiled:
    """Run the static pipeline on source text; imports resolve against `base_dir`."""
    try:
        with _cyclic_gc_paused():
            return _compile_text(text, path, base_dir, check_files)
    except RecursionError:
        return _too_deep(path)


def _compile_text(text: str, path: str, base_dir: Path | None, check_files: bool) -> Compiled:
    module, diagnostics = parse_text(text, path)
    anchor = (base_dir or Path.cwd()) / Path(path).name
    program, more = resolve_module(module, anchor)
    return _finish(path, program, diagnostics + more, check_files)


def _too_deep(path: str) -> Compiled:
    """The last line of defence of "never raises": nesting that slipped past the bounds of
    each stage (E314 in lower, E315 in resolve, MAX_NESTING in parse) is still E314."""
    return Compiled(path, None, diagnostics=(Diagnostic(
        "E314", "definitions or imports are nested too deeply to compile", Span(path, 1, 1, 1, 2),
        "in this file", "define the inner groups and circuits directly instead of through chains of names"),))


def load(path: str | Path) -> Compiled:
    """Compile a file; raise `CircuitError` (with every diagnostic) if it has errors."""
    result = compile_file(path)
    if not result.ok:
        raise CircuitError(list(result.diagnostics))
    return result

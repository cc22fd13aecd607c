"""The pipeline in one call: parse -> resolve -> lower -> check, for files or text.

`compile_file` never raises on bad input: everything wrong comes back as
diagnostics in the `Compiled` result. `load` is the strict form for scripts: it
raises `CircuitError` when the file has errors.

>>> result = compile_text("model gpt2\\ncircuit c { L9.H6 -> logits }")
>>> result.ok, len(result.circuits["c"].edges)
(True, 1)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .check import CheckSpec, TaskSpec, check_program
from .diagnostics import CircuitError, Diagnostic, has_errors, unique_sorted
from .graph import CircuitGraph
from .lower import Lowerer, lower_program
from .models import ModelShape
from .parse import parse_text
from .resolve import Program, load_program, resolve_module


@dataclass
class Compiled:
    """What the static pipeline knows about one file."""

    path: str
    program: Program | None
    circuits: dict[str, CircuitGraph] = field(default_factory=dict)
    tasks: dict[str, TaskSpec] = field(default_factory=dict)
    checks: list[CheckSpec] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not has_errors(self.diagnostics)

    @property
    def shape(self) -> ModelShape | None:
        return self.program.root.shape if self.program else None

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
    result = Compiled(path, program)
    if any(d.code in ("E101", "E102", "E103", "E104", "E105", "E107", "E108") or d.code.startswith("E00")
           for d in diagnostics if d.span.path == path):
        result.diagnostics = unique_sorted(diagnostics)
        return result
    lowerer = Lowerer(program)
    result.circuits, _ = lower_program(program, lowerer)
    result.checks, result.tasks, check_diags = check_program(program, lowerer, check_files)
    result.diagnostics = unique_sorted(diagnostics + lowerer.diagnostics + check_diags)
    return result


def compile_file(path: str | Path, check_files: bool = True) -> Compiled:
    """Run the static pipeline on a file (and what it imports)."""
    path = Path(path)
    program, diagnostics = load_program(path, str(path))
    return _finish(str(path), program, diagnostics, check_files)


def compile_text(text: str, path: str = "<string>", base_dir: Path | None = None,
                 check_files: bool = True) -> Compiled:
    """Run the static pipeline on source text; imports resolve against `base_dir`."""
    module, diagnostics = parse_text(text, path)
    anchor = (base_dir or Path.cwd()) / Path(path).name
    program, more = resolve_module(module, anchor)
    return _finish(path, program, diagnostics + more, check_files)


def load(path: str | Path) -> Compiled:
    """Compile a file; raise `CircuitError` (with every diagnostic) if it has errors."""
    result = compile_file(path)
    if not result.ok:
        raise CircuitError(result.diagnostics)
    return result

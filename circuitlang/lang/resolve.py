"""Stage 2, resolve: bind imports and names across files.

`load_program(path)` parses a file and everything it imports (each file once), binds
each file's top-level names, and reports import cycles, missing files, duplicate
definitions, unknown names and unused imports. Evaluating what the names mean (node
sets, circuits) is `lower`'s job; `Scope.lookup` is shared with it.

Imports: `import stdlib.gpt2.ioi` reads `<stdlib>/gpt2/ioi.circ` and binds `ioi`;
`import lib.motifs` reads `lib/motifs.circ` beside the importing file;
`import "path/x.circ" as x` reads a path relative to the importing file.

>>> from circuitlang.lang.parse import parse_text
>>> module, _ = parse_text("group g = L0.H1\\ncircuit c { g -> logits }")
>>> program, diagnostics = resolve_module(module)
>>> sorted(program.root.symbols)
['c', 'g']
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Union

from ..core.diagnostics import Diagnostic, Related, did_you_mean
from ..core.models import ModelRef, ShapeError, resolve_shape
from ..core.paths import data_dir, is_dir, is_file
from ..core.shapes import ModelShape
from . import syntax as S
from .parse import parse_file

BUILTIN_NODES = ("embed", "logits")
# A file importing a file importing ... deeper than this is E315: loading is recursive,
# and real libraries are a few files deep.
MAX_IMPORT_DEPTH = 32


def stdlib_root() -> Path:
    """Where `import stdlib.X` looks: $CIRCUITLANG_STDLIB, else the repository's stdlib/
    (or, installed from a wheel, the copy inside the package)."""
    override = os.environ.get("CIRCUITLANG_STDLIB")
    return Path(override) if override else data_dir("stdlib")


Definition = Union[S.GroupDef, S.CircuitDef, S.TaskDef, S.ImportDecl]


@dataclass(frozen=True)
class Symbol:
    """A top-level name of a file: a group, circuit, task or imported module."""

    kind: str  # "group" | "circuit" | "task" | "module"
    name: str
    definition: Definition
    unit: "Unit"
    target: "Unit | None" = None  # for kind == "module": the imported file


@dataclass(eq=False)
class Unit:
    """One loaded .circ file with its bindings."""

    module: S.Module
    path: Path | None
    display: str
    shape: ModelShape | None = None
    symbols: dict[str, Symbol] = field(default_factory=dict)
    used_imports: set[str] = field(default_factory=set)

    @property
    def model_name(self) -> str | None:
        decl = self.module.model
        return decl.name if decl else None

    @property
    def model_ref(self) -> ModelRef | None:
        """The model the file's (first) `model` line names, relative to the file's folder."""
        decl = self.module.model
        return ModelRef(decl.name, decl.quoted, self.base_dir, decl.span) if decl else None

    @property
    def base_dir(self) -> Path:
        return self.path.parent if self.path else Path.cwd()


@dataclass
class Program:
    """The root file and every file it reaches through imports."""

    root: Unit
    units: dict[Path, Unit] = field(default_factory=dict)


# A name in a circuit body can also be a parameter or a local group.
@dataclass(frozen=True)
class Local:
    kind: str  # "param" | "group"
    name: str
    definition: S.GroupDef | None
    span: S.Span


@dataclass
class Scope:
    """Names visible at a point: a circuit's locals over its file's top level."""

    unit: Unit
    locals: dict[str, Local] = field(default_factory=dict)
    circuit: S.CircuitDef | None = None

    def visible_names(self) -> list[str]:
        names = list(self.locals) + list(self.unit.symbols) + list(BUILTIN_NODES)
        for sym in self.unit.symbols.values():
            if sym.kind == "module" and sym.target is not None:
                names += [f"{sym.name}.{n}" for n in sym.target.symbols]
        return names

    def lookup(self, ref: S.NameRef) -> "Local | Symbol | str | None":
        """What a name refers to: a Local, a Symbol, a builtin node name, or None."""
        first, rest = ref.parts[0], ref.parts[1:]
        if not rest:
            if first in self.locals:
                return self.locals[first]
            if first in BUILTIN_NODES and first not in self.unit.symbols:
                return first
        sym = self.unit.symbols.get(first)
        if sym is not None and sym.kind == "module":
            self.unit.used_imports.add(sym.name)
        while sym is not None and rest:
            if sym.kind == "module" and sym.target is not None:
                sym, rest = sym.target.symbols.get(rest[0]), rest[1:]
                continue
            if sym.kind == "circuit" and isinstance(sym.definition, S.CircuitDef) and len(rest) == 1:
                group = _local_group(sym.definition, rest[0])
                if group is not None:
                    return Symbol("group", rest[0], group, sym.unit)
            return None
        return sym


def _local_group(circuit: S.CircuitDef, name: str) -> S.GroupDef | None:
    for stmt in circuit.body or ():
        if isinstance(stmt, S.GroupDef) and stmt.name == name:
            return stmt
    return None


def circuit_scope(unit: Unit, circuit: S.CircuitDef) -> Scope:
    """The scope inside a circuit body: its parameters and local groups."""
    scope = Scope(unit, circuit=circuit)
    for name in circuit.params or ():
        scope.locals[name] = Local("param", name, None, circuit.name_span)
    for stmt in circuit.body or ():
        if isinstance(stmt, S.GroupDef):
            scope.locals.setdefault(stmt.name, Local("group", stmt.name, stmt, stmt.name_span))
    return scope


class _Loader:
    """Loads files depth-first, each once, reporting cycles and missing files."""

    def __init__(self) -> None:
        self.units: dict[Path, Unit] = {}
        self.stack: list[Path] = []
        self.diagnostics: list[Diagnostic] = []

    def load_path(self, path: Path, display: str) -> Unit:
        key = path.resolve()
        if key in self.units:
            return self.units[key]
        module, diags = parse_file(path, display)
        self.diagnostics += diags
        return self.bind(module, key, display)

    def bind(self, module: S.Module, key: Path | None, display: str) -> Unit:
        unit = Unit(module, key, display)
        if key is not None:
            self.units[key] = unit
            self.stack.append(key)
        try:
            self._bind_model(unit)
            self._bind_names(unit)
        finally:
            if key is not None:
                self.stack.pop()
        return unit

    def _bind_model(self, unit: Unit) -> None:
        decls = [s for s in unit.module.statements if isinstance(s, S.ModelDecl)]
        for extra in decls[1:]:
            self.diagnostics.append(Diagnostic("E106", "a file declares one model", extra.span, "second `model`",
                                               related=(Related("first declared here", decls[0].span),)))
        if not decls:
            return
        ref = unit.model_ref
        assert ref is not None
        try:
            unit.shape = resolve_shape(ref)
        except ShapeError as err:
            self.diagnostics.append(Diagnostic(err.code, str(err), decls[0].span, "this model", err.help))

    def _bind_names(self, unit: Unit) -> None:
        for stmt in unit.module.statements:
            if isinstance(stmt, S.ImportDecl):
                self._bind_import(unit, stmt)
            elif isinstance(stmt, (S.GroupDef, S.CircuitDef, S.TaskDef)):
                kind = {S.GroupDef: "group", S.CircuitDef: "circuit", S.TaskDef: "task"}[type(stmt)]
                self._define(unit, Symbol(kind, stmt.name, stmt, unit), stmt.name_span)

    def _define(self, unit: Unit, sym: Symbol, span: S.Span) -> None:
        previous = unit.symbols.get(sym.name)
        if previous is not None:
            self.diagnostics.append(Diagnostic(
                "E302", f"`{sym.name}` is defined twice", span, f"second definition ({sym.kind})",
                related=(Related(f"first defined here ({previous.kind})", _name_span(previous.definition)),)))
            return
        unit.symbols[sym.name] = sym

    def _bind_import(self, unit: Unit, stmt: S.ImportDecl) -> None:
        if stmt.module is not None:
            if stmt.module[0] == "stdlib":
                root, rel = stdlib_root(), stmt.module[1:]
            else:
                root, rel = unit.base_dir, stmt.module
            target = root.joinpath(*rel).with_suffix(".circ") if rel else root
            shown = ".".join(stmt.module)
        else:
            target = unit.base_dir / (stmt.path or "")
            shown = stmt.path or ""
        alias = stmt.bound_name
        if alias is None:
            stem = Path(stmt.path or "").stem
            if not stem.isidentifier():
                self.diagnostics.append(Diagnostic("E303", f"import of \"{stmt.path}\" needs a name", stmt.span,
                                                   "no name", f"write `import \"{stmt.path}\" as NAME`"))
                return
            alias = stem
        if not is_file(target):
            help_ = self._missing_import_help(target, stmt)
            self.diagnostics.append(Diagnostic("E303", f"cannot find `{shown}` (looked for {target})", stmt.span,
                                               "not found", help_))
            return
        key = target.resolve()
        if key not in self.units and len(self.stack) >= MAX_IMPORT_DEPTH:
            self.diagnostics.append(Diagnostic(
                "E315", f"imports are nested more than {MAX_IMPORT_DEPTH} files deep", stmt.span,
                "one import too many", "import the files you need directly instead of through a chain"))
            return
        if key in self.stack:
            chain = self.stack[self.stack.index(key):] + [key]
            names = " -> ".join(p.name for p in chain)
            self.diagnostics.append(Diagnostic("E304", f"import cycle: {names}", stmt.span, "imports itself",
                                               "move what both files need into a third file"))
            return
        child = self.load_path(target, _display_path(target))
        self._define(unit, Symbol("module", alias, stmt, unit, child), stmt.span)

    @staticmethod
    def _missing_import_help(target: Path, stmt: S.ImportDecl) -> str | None:
        folder = target.parent
        if is_dir(folder):
            names = [p.stem for p in folder.glob("*.circ")]
            hint = did_you_mean(target.stem, names)
            if hint:
                return hint
        if stmt.module and stmt.module[0] == "stdlib":
            return "`circ stdlib` lists the standard library"
        return None


def _display_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _name_span(definition: Definition) -> S.Span:
    return getattr(definition, "name_span", definition.span)


# ---------------------------------------------------------------------------------
# Unknown names and unused imports: a walk over every expression of a file.
# ---------------------------------------------------------------------------------


def iter_exprs(expr: S.Expr) -> Iterator[S.Expr]:
    """Every sub-expression, depth first (expressions are at most MAX_NESTING deep)."""
    yield expr
    if isinstance(expr, S.SetOp):
        for operand in expr.operands:
            yield from iter_exprs(operand)
    elif isinstance(expr, S.Channel):
        yield from iter_exprs(expr.inner)
    elif isinstance(expr, S.Call):
        yield expr.callee
        for arg in expr.args:
            yield from iter_exprs(arg)


def body_exprs(stmt: S.BodyStmt) -> Iterator[S.Expr]:
    if isinstance(stmt, S.GroupDef):
        yield from stmt.members
    elif isinstance(stmt, S.EdgeStmt):
        yield from stmt.sources
        yield from (t.expr for t in stmt.targets)
    elif isinstance(stmt, S.NodeStmt):
        yield from stmt.nodes
    elif isinstance(stmt, S.IncludeStmt):
        yield stmt.expr


def _statement_scopes(unit: Unit) -> Iterator[tuple[Scope, S.Expr]]:
    top = Scope(unit)
    for stmt in unit.module.statements:
        if isinstance(stmt, S.GroupDef):
            for e in stmt.members:
                yield top, e
        elif isinstance(stmt, S.CircuitDef):
            if stmt.expr is not None:
                yield top, stmt.expr
            scope = circuit_scope(unit, stmt)
            for body_stmt in stmt.body or ():
                for e in body_exprs(body_stmt):
                    yield scope, e
        elif isinstance(stmt, S.CheckDef):
            yield top, stmt.target
            yield top, stmt.task
            for expect in stmt.expects:
                if expect.subject is not None:
                    yield top, expect.subject


def _has_no_names(expr: S.Expr) -> bool:
    kind = type(expr)
    return kind is S.ComponentRef or kind is S.Channel and type(expr.inner) is S.ComponentRef


def check_names(unit: Unit) -> list[Diagnostic]:
    """E301 for names that resolve to nothing; W309 for imports never used; W310 for
    parameters a motif never uses; W213 for circuits with no model to check them against."""
    diagnostics: list[Diagnostic] = []
    used_locals: dict[int, set[str]] = {}
    for scope, expr in _statement_scopes(unit):
        if _has_no_names(expr):
            continue  # most of a big file: `L5.H1` or `L5.H1.q`, skipped without a generator
        for sub in iter_exprs(expr):
            if not isinstance(sub, S.NameRef):
                continue
            target = scope.lookup(sub)
            if target is None:
                if not failed_import(unit, sub.parts[0]):
                    diagnostics.append(unknown_name(scope, sub))
            elif isinstance(target, Local):
                used_locals.setdefault(id(scope.circuit), set()).add(target.name)
    for stmt in unit.module.statements:
        if isinstance(stmt, S.CircuitDef):
            diagnostics += _duplicate_locals(stmt)
        if isinstance(stmt, S.CircuitDef) and stmt.params:
            for param in stmt.params:
                if param not in used_locals.get(id(stmt), set()):
                    diagnostics.append(Diagnostic("W310", f"parameter `{param}` of `{stmt.name}` is never used",
                                                  stmt.name_span, "unused parameter", "remove it or use it"))
    if unit.module.model is None:
        concrete = [s for s in unit.module.statements
                    if isinstance(s, S.CheckDef) or isinstance(s, S.CircuitDef) and not s.is_motif]
        if concrete:
            diagnostics.append(Diagnostic("W213", "no `model` declared: components are not checked against a shape",
                                          _name_span(concrete[0]) if not isinstance(concrete[0], S.CheckDef)
                                          else concrete[0].span, "no model for this",
                                          "add `model NAME` (see `circ models`); files of motifs alone need none"))
    for stmt in unit.module.statements:
        if isinstance(stmt, S.ImportDecl):
            name = stmt.bound_name or Path(stmt.path or "").stem
            sym = unit.symbols.get(name)
            if sym is not None and sym.kind == "module" and name not in unit.used_imports:
                diagnostics.append(Diagnostic("W309", f"`{name}` is imported but never used", stmt.span,
                                              "unused import", "remove the import"))
    return diagnostics


def _duplicate_locals(circuit: S.CircuitDef) -> list[Diagnostic]:
    """E302 for a local group defined twice, or named like a parameter, in one circuit."""
    seen: dict[str, S.Span] = {name: circuit.name_span for name in circuit.params or ()}
    out = []
    for stmt in circuit.body or ():
        if isinstance(stmt, S.GroupDef):
            if stmt.name in seen:
                out.append(Diagnostic("E302", f"`{stmt.name}` is defined twice in circuit `{circuit.name}`",
                                      stmt.name_span, "second definition",
                                      related=(Related("first defined here", seen[stmt.name]),)))
            else:
                seen[stmt.name] = stmt.name_span
    return out


def failed_import(unit: Unit, name: str) -> bool:
    """Whether `name` is what an import of `unit` would have bound, had the import not
    failed (E303, E304 or E315 reported it): names through it are not reported again."""
    if name in unit.symbols:
        return False
    return any(isinstance(s, S.ImportDecl) and (s.bound_name or Path(s.path or "").stem) == name
               for s in unit.module.statements)


def unknown_name(scope: Scope, ref: S.NameRef) -> Diagnostic:
    """E301 for a name that resolves to nothing, with a did-you-mean hint (shared with
    `lower`, so that a name reported by both stages is reported once)."""
    text = str(ref)
    if len(ref.parts) > 1:
        head = scope.unit.symbols.get(ref.parts[0])
        if head is not None and head.kind == "module" and head.target is not None:
            hint = did_you_mean(ref.parts[1], head.target.symbols)
            return Diagnostic("E301", f"`{ref.parts[1]}` is not defined in `{ref.parts[0]}`", ref.span,
                              "unknown name", hint)
    hint = did_you_mean(text, scope.visible_names())
    return Diagnostic("E301", f"unknown name `{text}`", ref.span, "not defined", hint)


def load_program(path: Path, display: str | None = None) -> tuple[Program, list[Diagnostic]]:
    """Parse `path` and its imports, bind names, and report what cannot be resolved."""
    loader = _Loader()
    root = loader.load_path(path, display or str(path))
    return _finish(loader, root)


def resolve_module(module: S.Module, path: Path | None = None) -> tuple[Program, list[Diagnostic]]:
    """Resolve an already parsed module (imports relative to `path`, else the cwd)."""
    loader = _Loader()
    root = loader.bind(module, path.resolve() if path else None, module.path)
    return _finish(loader, root)


def _finish(loader: _Loader, root: Unit) -> tuple[Program, list[Diagnostic]]:
    diagnostics = list(loader.diagnostics)
    diagnostics += check_names(root)
    return Program(root, loader.units), diagnostics

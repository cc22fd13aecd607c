"""The syntax tree of a .circ file: frozen dataclasses, every node with a source span.

This is what `parse` produces and what `resolve`, `check`, `lower` and `fmt` consume.
Spans are excluded from equality so that `parse(fmt(tree)) == tree` holds for trees
that differ only in layout.

>>> from circuitlang.lang.parse import parse_text
>>> tree, diagnostics = parse_text("model gpt2\\ncircuit c { L9.H6 -> logits }")
>>> tree.statements[1].name
'c'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

from ..core.positions import Position as GraphPosition
from ..core.spans import NO_SPAN, Span  # noqa: F401 - part of the syntax tree's vocabulary (S.Span)


def _span() -> Span:
    return field(default=NO_SPAN, compare=False, repr=False)  # type: ignore[return-value]


# ---------------------------------------------------------------------------------
# Expressions: node sets and circuits share one algebra.
# ---------------------------------------------------------------------------------

CHANNELS = ("q", "k", "v")


@dataclass(frozen=True)
class IndexRange:
    """A layer or head selector: one index, an inclusive range `a..b`, or `*` (lo is None)."""

    lo: int | None
    hi: int | None

    @property
    def is_star(self) -> bool:
        return self.lo is None

    @property
    def is_single(self) -> bool:
        return self.lo is not None and self.lo == self.hi

    def __str__(self) -> str:
        if self.lo is None:
            return "*"
        if self.lo == self.hi:
            return str(self.lo)
        return f"{self.lo}..{self.hi}"


@dataclass(frozen=True)
class ComponentRef:
    """`L9.H6`, `L5..7.H*`, `L3.MLP`; `heads` is None for an MLP."""

    layers: IndexRange
    heads: IndexRange | None
    span: Span = _span()

    @property
    def is_single(self) -> bool:
        return self.layers.is_single and (self.heads is None or self.heads.is_single)

    def __str__(self) -> str:
        if self.heads is None:
            return f"L{self.layers}.MLP"
        return f"L{self.layers}.H{self.heads}"


@dataclass(frozen=True)
class NameRef:
    """A (possibly qualified) name: `prev`, `ioi.name_movers`, `embed`, `logits`."""

    parts: tuple[str, ...]
    span: Span = _span()

    def __str__(self) -> str:
        return ".".join(self.parts)


@dataclass(frozen=True)
class Call:
    """Instantiation of a parameterised circuit: `induction(L4.H11, L5.H5 | L6.H9)`."""

    callee: NameRef
    args: tuple["Expr", ...]
    span: Span = _span()


@dataclass(frozen=True)
class SetOp:
    """`a | b | c`, `a & b` or `a - b - c` (left to right): one operator, two or more operands.

    Chains of one operator are kept flat so that a group of a thousand heads joined
    by `|` is not a thousand levels deep.
    """

    op: str
    operands: tuple["Expr", ...]
    span: Span = _span()


@dataclass(frozen=True)
class Channel:
    """A receiver channel selected on heads: `L9.H6.q`, `prev.k`, `(a | b).v`."""

    inner: "Expr"
    channel: str
    span: Span = _span()


Expr = Union[ComponentRef, NameRef, Call, SetOp, Channel]

SETOP_PRECEDENCE = {"|": 1, "&": 2, "-": 3}


# ---------------------------------------------------------------------------------
# Edge statements
# ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Position:
    """A token position: `@END`, `@S1+1`, `@0`, `@-1` (anchor is a name or an int)."""

    anchor: str | int
    offset: int = 0
    span: Span = _span()

    @property
    def value(self) -> GraphPosition:
        """The position as the graph carries it (no span)."""
        return GraphPosition(self.anchor, self.offset)

    def __str__(self) -> str:
        return f"@{self.value}"


@dataclass(frozen=True)
class Ident:
    """A bare word used as a value: `resample`, `logit_diff`."""

    name: str
    span: Span = _span()

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class Number:
    value: float
    text: str = field(default="", compare=False)
    span: Span = _span()


@dataclass(frozen=True)
class String:
    value: str
    span: Span = _span()


@dataclass(frozen=True)
class GenCall:
    """A data generator with keyword arguments: `induction(seq_len = 16, seed = 0)`."""

    name: str
    kwargs: tuple["KeyValue", ...]
    span: Span = _span()


Value = Union[Ident, Number, String, GenCall]


def plain_value(value: "Value") -> object:
    """A value as plain Python: a number, a string, or a dict for a generator call."""
    if isinstance(value, (Number, String)):
        return value.value
    if isinstance(value, Ident):
        return value.name
    return {kv.key: plain_value(kv.value) for kv in value.kwargs}


@dataclass(frozen=True)
class KeyValue:
    key: str
    value: Value
    span: Span = _span()


@dataclass(frozen=True)
class Target:
    """The receiving end of an edge statement, with its position and annotations."""

    expr: Expr
    position: Position | None = None
    annotations: tuple[KeyValue, ...] = ()
    span: Span = _span()


# ---------------------------------------------------------------------------------
# Statements
# ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class EdgeStmt:
    """`sources -> targets`: every source feeds every target."""

    sources: tuple[Expr, ...]
    targets: tuple[Target, ...]
    span: Span = _span()


@dataclass(frozen=True)
class NodeStmt:
    """A line of nodes without an arrow; a circuit of only these is node-level."""

    nodes: tuple[Expr, ...]
    span: Span = _span()


@dataclass(frozen=True)
class IncludeStmt:
    """`include other_circuit`: every node and edge of another circuit."""

    expr: Expr
    span: Span = _span()


@dataclass(frozen=True)
class GroupDef:
    """`group name = a, b | c`: a named set of nodes."""

    name: str
    members: tuple[Expr, ...]
    span: Span = _span()
    name_span: Span = _span()


BodyStmt = Union[GroupDef, EdgeStmt, NodeStmt, IncludeStmt]


@dataclass(frozen=True)
class CircuitDef:
    """`circuit name(params) "doc" { ... }`, or `circuit name "doc" = expr` (body None)."""

    name: str
    params: tuple[str, ...] | None
    doc: str | None
    body: tuple[BodyStmt, ...] | None
    expr: Expr | None = None
    span: Span = _span()
    name_span: Span = _span()

    @property
    def is_motif(self) -> bool:
        return self.params is not None


@dataclass(frozen=True)
class ModelDecl:
    """`model gpt2`, `model zoo:induction-2l` or `model "path/to/checkpoint"`."""

    name: str
    quoted: bool = False
    span: Span = _span()


@dataclass(frozen=True)
class ImportDecl:
    """`import stdlib.gpt2.ioi [as x]` (module) or `import "file.circ" as x` (path)."""

    module: tuple[str, ...] | None
    path: str | None
    alias: str | None
    span: Span = _span()

    @property
    def bound_name(self) -> str | None:
        if self.alias:
            return self.alias
        if self.module:
            return self.module[-1]
        return None


@dataclass(frozen=True)
class TaskDef:
    """`task name { data ..., ablation ..., metric ..., positions ... }`."""

    name: str
    doc: str | None
    settings: tuple["Setting", ...]
    span: Span = _span()
    name_span: Span = _span()


@dataclass(frozen=True)
class Setting:
    key: str
    values: tuple[Value, ...]
    span: Span = _span()


@dataclass(frozen=True)
class Expect:
    """`expect KIND [subject] [CMP bound] [with key = value, ...]`."""

    kind: str
    subject: Expr | None
    comparison: str | None
    bound: Number | None
    options: tuple[KeyValue, ...]
    span: Span = _span()


@dataclass(frozen=True)
class CheckDef:
    """`check circuit on task [with options] { expect ... }`."""

    target: Expr
    task: NameRef
    options: tuple[KeyValue, ...]
    expects: tuple[Expect, ...]
    span: Span = _span()


Statement = Union[ModelDecl, ImportDecl, GroupDef, CircuitDef, TaskDef, CheckDef]


@dataclass(frozen=True)
class Comment:
    """A `//` comment, kept so that `fmt` can put it back."""

    text: str
    line: int
    column: int


@dataclass(frozen=True)
class Module:
    """One parsed .circ file."""

    statements: tuple[Statement, ...]
    path: str = field(default="<string>", compare=False)
    comments: tuple[Comment, ...] = field(default=(), compare=False, repr=False)
    source: str = field(default="", compare=False, repr=False)

    @property
    def model(self) -> ModelDecl | None:
        for stmt in self.statements:
            if isinstance(stmt, ModelDecl):
                return stmt
        return None

"""`circ fmt`: print a module in the one canonical layout, comments kept.

The layout: four-space indentation, one statement per line, single spaces around
`->`, `=` and set operators, `, ` between list items, lines wrapped at 100 columns
with an eight-space continuation, a blank line between top-level blocks, runs of
imports sorted (imports on one line or on consecutive lines form a run), at most one
blank line wherever the author left any, and a name that is a keyword in parentheses
wherever it is an expression (`(group) -> logits`).
Statement order is the author's: the formatter changes layout, never meaning, so
`parse(format(tree)) == tree`. (Order-independent identity is the lowered graph's
`content_hash`.)

>>> from circuitlang.lang.parse import parse_text
>>> module, _ = parse_text("model gpt2 circuit c{L9.H6->logits [score=.5]}")
>>> print(format_module(module), end="")
model gpt2
<BLANKLINE>
circuit c {
    L9.H6 -> logits [score = 0.5]
}
"""

from __future__ import annotations

import bisect
import re

from ..core.errors import CircuitlangError
from ..core.paths import source_lines
from . import syntax as S

INDENT = "    "
CONTINUATION = "        "
WIDTH = 100
# The grammar's keywords. A name that is one (docs/language.md) is written in parentheses
# wherever it is an expression: `group -> logits` would start a group, `include` an
# include, `expect necessary with` options; `(group) -> logits` reads back as the name.
KEYWORDS = frozenset({"model", "import", "as", "group", "circuit", "include", "task", "check", "on", "with",
                      "expect"})
# As the grammar's MODEL_NAME: `//` would start a comment.
_MODEL_NAME_RE = re.compile(r"(?:[A-Za-z0-9_.]|/(?!/))(?:[A-Za-z0-9_.:-]|/(?!/))*")


def model_name_needs_quotes(name: str) -> bool:
    return not _MODEL_NAME_RE.fullmatch(name)


# ---------------------------------------------------------------------------------
# Expressions and values
# ---------------------------------------------------------------------------------


def format_expr(expr: S.Expr, parent_precedence: int = 0) -> str:
    """An expression with the fewest parentheses that keep its tree."""
    if isinstance(expr, S.ComponentRef):
        return str(expr)
    if isinstance(expr, S.NameRef):
        return f"({expr})" if expr.parts[0] in KEYWORDS else str(expr)
    if isinstance(expr, S.Channel):
        inner = expr.inner
        if isinstance(inner, (S.ComponentRef, S.NameRef)):
            return f"{format_expr(inner)}.{expr.channel}"
        return f"({format_expr(inner)}).{expr.channel}"
    if isinstance(expr, S.Call):
        return f"{expr.callee}(" + ", ".join(format_expr(a) for a in expr.args) + ")"
    if isinstance(expr, S.SetOp):
        mine = S.SETOP_PRECEDENCE[expr.op]
        # The first operand needs parentheses if it binds looser, or is the same operator
        # (the parser flattens `a | b | c`, so `(a | b) | c` must keep its parentheses).
        parts = [format_expr(expr.operands[0], mine + 1 if _is_setop(expr.operands[0], expr.op) else mine)]
        parts += [format_expr(o, mine + 1) for o in expr.operands[1:]]
        text = f" {expr.op} ".join(parts)
        return f"({text})" if mine < parent_precedence else text
    raise TypeError(f"not an expression: {expr!r}")  # pragma: no cover


def _is_setop(expr: S.Expr, op: str) -> bool:
    return isinstance(expr, S.SetOp) and expr.op == op


def format_number(number: S.Number) -> str:
    value = number.value
    return str(value) if isinstance(value, int) else repr(float(value))


def format_string(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
    return f'"{escaped}"'


def format_value(value: S.Value) -> str:
    if isinstance(value, S.Number):
        return format_number(value)
    if isinstance(value, S.String):
        return format_string(value.value)
    if isinstance(value, S.Ident):
        return value.name
    return f"{value.name}(" + ", ".join(format_kv(kv) for kv in value.kwargs) + ")"


def format_kv(kv: S.KeyValue) -> str:
    return f"{kv.key} = {format_value(kv.value)}"


def format_target(target: S.Target) -> str:
    text = format_expr(target.expr)
    if target.position is not None:
        text += f" {target.position}"
    if target.annotations:
        text += " [" + ", ".join(format_kv(kv) for kv in target.annotations) + "]"
    return text


def _wrap(prefix: str, items: list[str], indent: str) -> list[str]:
    """`prefix item, item, ...` filled greedily to WIDTH, continuation lines indented."""
    lines: list[str] = []
    current = prefix
    for i, item in enumerate(items):
        piece = item + ("," if i < len(items) - 1 else "")
        if current.strip() and len(indent + current) + len(piece) + 1 > WIDTH and current != prefix:
            lines.append(current.rstrip())
            current = CONTINUATION
        current += piece + " "
    lines.append(current.rstrip())
    return [indent + line for line in lines]


# ---------------------------------------------------------------------------------
# Statements, with comments
# ---------------------------------------------------------------------------------


class _Printer:
    def __init__(self, module: S.Module):
        self.module = module
        self.lines_src = source_lines(module.source)
        self.comments = sorted(module.comments, key=lambda c: (c.line, c.column))
        self.next_comment = 0
        self.out: list[str] = []

    # -- comments and blank lines ---------------------------------------------------------
    def _comments_before(self, line: int) -> list[S.Comment]:
        taken = []
        while self.next_comment < len(self.comments) and self.comments[self.next_comment].line < line:
            taken.append(self.comments[self.next_comment])
            self.next_comment += 1
        return taken

    def _comment_on(self, line: int) -> S.Comment | None:
        if self.next_comment < len(self.comments) and self.comments[self.next_comment].line == line:
            self.next_comment += 1
            return self.comments[self.next_comment - 1]
        return None

    def _blank_between(self, after_line: int, before_line: int) -> bool:
        return any(not self.lines_src[i - 1].strip() for i in range(after_line + 1, before_line)
                   if 0 < i <= len(self.lines_src))

    def _leading(self, line: int, indent: str, prev_end: int, force_blank: bool) -> None:
        """Comments above a statement, and the blank lines the author left around them."""
        last = prev_end
        first = True
        for comment in self._comments_before(line):
            if self.out and ((first and force_blank) or self._blank_between(last, comment.line)):
                self._blank()
            self.out.append(indent + comment.text.rstrip())
            last, first = comment.line, False
        if self.out and ((first and force_blank) or self._blank_between(last, line)):
            self._blank()

    def _blank(self) -> None:
        if self.out and self.out[-1] != "":
            self.out.append("")

    def _emit(self, lines: list[str], end_line: int) -> None:
        trailing = self._comment_on(end_line)
        if trailing is not None:
            lines[-1] += "  " + trailing.text.rstrip()
        self.out.extend(lines)

    def _statement(self, stmt, indent: str, prev_end: int, force_blank: bool) -> int:
        span = stmt.span
        self._leading(span.line, indent, prev_end, force_blank)
        if isinstance(stmt, (S.CircuitDef, S.TaskDef, S.CheckDef)) and self._is_block(stmt):
            self._block(stmt, indent)
        else:
            # Comments inside a wrapped statement move above it.
            for comment in self._comments_before(span.end_line):
                self.out.append(indent + comment.text.rstrip())
            self._emit(self._simple(stmt, indent), span.end_line)
        return span.end_line

    @staticmethod
    def _is_block(stmt) -> bool:
        return not (isinstance(stmt, S.CircuitDef) and stmt.body is None)

    # -- simple statements ----------------------------------------------------------------------
    def _simple(self, stmt, indent: str) -> list[str]:
        if isinstance(stmt, S.ModelDecl):
            quoted = stmt.quoted or model_name_needs_quotes(stmt.name)
            return [indent + "model " + (format_string(stmt.name) if quoted else stmt.name)]
        if isinstance(stmt, S.ImportDecl):
            return [indent + _import_text(stmt)]
        if isinstance(stmt, S.GroupDef):
            return _wrap(f"group {stmt.name} = ", [format_expr(m) for m in stmt.members], indent)
        if isinstance(stmt, S.CircuitDef):
            doc = f" {format_string(stmt.doc)}" if stmt.doc is not None else ""
            assert stmt.expr is not None
            return [f"{indent}circuit {stmt.name}{doc} = {format_expr(stmt.expr)}"]
        if isinstance(stmt, S.EdgeStmt):
            sources = ", ".join(format_expr(s) for s in stmt.sources)
            return _wrap(f"{sources} -> ", [format_target(t) for t in stmt.targets], indent)
        if isinstance(stmt, S.NodeStmt):
            return _wrap("", [format_expr(n) for n in stmt.nodes], indent)
        if isinstance(stmt, S.IncludeStmt):
            return [f"{indent}include {format_expr(stmt.expr)}"]
        if isinstance(stmt, S.Setting):
            return _wrap(f"{stmt.key} ", [format_value(v) for v in stmt.values], indent)
        if isinstance(stmt, S.Expect):
            return [indent + _expect_text(stmt)]
        raise TypeError(f"not a statement: {stmt!r}")  # pragma: no cover

    # -- blocks -----------------------------------------------------------------------------------
    def _block(self, stmt, indent: str) -> None:
        if isinstance(stmt, S.CircuitDef):
            params = f"({', '.join(stmt.params)})" if stmt.params is not None else ""
            doc = f" {format_string(stmt.doc)}" if stmt.doc is not None else ""
            header, body = f"circuit {stmt.name}{params}{doc} {{", stmt.body or ()
        elif isinstance(stmt, S.TaskDef):
            doc = f" {format_string(stmt.doc)}" if stmt.doc is not None else ""
            header, body = f"task {stmt.name}{doc} {{", stmt.settings
        else:
            options = " with " + ", ".join(format_kv(o) for o in stmt.options) if stmt.options else ""
            header, body = f"check {format_expr(stmt.target)} on {stmt.task}{options} {{", stmt.expects
        first_body_line = body[0].span.line if body else stmt.span.end_line
        header_line = stmt.span.line
        lines = [indent + header]
        if first_body_line > header_line:
            self._emit(lines, header_line)
        else:
            self.out.extend(lines)
        prev_end = header_line
        inner = indent + INDENT
        for item in body:
            prev_end = self._statement(item, inner, prev_end, False)
        for comment in self._comments_before(stmt.span.end_line):
            if self._blank_between(prev_end, comment.line):
                self._blank()
            self.out.append(inner + comment.text.rstrip())
            prev_end = comment.line
        self._emit([indent + "}"], stmt.span.end_line)

    # -- the module ---------------------------------------------------------------------------------
    def print_module(self) -> str:
        statements = _sort_import_runs(self.module)
        prev_end = 0
        prev: object | None = None
        for stmt in statements:
            force = prev is not None and not _stays_together(prev, stmt)
            prev_end = max(prev_end, self._statement(stmt, "", prev_end, force))
            prev = stmt
        rest = self._comments_before(10**9)
        for comment in rest:
            if self.out and self._blank_between(prev_end, comment.line):
                self._blank()
            self.out.append(comment.text.rstrip())
            prev_end = comment.line
        while self.out and self.out[-1] == "":
            self.out.pop()
        return "\n".join(self.out) + "\n" if self.out else ""


def _stays_together(prev: object, stmt: object) -> bool:
    """Imports follow each other without a forced blank line, and so do one-line groups."""
    same = type(prev) is type(stmt) and isinstance(stmt, (S.ImportDecl, S.GroupDef))
    return same


def _sort_import_runs(module: S.Module) -> list:
    """The module's statements with each run of imports sorted: imports on one line or on
    consecutive lines, with no blank line and no comment between them (`_continues`)."""
    statements = list(module.statements)
    comment_lines = {c.line for c in module.comments}
    blank_lines = {i for i, line in enumerate(source_lines(module.source), 1) if not line.strip()}
    anchored = _anchored(statements, comment_lines)
    out, block = [], []
    for stmt in statements + [None]:
        if isinstance(stmt, S.ImportDecl) and \
                (not block or _continues(block[-1], stmt, comment_lines | blank_lines, anchored)):
            block.append(stmt)
            continue
        out += sorted(block, key=_import_text)
        block = [stmt] if isinstance(stmt, S.ImportDecl) else []
        if stmt is not None and not isinstance(stmt, S.ImportDecl):
            out.append(stmt)
    return out


def _anchored(statements: list, comment_lines: set[int]) -> set[int]:
    """The ids of the statements that take a comment when printed: for each comment's
    line, the first statement ending on or after it (the printer puts the comment after
    it, or above it when the comment is before or inside it). Top-level statements follow
    each other, so their end lines never decrease and a bisection finds it."""
    ends = [stmt.span.end_line for stmt in statements]
    taken = (bisect.bisect_left(ends, line) for line in comment_lines)
    return {id(statements[i]) for i in taken if i < len(statements)}


def _continues(previous: S.ImportDecl, stmt: S.ImportDecl, breaking_lines: set[int], anchored: set[int]) -> bool:
    """Whether `stmt` continues the run of imports that `previous` ends.

    It does when no blank or comment line lies between them (an import's span starts at
    its name, so `import` may stand on a line between) and neither takes a comment. The
    rule reads the same on fmt's output, which prints each import on a line of its own,
    as on its input: a run is sorted on the first pass, and a second pass changes
    nothing (`import b import a` on one line is one run).
    """
    between = range(previous.span.end_line + 1, stmt.span.line)
    return (stmt.span.line >= previous.span.end_line and not any(line in breaking_lines for line in between)
            and id(previous) not in anchored and id(stmt) not in anchored)


def _import_text(stmt: S.ImportDecl) -> str:
    target = ".".join(stmt.module) if stmt.module else format_string(stmt.path or "")
    return f"import {target}" + (f" as {stmt.alias}" if stmt.alias else "")


def _expect_text(expect: S.Expect) -> str:
    text = f"expect {expect.kind}"
    if expect.subject is not None:
        text += f" {format_expr(expect.subject)}"
    if expect.comparison is not None and expect.bound is not None:
        text += f" {expect.comparison} {format_number(expect.bound)}"
    if expect.options:
        text += " with " + ", ".join(format_kv(o) for o in expect.options)
    return text


def format_module(module: S.Module) -> str:
    """The canonical text of a parsed module."""
    return _Printer(module).print_module()


class FormatError(CircuitlangError):
    """The canonical text would not read back as the module: a bug in the formatter,
    caught before any file is written."""


def format_verified(module: S.Module) -> str:
    """The canonical text of a parsed module, checked before anyone writes it: it parses
    with no error to the same statements (import runs sorted) and the same comments, and
    formatting it again changes nothing. Raises FormatError otherwise, so that `circ fmt`
    leaves a file alone rather than change its meaning or flip `fmt --check`."""
    from .parse import parse_text

    text = format_module(module)
    again, diagnostics = parse_text(text, module.path)
    expected = _sort_import_runs(module)
    if any(d.is_error for d in diagnostics) or list(again.statements) != expected:
        raise FormatError(f"{module.path}: the formatted text would not mean the same; left unchanged",
                          "this is a bug in `circ fmt`: please report it with the file")
    if sorted(c.text.rstrip() for c in again.comments) != sorted(c.text.rstrip() for c in module.comments):
        raise FormatError(f"{module.path}: formatting would lose a comment; left unchanged",
                          "this is a bug in `circ fmt`: please report it with the file")
    if format_module(again) != text:
        raise FormatError(f"{module.path}: formatting is not stable on this file; left unchanged",
                          "this is a bug in `circ fmt`: please report it with the file")
    return text

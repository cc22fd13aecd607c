"""Stage 1, parse: .circ text -> `syntax.Module`, or diagnostics.

Lark's LALR parser drives a tree builder (`_Builder`) that makes the frozen syntax
dataclasses directly, with spans taken from tokens, so no intermediate parse tree
is kept (that halves the time on 30,000-edge files). Comments are collected on the
side for the formatter.

>>> module, diagnostics = parse_text("circuit c { embed -> L0.H1.q }", "x.circ")
>>> str(module.statements[0].body[0].targets[0].expr.inner)
'L0.H1'
>>> diagnostics
[]
"""

from __future__ import annotations

import math
import re
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any

from lark import Lark, Token, Transformer, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError

from ..core.diagnostics import Diagnostic, did_you_mean
from ..core.paths import data_dir
from . import syntax as S
from .source import MAX_FILE_BYTES, read_source  # noqa: F401 - MAX_FILE_BYTES is part of this module's API

GRAMMAR_PATH = data_dir("grammar") / "circuit.lark"
MAX_NESTING = 64
_MAX_DIGITS = 18
RESERVED_NAMES = frozenset({"embed", "logits", "q", "k", "v"})

_COMPONENT_RE = re.compile(
    r"L(?P<layers>\*|\d+(?:\.\.\d+)?)\."
    r"(?:H(?P<heads>\*|\d+(?:\.\.\d+)?)|(?P<mlp>MLP))(?:\.(?P<channel>\w+))?"
)
# One `name = value` of a one-token annotation list; the value's first character tells
# number, string and name apart (the grammar's NUMBER, STRING and NAME).
_ANNOTATION_ITEM = re.compile(r'(?P<key>[A-Za-z_][A-Za-z0-9_]*)[ \t]*=[ \t]*'
                              r'(?P<value>-?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?|"(?:[^"\\\n]|\\.)*"|[A-Za-z_][A-Za-z0-9_]*)')
_VALUE_KIND = {**{c: "NUMBER" for c in "-.0123456789"}, '"': "STRING"}
_VALUE_KIND.update({c: "NAME" for c in "_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"})
_INTEGER = re.compile(r"-?\d+")
# One target inside a TARGET_RUN token (the grammar fixes its shape): a component, then
# optional one-line annotations (strings may hold `]` and `,`), then the comma.
_RUN_ITEM = re.compile(r'(?P<component>L[^\s,\[]+)[ \t]*(?P<notes>\[[^\]"]*(?:"(?:[^"\\\n]|\\.)*"[^\]"]*)*\])?[ \t]*,')
_POSITION_RE = re.compile(r"@(?P<anchor>[A-Za-z_]\w*|-?\d+)(?P<offset>[+-]\d+)?")

# What a terminal is called in an "expected ..." message.
_TERMINAL_NAMES = {
    "ANNOTATIONS": "`[`",  # the one-token form of `[k = v]`: same start
    "NAME": "a name",
    "COMPONENT": "a component such as `L9.H6`",
    "CALL_OPEN": "a call such as `motif(`",
    "POSITION": "a position such as `@END`",
    "MODEL_NAME": "a model name",
    "STRING": "a string",
    "NUMBER": "a number",
    "ARROW": "`->`",
    "SETOP": "`|`, `&` or `-`",
    "CMP": "a comparison (`>=`, `<=`, `>`, `<`)",
    "RBRACE": "`}`",
    "LBRACE": "`{`",
    "LPAR": "`(`",
    "RPAR": "`)`",
    "LSQB": "`[`",
    "RSQB": "`]`",
    "COMMA": "`,`",
    "DOT": "`.`",
    "EQUAL": "`=`",
    "$END": "end of file",
}


class _Parser:
    """One Lark LALR parser with its own tree builder and comment list: the state of one
    parse at a time. Building one (the LALR tables) costs ~35 ms, so finished parsers are
    kept in `_IDLE` and reused; a parse that finds none idle (a parse running in another
    thread) builds its own, so `parse_text` is reentrant and thread-safe."""

    def __init__(self) -> None:
        self.builder = _Builder()
        self.comments: list[S.Comment] = []
        with _BUILDING:  # lark compiles the grammar with ast.literal_eval, which CPython 3.11
            # can fail with "SystemError: AST constructor recursion depth mismatch" when two
            # threads run it at once (CPython gh-106905): build one parser at a time
            self.lark = Lark(_grammar(), parser="lalr", transformer=self.builder,
                             lexer_callbacks={"COMMENT": self._comment}, maybe_placeholders=False)

    def _comment(self, token: Token) -> Token:
        self.comments.append(S.Comment(str(token), token.line, token.column))
        return token


_IDLE: list[_Parser] = []  # list.pop and list.append are atomic: no lock needed
_BUILDING = threading.Lock()


@lru_cache(maxsize=None)
def _grammar() -> str:
    return GRAMMAR_PATH.read_text(encoding="utf-8")


@lru_cache(maxsize=None)
def _model_name_pattern() -> re.Pattern[str]:
    match = re.search(r"^MODEL_NAME(?:\.\d+)?:\s*/(.*)/\s*$", _grammar(), re.M)
    assert match is not None, "grammar/circuit.lark defines MODEL_NAME"
    return re.compile(match.group(1))


def model_name_needs_quotes(name: str) -> bool:
    """Whether `model NAME` must be written `model "NAME"` to read back as `name`: the
    grammar's own MODEL_NAME terminal decides, so the formatter and the parser agree."""
    return not _model_name_pattern().fullmatch(name)


def _token_span(path: str, tok: Token) -> S.Span:
    return S.Span(path, tok.line or 0, tok.column or 0, tok.end_line or 0, tok.end_column or 0)


class _BuildError(Exception):
    """A diagnostic raised from inside the builder; it ends the parse."""

    def __init__(self, diagnostic: Diagnostic):
        self.diagnostic = diagnostic


class _Builder(Transformer):
    """Turns Lark's reductions into syntax dataclasses. `path` is set per parse."""

    def __init__(self) -> None:
        super().__init__()
        self.path = "<string>"
        # Component text -> (layers, heads, channel): big files repeat the same few hundred.
        self._components: dict[str, tuple] = {}

    # -- helpers ------------------------------------------------------------------
    def _span_of(self, item: Any) -> S.Span:
        if isinstance(item, Token):
            return _token_span(self.path, item)
        return item.span

    def _join(self, first: Any, last: Any) -> S.Span:
        a, b = self._span_of(first), self._span_of(last)
        return S.Span(self.path, a.line, a.column, b.end_line, b.end_column)

    def _fail(self, code: str, message: str, span: S.Span, label: str = "", help: str | None = None) -> None:
        raise _BuildError(Diagnostic(code, message, span, label, help))

    def _check_name(self, tok: Token) -> str:
        name = str(tok)
        if name in RESERVED_NAMES:
            self._fail("E107", f"`{name}` is reserved and cannot name a definition", _token_span(self.path, tok),
                       "reserved name", "`embed` and `logits` are the model's input and output; `q`, `k`, `v` are channels")
        return name

    def __default__(self, data: str, children: list, meta: Any) -> Any:
        # Inlined rules (`_item`, `_stmt`, ...) are flattened by Lark; keep them as trees.
        return Tree(data, children)

    # -- top level ----------------------------------------------------------------
    def start(self, children: list) -> list:
        return children

    def model_decl(self, children: list) -> S.ModelDecl:
        (tok,) = children
        if tok.type == "STRING":
            return S.ModelDecl(self._string(tok), True, _token_span(self.path, tok))
        return S.ModelDecl(str(tok), False, _token_span(self.path, tok))

    def dotted(self, children: list) -> S.NameRef:
        return S.NameRef(tuple(str(c) for c in children), self._join(children[0], children[-1]))

    def import_module(self, children: list) -> S.ImportDecl:
        ref: S.NameRef = children[0]
        alias = self._check_name(children[1]) if len(children) > 1 else None
        end = children[1] if len(children) > 1 else ref
        return S.ImportDecl(ref.parts, None, alias, self._join(ref, end))

    def import_path(self, children: list) -> S.ImportDecl:
        alias = self._check_name(children[1]) if len(children) > 1 else None
        return S.ImportDecl(None, self._string(children[0]), alias, self._join(children[0], children[-1]))

    def group_def(self, children: list) -> S.GroupDef:
        name_tok, members = children
        name = self._check_name(name_tok)
        return S.GroupDef(name, tuple(members), self._join(name_tok, members[-1]), _token_span(self.path, name_tok))

    def expr_list(self, children: list) -> list:
        return children

    def params(self, children: list) -> tuple[str, ...]:
        return tuple(self._check_name(c) for c in children)

    def doc(self, children: list) -> Token:
        return children[0]

    def circuit_def(self, children: list) -> S.CircuitDef:
        name_tok, rest, rbrace = children[0], children[1:-1], children[-1]
        params: tuple[str, ...] | None = None
        doc: str | None = None
        if rest and isinstance(rest[0], tuple):
            params, rest = rest[0], rest[1:]
        if rest and isinstance(rest[0], Token) and rest[0].type == "STRING":
            doc, rest = self._string(rest[0]), rest[1:]
        body = tuple(rest)
        return S.CircuitDef(self._check_name(name_tok), params, doc, body, None,
                            self._join(name_tok, rbrace), _token_span(self.path, name_tok))

    def circuit_alias(self, children: list) -> S.CircuitDef:
        name_tok, expr = children[0], children[-1]
        doc = self._string(children[1]) if len(children) == 3 else None
        return S.CircuitDef(self._check_name(name_tok), None, doc, None, expr,
                            self._join(name_tok, expr), _token_span(self.path, name_tok))

    # -- circuit bodies -------------------------------------------------------------
    def line_stmt(self, children: list) -> S.EdgeStmt | S.NodeStmt:
        for i, child in enumerate(children):
            if isinstance(child, Token) and child.type == "ARROW":
                sources = tuple(children[:i])
                items: list = []
                for item in children[i + 1:]:
                    if isinstance(item, Token) and item.type == "TARGET_RUN":
                        items += self._target_run(item)
                    else:
                        items.append(item)
                targets = tuple(t if isinstance(t, S.Target) else S.Target(t, None, (), t.span) for t in items)
                return S.EdgeStmt(sources, targets, self._join(sources[0], targets[-1]))
        return S.NodeStmt(tuple(children), self._join(children[0], children[-1]))

    def target(self, children: list) -> S.Target:
        expr, position, annotations = children[0], None, ()
        end: Any = expr
        for child in children[1:]:
            if isinstance(child, Token):
                position = end = self._position(child)
            elif child:
                annotations, end = child, child[-1]
        return S.Target(expr, position, tuple(annotations), self._join(expr, end))

    def _target_run(self, tok: Token) -> list:
        """The targets of a TARGET_RUN token (`L0.H6.q, L0.H6.k [score = 0.5],` on one line,
        grammar), each built from the COMPONENT (and ANNOTATIONS) tokens it would have been,
        at their own columns."""
        text, column, offset, line, path = str(tok), tok.column or 0, tok.start_pos or 0, tok.line, self.path
        out: list = []
        for m in _RUN_ITEM.finditer(text):
            start, end = m.span("component")
            component = self._component(m["component"], S.Span(path, line, column + start, line, column + end))
            if m["notes"] is None:
                out.append(component)
                continue
            start = m.start("notes")
            annotations = self._annotations(m["notes"], line, column + start, offset + start)
            # the span `target` gives: from the component to the end of the last annotation
            out.append(S.Target(component, None, annotations,
                                S.Span(path, line, component.span.column, line, annotations[-1].span.end_column)))
        return out

    def scored_target(self, children: list) -> S.Target:
        """A SCORED_COMPONENT token (`L0.H2.q [score = 0.5]` on one line, grammar) split into
        the COMPONENT and ANNOTATIONS tokens it joins, built as `target` builds them."""
        (tok,) = children
        text = str(tok)
        end = text.index("[")
        name = text[:end].rstrip()
        column, offset = tok.column or 0, tok.start_pos or 0
        component = Token("COMPONENT", name, offset, tok.line, column, tok.line, column + len(name),
                          offset + len(name))
        notes = Token("ANNOTATIONS", text[end:], offset + end, tok.line, column + end, tok.line,
                      column + len(text), offset + len(text))
        return self.target([self.component([component]), self._split_annotations(notes)])

    def _position(self, tok: Token) -> S.Position:
        m = _POSITION_RE.fullmatch(str(tok))
        assert m is not None, tok  # the grammar's terminal guarantees the shape
        span = _token_span(self.path, tok)
        anchor: str | int = m["anchor"]
        if _INTEGER.fullmatch(m["anchor"]):
            anchor = self._int(m["anchor"], span)
        return S.Position(anchor, self._int(m["offset"] or "0", span), span)

    def annotations(self, children: list) -> tuple[S.KeyValue, ...]:
        if len(children) == 1 and isinstance(children[0], Token) and children[0].type == "ANNOTATIONS":
            return self._split_annotations(children[0])
        return tuple(children)

    def _split_annotations(self, tok: Token) -> tuple[S.KeyValue, ...]:
        """The items of a one-token `[k = v, ...]` (grammar: ANNOTATIONS): the same
        annotations, values and spans as the multi-token form gives, built directly
        (this path exists for speed: files with a score on every edge)."""
        return self._annotations(str(tok), tok.line, tok.column, tok.start_pos)

    def _annotations(self, text: str, line: int, column: int, start_pos: int) -> tuple[S.KeyValue, ...]:
        """`_split_annotations` of the text `[k = v, ...]` found at that line, column and offset."""
        path = self.path
        items = []
        for m in _ANNOTATION_ITEM.finditer(text):
            start, end = m.span("value")
            value_text = m.group("value")
            span = S.Span(path, line, column + start, line, column + end)
            kind = _VALUE_KIND[value_text[0]]
            if kind == "NUMBER":
                value: S.Value = self._number(value_text, span)
            elif kind == "NAME":
                value = S.Ident(value_text, span)
            else:
                value = self.string([Token("STRING", value_text, start_pos + start, line, column + start,
                                           line, column + end, start_pos + end)])
            items.append(S.KeyValue(m.group("key"), value, S.Span(path, line, column + m.start(), line, column + end)))
        return tuple(items)

    def annotation(self, children: list) -> S.KeyValue:
        key, value = children
        return S.KeyValue(str(key), value, self._join(key, value))

    def include_stmt(self, children: list) -> S.IncludeStmt:
        (expr,) = children
        return S.IncludeStmt(expr, expr.span)

    # -- expressions ------------------------------------------------------------------
    def component(self, children: list) -> S.ComponentRef | S.Channel:
        (tok,) = children
        return self._component(str(tok), _token_span(self.path, tok))

    def _component(self, text: str, span: S.Span) -> S.ComponentRef | S.Channel:
        """A component's reference from its text (`L9.H6.q`, `L0..3.MLP`) at that span."""
        parsed = self._components.get(text)
        if parsed is None:
            m = _COMPONENT_RE.fullmatch(text)
            assert m is not None, text  # the grammar's terminal guarantees the shape
            layers = self._index(m["layers"], "layer", span)
            heads = None if m["mlp"] else self._index(m["heads"], "head", span)
            parsed = self._components[text] = (layers, heads, m["channel"])
        layers, heads, channel = parsed
        ref = S.ComponentRef(layers, heads, span)
        if channel is None:
            return ref
        return self._channel(ref, channel, span)

    def _index(self, text: str, what: str, span: S.Span) -> S.IndexRange:
        if text == "*":
            return S.IndexRange(None, None)
        if ".." in text:
            lo, hi = (self._int(x, span) for x in text.split(".."))
            if lo > hi:
                self._fail("E104", f"empty {what} range `{text}`", span, "range runs backwards",
                           f"write `{hi}..{lo}`")
            return S.IndexRange(lo, hi)
        value = self._int(text, span)
        return S.IndexRange(value, value)

    def _channel(self, inner: Any, channel: str, span: S.Span) -> S.Channel:
        if channel not in S.CHANNELS:
            help_ = "an MLP has a single input; channels `.q` `.k` `.v` exist on heads" if channel == "MLP" else \
                "a head's inputs are `.q`, `.k` and `.v`"
            self._fail("E105", f"unknown channel `.{channel}`", span, "not a channel", help_)
        return S.Channel(inner, channel, span)

    def name_ref(self, children: list) -> S.NameRef | S.Channel:
        (ref,) = children
        if len(ref.parts) > 1 and ref.parts[-1] in S.CHANNELS:
            return S.Channel(S.NameRef(ref.parts[:-1], ref.span), ref.parts[-1], ref.span)
        return ref

    def _check_depth(self, items: list, span: S.Span) -> None:
        if any(self._depth(item) >= MAX_NESTING for item in items if not isinstance(item, Token)):
            self._fail("E110", "expression is nested too deeply", span,
                       f"more than {MAX_NESTING} levels", "name the inner parts with `group` or `circuit`")

    def call(self, children: list) -> S.Call:
        open_tok, args = children[0], children[1:]
        self._check_depth(args, _token_span(self.path, open_tok))
        callee_text = str(open_tok)[:-1]
        callee = S.NameRef(tuple(callee_text.split(".")), _token_span(self.path, open_tok))
        end = args[-1] if args else open_tok
        span = self._join(open_tok, end)
        return S.Call(callee, tuple(args), S.Span(self.path, span.line, span.column, span.end_line, span.end_column + 1))

    def paren(self, children: list) -> S.Expr:
        lpar, inner = children[0], children[1]
        self._check_depth([inner], _token_span(self.path, lpar))
        if len(children) == 4:
            return self._channel(inner, str(children[3]), self._join(lpar, children[3]))
        return inner

    def setexpr(self, children: list) -> S.Expr:
        operands = children[0::2]
        ops = [str(t) for t in children[1::2]]
        self._check_depth(operands, self._join(operands[0], operands[-1]))
        return self._climb(operands, ops)

    def _depth(self, expr: Any) -> int:
        if isinstance(expr, S.SetOp):
            return 1 + max(self._depth(o) for o in expr.operands)
        if isinstance(expr, S.Channel):
            return 1 + self._depth(expr.inner)
        if isinstance(expr, S.Call):
            return 1 + max((self._depth(a) for a in expr.args), default=0)
        if isinstance(expr, S.GenCall):
            return 1 + max((self._depth(kw.value) for kw in expr.kwargs), default=0)
        return 0

    def _climb(self, operands: list, ops: list[str]) -> S.Expr:
        """Apply precedence (`-` > `&` > `|`), keeping same-operator chains flat."""
        for op in ("-", "&", "|"):
            if op not in ops:
                continue
            groups: list[list] = [[operands[0]]]
            remaining: list[str] = []
            for o, rhs in zip(ops, operands[1:]):
                if o == op:
                    groups[-1].append(rhs)
                else:
                    remaining.append(o)
                    groups.append([rhs])
            operands = [g[0] if len(g) == 1 else S.SetOp(op, tuple(g), self._join(g[0], g[-1])) for g in groups]
            ops = remaining
        return operands[0]

    # -- tasks and checks ----------------------------------------------------------------
    def task_def(self, children: list) -> S.TaskDef:
        name_tok, rest, rbrace = children[0], children[1:-1], children[-1]
        doc = None
        if rest and isinstance(rest[0], Token) and rest[0].type == "STRING":
            doc, rest = self._string(rest[0]), rest[1:]
        return S.TaskDef(self._check_name(name_tok), doc, tuple(rest), self._join(name_tok, rbrace),
                         _token_span(self.path, name_tok))

    def setting(self, children: list) -> S.Setting:
        key, values = children
        return S.Setting(str(key), tuple(values), self._join(key, values[-1]))

    def value_list(self, children: list) -> list:
        return children

    def number(self, children: list) -> S.Number:
        (tok,) = children
        return self._number(str(tok), _token_span(self.path, tok))

    def _number(self, text: str, span: S.Span) -> S.Number:
        value: float = self._int(text, span) if _INTEGER.fullmatch(text) else float(text)
        if not math.isfinite(value):
            self._fail("E109", f"number `{_clip(text)}` is out of range", span, "too large",
                       "numbers must be finite (at most about 1.8e308)")
        return S.Number(value, text, span)

    def _int(self, text: str, span: S.Span) -> int:
        if len(text.lstrip("-")) > _MAX_DIGITS:
            self._fail("E109", f"number `{_clip(text)}` has {len(text)} digits", span, "too large",
                       f"whole numbers have at most {_MAX_DIGITS} digits")
        return int(text)

    def string(self, children: list) -> S.String:
        (tok,) = children
        return S.String(self._string(tok), _token_span(self.path, tok))

    def ident(self, children: list) -> S.Ident:
        (tok,) = children
        return S.Ident(str(tok), _token_span(self.path, tok))

    def gen_call(self, children: list) -> S.GenCall:
        open_tok, kwargs = children[0], children[1:]
        self._check_depth([kw.value for kw in kwargs], _token_span(self.path, open_tok))
        return S.GenCall(str(open_tok)[:-1], tuple(kwargs), self._join(open_tok, kwargs[-1] if kwargs else open_tok))

    def kwarg(self, children: list) -> S.KeyValue:
        key, value = children
        return S.KeyValue(str(key), value, self._join(key, value))

    option = kwarg

    def check_options(self, children: list) -> tuple[S.KeyValue, ...]:
        return tuple(children)

    expect_options = check_options

    def comparison(self, children: list) -> tuple[str, S.Number]:
        cmp_tok, num_tok = children
        return str(cmp_tok), self.number([num_tok])

    def expect(self, children: list) -> S.Expect:
        kind_tok, rest = children[0], children[1:]
        subject = comparison = bound = None
        options: tuple[S.KeyValue, ...] = ()
        end: Any = kind_tok
        for item in rest:
            if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str):
                comparison, bound = item
                end = bound
            elif isinstance(item, tuple):
                options = item
                end = item[-1]
            else:
                subject = item
                end = item
        return S.Expect(str(kind_tok), subject, comparison, bound, options, self._join(kind_tok, end))

    def check_def(self, children: list) -> S.CheckDef:
        target, task, rest, rbrace = children[0], children[1], children[2:-1], children[-1]
        options: tuple[S.KeyValue, ...] = ()
        if rest and isinstance(rest[0], tuple):
            options, rest = rest[0], rest[1:]
        return S.CheckDef(target, task, options, tuple(rest), self._join(target, rbrace))

    # -- strings -------------------------------------------------------------------------
    def _string(self, tok: Token) -> str:
        text = str(tok)[1:-1]
        if "\\" not in text:
            return text
        out: list[str] = []
        chars = iter(enumerate(text))
        for i, ch in chars:
            if ch != "\\":
                out.append(ch)
                continue
            _, nxt = next(chars)
            if nxt not in _ESCAPES:
                span = _token_span(self.path, tok)
                column = span.column + 1 + i
                self._fail("E108", f"invalid escape `\\{nxt}` in string", S.Span(self.path, span.line, column,
                           span.line, column + 2), "bad escape", 'the escapes are \\\\ \\" \\n and \\t')
            out.append(_ESCAPES[nxt])
        return "".join(out)


_ESCAPES = {"\\": "\\", '"': '"', "n": "\n", "t": "\t"}


def _clip(text: str, width: int = 24) -> str:
    return text if len(text) <= width else text[:width] + "..."


def _expected(expected: set[str]) -> str:
    # SCORED_COMPONENT is a component with its annotations read as one token for speed;
    # "a component" already says what may stand there
    names = sorted({_TERMINAL_NAMES.get(t, f"`{t.lower()}`") for t in expected
                    if t not in ("SCORED_COMPONENT", "TARGET_RUN")})
    if len(names) > 8:
        names = names[:8] + ["..."]
    return ", ".join(names)


def _syntax_diagnostic(path: str, source: str, err: UnexpectedInput) -> Diagnostic:
    line, column = err.line, err.column
    if isinstance(err, UnexpectedCharacters):
        char = source[err.pos_in_stream] if 0 <= err.pos_in_stream < len(source) else "?"
        char = char if char.isprintable() else repr(char)[1:-1]
        span = S.Span(path, line, column, line, column + 1)
        return Diagnostic("E101", f"unexpected character `{char}`", span, "not valid here",
                          f"expected {_expected(set(err.allowed or ()))}" if err.allowed else None)
    if isinstance(err, UnexpectedToken) and err.token.type != "$END":
        tok, expected = err.token, set(err.expected)
        span = _token_span(path, tok)
        help_ = f"expected {_expected(expected)}"
        keyword = _misspelt_keyword(tok, expected)
        if keyword:
            help_ = f"did you mean `{keyword}`? ({help_})"
        return Diagnostic("E102", f"unexpected {_describe(tok, expected)}", span, "not valid here", help_)
    expected = getattr(err, "expected", None) or ()
    lines = source.split("\n")
    if len(lines) > 1 and lines[-1] == "":
        lines.pop()  # a final newline does not start a line
    last = lines[-1].rstrip("\r")
    span = S.Span(path, len(lines), len(last) + 1, len(lines), len(last) + 1)
    return Diagnostic("E103", "unexpected end of file", span, "file ends here",
                      f"expected {_expected(set(expected))}" if expected else None)


def _misspelt_keyword(tok: Token, expected: set[str]) -> str | None:
    """The keyword a word in a keyword's place was probably meant to be (`circut` ->
    `circuit`), or None. Keywords are the expected terminals Lark names after their text."""
    word = str(tok)
    if tok.type not in ("NAME", "MODEL_NAME") or not _WORD.fullmatch(word):
        return None
    keywords = sorted(t.lower() for t in expected if t not in _TERMINAL_NAMES and _WORD.fullmatch(t.lower()))
    hint = did_you_mean(word.lower(), keywords)
    return hint.split("`")[1] if hint else None


_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _describe(tok: Token, expected: set[str] = frozenset()) -> str:
    """`name `x``, `component `L9.H6``, or the token itself: what an E102 message names."""
    kind = _TERMINAL_NAMES.get(tok.type, "")
    text = _clip(str(tok).replace("\x00", "\\0"), 40)
    if tok.type == "MODEL_NAME" and "MODEL_NAME" not in expected and _WORD.fullmatch(str(tok)):
        return f"name `{text}`"  # the lexer's longest match at the top level, not a model name here
    if tok.type in ("NAME", "COMPONENT", "NUMBER", "STRING", "POSITION", "MODEL_NAME"):
        noun = kind.split(" such as")[0].removeprefix("a ").removeprefix("an ")
        return f"{noun} `{text}`"
    return f"`{text}`"


def parse_text(source: str, path: str = "<string>") -> tuple[S.Module, list[Diagnostic]]:
    """Parse .circ source text. Returns the module (empty on a syntax error) and diagnostics."""
    parser = _IDLE.pop() if _IDLE else _Parser()
    parser.builder.path, parser.comments = path, []
    try:
        return _parse(parser, source, path)
    finally:
        _IDLE.append(parser)


def _parse(parser: _Parser, source: str, path: str) -> tuple[S.Module, list[Diagnostic]]:
    try:
        statements = parser.lark.parse(source)
    except _BuildError as err:
        return S.Module((), path, tuple(parser.comments), source), [err.diagnostic]
    except VisitError as err:
        if isinstance(err.orig_exc, _BuildError):
            return S.Module((), path, tuple(parser.comments), source), [err.orig_exc.diagnostic]
        raise
    except (UnexpectedInput, UnexpectedEOF) as err:
        return S.Module((), path, tuple(parser.comments), source), [_syntax_diagnostic(path, source, err)]
    module = S.Module(tuple(statements), path, tuple(parser.comments), source)
    diagnostics: list[Diagnostic] = []
    if not statements:
        lines = source.count("\n") + 1
        diagnostics.append(Diagnostic("W005", "file is empty", S.Span(path, 1, 1, lines, 1),
                                      "no statements", "a .circ file declares a model and at least one circuit"))
    return module, diagnostics


def parse_file(path: Path, display: str | None = None) -> tuple[S.Module, list[Diagnostic]]:
    """Read and parse a file; any problem comes back as diagnostics."""
    shown = display or str(path)
    text, diagnostics = read_source(path, shown)
    if text is None:
        return S.Module((), shown), diagnostics
    return parse_text(text, shown)

"""Stage 1, parse: golden dumps of syntax trees and syntax diagnostics, and targeted parser tests.

Guards:
* every construct of the grammar parses to the tree it should (golden files in
  tests/fixtures/parse/: `NAME.circ` -> `NAME.parse.txt`, a readable dump of the tree,
  its comments and its diagnostics with exact code and line:col);
* every syntax error gets the right stable code at the right place (a table below
  asserts code and line:col independently of the golden files);
* precedence and flattening of set operators, channels on every kind of expression,
  spans (1-based, end exclusive, CRLF and tabs), numbers, string escapes, comments.

Regenerate goldens with `UPDATE_GOLDEN=1 pytest tests/test_parse.py` and read the diff.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from circuitlang.core.diagnostics import CODES, Diagnostic
from circuitlang.lang import syntax as S
from circuitlang.lang.parse import parse_file, parse_text
from tests.conftest import FIXTURES, assert_golden

PARSE_FIXTURES = FIXTURES / "parse"
ALL_FIXTURES = sorted(PARSE_FIXTURES.glob("*.circ"))
VALID_FIXTURES = [p for p in ALL_FIXTURES if not p.name.startswith("err_")]
ERROR_FIXTURES = [p for p in ALL_FIXTURES if p.name.startswith("err_")]


# ---------------------------------------------------------------------------------
# The dump: one line per statement, expressions with explicit grouping, no spans in
# expressions (statement spans only), then comments, then diagnostics.
# ---------------------------------------------------------------------------------


def dump_expr(expr: S.Expr) -> str:
    """Set operations always in parentheses, so the tree's grouping is visible."""
    if isinstance(expr, (S.ComponentRef, S.NameRef)):
        return str(expr)
    if isinstance(expr, S.Channel):
        inner = dump_expr(expr.inner)
        if not isinstance(expr.inner, (S.ComponentRef, S.NameRef)):
            inner = f"<{inner}>"
        return f"{inner}.{expr.channel}"
    if isinstance(expr, S.Call):
        return f"{expr.callee}(" + ", ".join(dump_expr(a) for a in expr.args) + ")"
    if isinstance(expr, S.SetOp):
        return "(" + f" {expr.op} ".join(dump_expr(o) for o in expr.operands) + ")"
    raise TypeError(expr)


def dump_value(value: S.Value) -> str:
    if isinstance(value, S.Number):
        return f"{type(value.value).__name__}:{value.value!r}"
    if isinstance(value, S.String):
        return json.dumps(value.value, ensure_ascii=False)
    if isinstance(value, S.Ident):
        return f"ident:{value.name}"
    return f"gen:{value.name}(" + ", ".join(dump_kv(kv) for kv in value.kwargs) + ")"


def dump_kv(kv: S.KeyValue) -> str:
    return f"{kv.key}={dump_value(kv.value)}"


def dump_kvs(kvs: tuple[S.KeyValue, ...]) -> str:
    return "{" + ", ".join(dump_kv(kv) for kv in kvs) + "}"


def dump_target(target: S.Target) -> str:
    text = dump_expr(target.expr)
    if target.position is not None:
        anchor = target.position.anchor
        text += f" @{type(anchor).__name__}:{anchor}{target.position.offset:+d}"
    if target.annotations:
        text += " " + dump_kvs(target.annotations)
    return text


def _where(span: S.Span) -> str:
    return f"{span.line}:{span.column}-{span.end_line}:{span.end_column}"


def _doc(doc: str | None) -> str:
    return "" if doc is None else f" doc={json.dumps(doc, ensure_ascii=False)}"


def dump_stmt(stmt: object, indent: str = "") -> list[str]:
    at = f"{indent}{_where(stmt.span)} "  # type: ignore[attr-defined]
    if isinstance(stmt, S.ModelDecl):
        return [at + f"model {json.dumps(stmt.name, ensure_ascii=False)}" + (" quoted" if stmt.quoted else "")]
    if isinstance(stmt, S.ImportDecl):
        what = f"module={'.'.join(stmt.module)}" if stmt.module else f"path={json.dumps(stmt.path)}"
        return [at + f"import {what} as={stmt.alias or '-'} binds={stmt.bound_name or '-'}"]
    if isinstance(stmt, S.GroupDef):
        return [at + f"group {stmt.name} = [" + ", ".join(dump_expr(m) for m in stmt.members) + "]"]
    if isinstance(stmt, S.CircuitDef):
        params = "" if stmt.params is None else "(" + ", ".join(stmt.params) + ")"
        head = at + f"circuit {stmt.name}{params}{_doc(stmt.doc)}"
        if stmt.body is None:
            assert stmt.expr is not None
            return [head + f" = {dump_expr(stmt.expr)}"]
        lines = [head + " {"]
        for item in stmt.body:
            lines += dump_stmt(item, indent + "  ")
        return lines + [indent + "}"]
    if isinstance(stmt, S.EdgeStmt):
        return [at + "edge [" + ", ".join(dump_expr(s) for s in stmt.sources) + "] -> ["
                + ", ".join(dump_target(t) for t in stmt.targets) + "]"]
    if isinstance(stmt, S.NodeStmt):
        return [at + "nodes [" + ", ".join(dump_expr(n) for n in stmt.nodes) + "]"]
    if isinstance(stmt, S.IncludeStmt):
        return [at + f"include {dump_expr(stmt.expr)}"]
    if isinstance(stmt, S.TaskDef):
        lines = [at + f"task {stmt.name}{_doc(stmt.doc)} {{"]
        for setting in stmt.settings:
            lines.append(f"{indent}  {_where(setting.span)} setting {setting.key} = ["
                         + ", ".join(dump_value(v) for v in setting.values) + "]")
        return lines + [indent + "}"]
    if isinstance(stmt, S.CheckDef):
        options = f" with {dump_kvs(stmt.options)}" if stmt.options else ""
        lines = [at + f"check {dump_expr(stmt.target)} on {stmt.task}{options} {{"]
        for e in stmt.expects:
            text = f"{indent}  {_where(e.span)} expect {e.kind}"
            if e.subject is not None:
                text += f" subject={dump_expr(e.subject)}"
            if e.comparison is not None:
                assert e.bound is not None
                text += f" {e.comparison} {dump_value(e.bound)}"
            if e.options:
                text += f" with {dump_kvs(e.options)}"
            lines.append(text)
        return lines + [indent + "}"]
    raise TypeError(stmt)


def dump_diagnostic(d: Diagnostic) -> list[str]:
    lines = [f"{d.code} {d.span.line}:{d.span.column} {d.message}",
             f"    span {_where(d.span)}, label: {d.label or '-'}"]
    if d.help:
        lines.append(f"    help: {d.help}")
    for rel in d.related:
        lines.append(f"    related {rel.span.line}:{rel.span.column}: {rel.message}")
    return lines


def dump(module: S.Module, diagnostics: list[Diagnostic]) -> str:
    lines: list[str] = []
    for stmt in module.statements:
        lines += dump_stmt(stmt)
    for c in module.comments:
        lines.append(f"comment {c.line}:{c.column} {c.text}")
    for d in diagnostics:
        lines += dump_diagnostic(d)
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------
# Golden files
# ---------------------------------------------------------------------------------


def _golden(path: Path) -> Path:
    return path.with_name(path.stem + ".parse.txt")


@pytest.mark.parametrize("path", ALL_FIXTURES, ids=lambda p: p.stem)
def test_parse_matches_golden(path: Path) -> None:
    module, diagnostics = parse_file(path, path.name)
    assert_golden(_golden(path), dump(module, diagnostics))


def test_every_golden_has_a_fixture() -> None:
    """A golden file left behind after its fixture was renamed guards nothing."""
    stems = {p.stem for p in ALL_FIXTURES}
    orphans = [g.name for g in PARSE_FIXTURES.glob("*.parse.txt") if g.name[: -len(".parse.txt")] not in stems]
    assert orphans == []


@pytest.mark.parametrize("path", VALID_FIXTURES, ids=lambda p: p.stem)
def test_valid_fixture_has_no_errors(path: Path) -> None:
    _, diagnostics = parse_file(path, path.name)
    assert [d for d in diagnostics if d.is_error] == []


def test_fixtures_cover_every_statement_kind() -> None:
    """The valid fixtures hold at least one of each statement, body statement, expression and value."""
    seen: set[str] = set()

    def walk(node: object) -> None:
        seen.add(type(node).__name__)
        if isinstance(node, tuple):
            for item in node:
                walk(item)
        elif hasattr(node, "__dataclass_fields__"):
            for name in node.__dataclass_fields__:  # type: ignore[attr-defined]
                walk(getattr(node, name))

    for path in VALID_FIXTURES:
        module, _ = parse_file(path, path.name)
        walk(module.statements)
    wanted = {"ModelDecl", "ImportDecl", "GroupDef", "CircuitDef", "TaskDef", "CheckDef", "EdgeStmt", "NodeStmt",
              "IncludeStmt", "Target", "Position", "KeyValue", "Setting", "Expect", "ComponentRef", "NameRef",
              "Call", "SetOp", "Channel", "Number", "String", "Ident", "GenCall", "IndexRange"}
    assert wanted - seen == set()


# ---------------------------------------------------------------------------------
# Syntax errors: code and place, asserted here as well as in the goldens.
# ---------------------------------------------------------------------------------

SYNTAX_ERRORS = {
    "err_unexpected_character": ("E101", 4, 21),
    "err_unexpected_token": ("E102", 4, 14),
    "err_unexpected_eof": ("E103", 4, 20),
    "err_unexpected_eof_after_arrow": ("E103", 2, 21),
    "err_reversed_layer_range": ("E104", 4, 5),
    "err_reversed_head_range": ("E104", 2, 11),
    "err_bad_channel": ("E105", 4, 14),
    "err_bad_channel_on_mlp": ("E105", 2, 22),
    "err_bad_channel_on_paren": ("E105", 2, 22),
    "err_reserved_name": ("E107", 3, 7),
    "err_reserved_param": ("E107", 2, 21),
    "err_reserved_import_alias": ("E107", 1, 27),
    "err_bad_escape": ("E108", 2, 18),
    "err_missing_brace": ("E102", 6, 1),
    "err_unterminated_string": ("E101", 2, 15),
    "err_missing_model_name": ("E103", 1, 6),
    "err_expect_without_kind": ("E102", 3, 1),
    "err_check_without_on": ("E102", 1, 9),
    "err_nested_too_deep": ("E110", 2, 70),
}


def test_syntax_error_table_covers_every_error_fixture() -> None:
    assert sorted(SYNTAX_ERRORS) == sorted(p.stem for p in ERROR_FIXTURES)


@pytest.mark.parametrize("stem", sorted(SYNTAX_ERRORS))
def test_syntax_error_code_and_position(stem: str) -> None:
    code, line, column = SYNTAX_ERRORS[stem]
    module, diagnostics = parse_file(PARSE_FIXTURES / f"{stem}.circ", f"{stem}.circ")
    assert [(d.code, d.span.line, d.span.column) for d in diagnostics] == [(code, line, column)]
    (d,) = diagnostics
    assert d.code in CODES and d.is_error
    assert d.span.path == f"{stem}.circ"
    assert (d.span.end_line, d.span.end_column) >= (d.span.line, d.span.column)
    assert module.statements == ()


def test_reversed_range_help_gives_the_right_order() -> None:
    _, (d,) = parse_text("group g = L5..3.H0", "x.circ")
    assert d.code == "E104" and "5..3" in d.message and d.help == "write `3..5`"


def test_mlp_channel_help_explains_mlps() -> None:
    _, (d,) = parse_text("circuit c { embed -> L1.MLP.MLP }", "x.circ")
    assert d.code == "E105" and "MLP" in (d.help or "")


def test_bad_escape_span_covers_the_escape() -> None:
    _, (d,) = parse_text('circuit c "ab\\q" { }', "x.circ")
    source_line = 'circuit c "ab\\q" { }'
    assert d.code == "E108"
    assert source_line[d.span.column - 1:d.span.end_column - 1] == "\\q"


def test_channel_on_parenthesised_set_span_starts_at_the_parenthesis() -> None:
    source = "circuit c { embed -> (L1.H1 | L1.H2).query }"
    _, (d,) = parse_text(source, "x.circ")
    assert d.code == "E105"
    assert source[d.span.column - 1:d.span.end_column - 1] == "(L1.H1 | L1.H2).query"


@pytest.mark.parametrize("source", ["model gpt2// the small one\n", "model gpt2//note\n"])
def test_comment_right_after_a_model_name(source: str) -> None:
    module, diagnostics = parse_text(source, "x.circ")
    assert diagnostics == []
    assert module.statements[0].name == "gpt2"
    assert len(module.comments) == 1


def test_unexpected_token_message_is_grammatical() -> None:
    _, (d,) = parse_text("model gpt2 gpt3", "x.circ")
    assert d.code == "E102"
    assert not d.message.startswith("unexpected a "), d.message


def test_unexpected_eof_line_ignores_form_feeds() -> None:
    source = "// a\x0cb\ncircuit c {"
    _, (d,) = parse_text(source, "x.circ")
    assert d.code == "E103"
    assert (d.span.line, d.span.column) == (2, 12)


# ---------------------------------------------------------------------------------
# Expressions: precedence, flattening, channels
# ---------------------------------------------------------------------------------


def _alias_expr(text: str) -> S.Expr:
    module, diagnostics = parse_text(f"circuit c = {text}", "x.circ")
    assert diagnostics == []
    (stmt,) = module.statements
    assert isinstance(stmt, S.CircuitDef) and stmt.expr is not None
    return stmt.expr


def N(*parts: str) -> S.NameRef:  # noqa: N802 - a tiny constructor for readable expectations
    return S.NameRef(parts)


@pytest.mark.parametrize(("text", "expected"), [
    ("a | b - c & d", "(a | ((b - c) & d))"),
    ("a - b | c", "((a - b) | c)"),
    ("a & b | c & d", "((a & b) | (c & d))"),
    ("a | b & c - d", "(a | (b & (c - d)))"),
    ("a - b - c", "(a - b - c)"),
    ("(a - b) - c", "((a - b) - c)"),
    ("a - (b - c)", "(a - (b - c))"),
    ("(a | b) & c", "((a | b) & c)"),
    ("((a))", "a"),
    ("a | b | c | d", "(a | b | c | d)"),
])
def test_set_operator_precedence(text: str, expected: str) -> None:
    assert dump_expr(_alias_expr(text)) == expected


def test_same_operator_chain_is_flat() -> None:
    expr = _alias_expr(" | ".join(f"L0.H{i}" for i in range(50)))
    assert isinstance(expr, S.SetOp) and expr.op == "|" and len(expr.operands) == 50


def test_channels_on_every_kind_of_expression() -> None:
    module, diagnostics = parse_text(
        "circuit c { embed -> L1.H2.q, g.k, lib.g.v, (a | b).q, L1.MLP.q }", "x.circ")
    assert diagnostics == []
    targets = [t.expr for t in module.statements[0].body[0].targets]
    assert targets == [
        S.Channel(S.ComponentRef(S.IndexRange(1, 1), S.IndexRange(2, 2)), "q"),
        S.Channel(N("g"), "k"),
        S.Channel(N("lib", "g"), "v"),
        S.Channel(S.SetOp("|", (N("a"), N("b"))), "q"),
        # A channel on an MLP is syntax; the checker rejects it later (E204).
        S.Channel(S.ComponentRef(S.IndexRange(1, 1), None), "q"),
    ]


def test_component_forms() -> None:
    expr = _alias_expr("L5..7.H0..3 | L*.H* | L3.MLP | L*.MLP | L007.H01")
    assert isinstance(expr, S.SetOp)
    assert expr.operands == (
        S.ComponentRef(S.IndexRange(5, 7), S.IndexRange(0, 3)),
        S.ComponentRef(S.IndexRange(None, None), S.IndexRange(None, None)),
        S.ComponentRef(S.IndexRange(3, 3), None),
        S.ComponentRef(S.IndexRange(None, None), None),
        S.ComponentRef(S.IndexRange(7, 7), S.IndexRange(1, 1)),
    )


@pytest.mark.parametrize(("text", "expected"), [
    ("L5", N("L5")),                 # a layer without a head is a plain name
    ("L5.foo", N("L5", "foo")),      # not a component: a qualified name
    ("L5.H1x", N("L5", "H1x")),
    ("MLP", N("MLP")),
])
def test_component_lookalikes_are_names(text: str, expected: S.Expr) -> None:
    assert _alias_expr(text) == expected


def test_call_needs_the_parenthesis_right_after_the_name() -> None:
    """`a (b | c).q` on two lines is two statements, never a call."""
    module, diagnostics = parse_text("circuit c {\n    a -> b\n    (b | c).q\n}", "x.circ")
    assert diagnostics == []
    body = module.statements[0].body
    assert [type(s).__name__ for s in body] == ["EdgeStmt", "NodeStmt"]
    assert body[1].nodes == (S.Channel(S.SetOp("|", (N("b"), N("c"))), "q"),)


def test_call_with_dotted_callee_and_no_args() -> None:
    assert _alias_expr("lib.motif()") == S.Call(N("lib", "motif"), ())


# ---------------------------------------------------------------------------------
# Positions, values, strings
# ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "anchor", "offset"), [
    ("@END", "END", 0), ("@S1+1", "S1", 1), ("@S2-3", "S2", -3), ("@-1", -1, 0), ("@0", 0, 0),
    ("@0+2", 0, 2), ("@-2-1", -2, -1),
])
def test_positions(text: str, anchor: str | int, offset: int) -> None:
    module, diagnostics = parse_text(f"circuit c {{ a -> b {text} }}", "x.circ")
    assert diagnostics == []
    position = module.statements[0].body[0].targets[0].position
    assert position == S.Position(anchor, offset)
    assert str(position) == text


@pytest.mark.parametrize(("text", "value", "kind"), [
    ("16", 16, int), ("-3", -3, int), ("0.5", 0.5, float), (".5", 0.5, float), ("5.", 5.0, float),
    ("1e3", 1000.0, float), ("-1.25e-3", -0.00125, float), ("007", 7, int),
])
def test_numbers_keep_int_or_float(text: str, value: float, kind: type) -> None:
    module, diagnostics = parse_text(f"task t {{ seed {text} }}", "x.circ")
    assert diagnostics == []
    number = module.statements[0].settings[0].values[0]
    assert isinstance(number, S.Number) and number.value == value and type(number.value) is kind
    assert number.text == text


def test_string_escapes() -> None:
    module, diagnostics = parse_text(r'circuit c "q\" b\\ n\n t\t ü" { }', "x.circ")
    assert diagnostics == []
    assert module.statements[0].doc == 'q" b\\ n\n t\t ü'


def test_keywords_are_not_names_where_a_keyword_fits() -> None:
    """`expect` ends an option list; it is not read as an option value's continuation."""
    module, diagnostics = parse_text(
        "check c on t { expect minimal with epsilon = tiny expect sufficient }", "x.circ")
    assert diagnostics == []
    assert [e.kind for e in module.statements[0].expects] == ["minimal", "sufficient"]


# ---------------------------------------------------------------------------------
# Spans and comments
# ---------------------------------------------------------------------------------


def test_spans_are_one_based_and_end_exclusive() -> None:
    source = "model gpt2\ncircuit c {\n    L9.H6 -> logits\n}\n"
    module, _ = parse_text(source, "s.circ")
    model, circuit = module.statements
    assert model.span == S.Span("s.circ", 1, 7, 1, 11)
    assert circuit.name_span == S.Span("s.circ", 2, 9, 2, 10)
    assert (circuit.span.end_line, circuit.span.end_column) == (4, 2)
    edge = circuit.body[0]
    assert edge.span == S.Span("s.circ", 3, 5, 3, 20)
    assert edge.sources[0].span == S.Span("s.circ", 3, 5, 3, 10)


def test_every_expression_carries_a_span() -> None:
    for path in VALID_FIXTURES:
        module, _ = parse_file(path, path.name)

        def walk(node: object) -> None:
            if isinstance(node, tuple):
                for item in node:
                    walk(item)
                return
            fields = getattr(node, "__dataclass_fields__", None)
            if fields is None:
                return
            if "span" in fields:
                span = node.span  # type: ignore[attr-defined]
                assert span.path == path.name and span.line >= 1 and span.column >= 1, (path.name, node)
            for name in fields:
                if name not in ("span", "name_span"):
                    walk(getattr(node, name))

        walk(module.statements)


def test_crlf_line_endings_keep_columns() -> None:
    source = "model gpt2\r\ncircuit c {\r\n\tL9.H6 -> logits // note\r\n}\r\n"
    module, diagnostics = parse_text(source, "x.circ")
    assert diagnostics == []
    edge = module.statements[1].body[0]
    assert (edge.span.line, edge.span.column) == (3, 2)  # a tab is one column
    assert edge.targets[0].expr.span == S.Span("x.circ", 3, 11, 3, 17)
    (comment,) = module.comments
    assert (comment.line, comment.column) == (3, 18)
    lf_module, _ = parse_text(source.replace("\r\n", "\n"), "x.circ")
    assert lf_module == module


def test_crlf_error_position() -> None:
    _, (d,) = parse_text("model gpt2\r\ncircuit c {\r\n    L0.H1 -> $\r\n}\r\n", "x.circ")
    assert (d.code, d.span.line, d.span.column) == ("E101", 3, 14)


def test_comments_are_collected_in_order() -> None:
    module, _ = parse_file(PARSE_FIXTURES / "comments.circ", "comments.circ")
    lines = [c.line for c in module.comments]
    assert lines == sorted(lines) and len(lines) == 14
    assert all(c.text.startswith("//") for c in module.comments)


def test_comments_are_collected_even_on_error() -> None:
    module, diagnostics = parse_text("// hello\ncircuit c { $ }", "x.circ")
    assert diagnostics[0].code == "E101"
    assert [c.text for c in module.comments] == ["// hello"]


def test_parses_do_not_leak_state_into_each_other() -> None:
    """Path and comments are per parse, though the parser object is shared."""
    a, _ = parse_text("// one\ngroup g = L0.H1", "a.circ")
    b, _ = parse_text("group h = L0.H2", "b.circ")
    assert [c.text for c in a.comments] == ["// one"] and b.comments == ()
    assert a.statements[0].span.path == "a.circ" and b.statements[0].span.path == "b.circ"


def test_empty_and_comment_only_files_warn() -> None:
    for source in ("", "   \n\t\n", "// only a comment\n"):
        module, diagnostics = parse_text(source, "x.circ")
        assert module.statements == ()
        assert [d.code for d in diagnostics] == ["W005"]
        assert not diagnostics[0].is_error


def test_examples_and_stdlib_parse_cleanly(root: Path) -> None:
    files = [root / "examples" / "first_circuit.circ", *sorted((root / "stdlib").rglob("*.circ"))]
    for path in files:
        _, diagnostics = parse_file(path)
        assert diagnostics == [], path


ANNOTATION_LISTS = [  # (text between the brackets, number of annotations)
    ("score = 0.5", 1),
    ("score=-1.25e-3,label=\"a = b, ]\"", 2),
    ("\tscore = 3 ,  kind = foo , note = \"esc \\\" \\\\ done\"  ", 3),
    ("a = 1., b = .5, c = -7, d = _x9", 4),
    ("big = 123456789012345678", 1),
]


def _annotations(source: str) -> tuple[S.KeyValue, ...]:
    module, diagnostics = parse_text(source, "a.circ")
    assert not diagnostics, diagnostics
    circuit = module.statements[1]
    return circuit.body[0].targets[0].annotations


def _spans(items: tuple[S.KeyValue, ...]) -> list[tuple[S.Span, S.Span]]:
    return [(kv.span, kv.value.span) for kv in items]


@pytest.mark.parametrize("content, count", ANNOTATION_LISTS)
def test_one_token_annotations_equal_the_general_form(content: str, count: int, monkeypatch) -> None:
    """`[k = v, ...]` on one line is lexed as one token (speed) and split by the builder;
    a newline before `]` sends the same text through the general rule. Same annotations,
    same spans."""
    from circuitlang.lang.parse import _Builder

    split = _Builder._split_annotations
    calls: list[str] = []
    monkeypatch.setattr(_Builder, "_split_annotations", lambda self, tok: calls.append(str(tok)) or split(self, tok))
    head = "model gpt2\ncircuit c {\n    L0.H1 -> L1.H2.q @END "
    fast = _annotations(f"{head}[{content}]\n}}\n")
    assert calls == [f"[{content}]"]
    general = _annotations(f"{head}[{content}\n]\n}}\n")
    assert len(calls) == 1
    assert fast == general and len(fast) == count
    assert _spans(fast) == _spans(general)


@pytest.mark.parametrize("content", ["score = 1e999", "score = 1" + "0" * 400])
def test_one_token_annotations_report_bad_numbers_where_they_are(content: str) -> None:
    head = "model gpt2\ncircuit c {\n    L0.H1 -> L1.H2.q "
    fast = parse_text(f"{head}[{content}]\n}}\n", "a.circ")[1]
    general = parse_text(f"{head}[{content}\n]\n}}\n", "a.circ")[1]
    assert [(d.code, d.span) for d in fast] == [(d.code, d.span) for d in general]
    assert [d.code for d in fast] == ["E109"] and fast[0].span.column == len("    L0.H1 -> L1.H2.q [score = ") + 1


def test_parsing_is_reentrant_across_threads() -> None:
    """Each parse has its own builder and comment list (a pool of parsers): files parsed at
    the same time in several threads keep their own paths, spans and comments."""
    from concurrent.futures import ThreadPoolExecutor

    body = "".join(f"    L{layer}.H{head} -> logits  // edge {layer}.{head}\n" for layer in range(12) for head in range(12))
    sources = {f"f{i}.circ": f"// file {i}\nmodel gpt2\ncircuit c{i} {{\n{body}}}  // end {i}\n" for i in range(12)}
    alone = {path: parse_text(text, path) for path, text in sources.items()}
    with ThreadPoolExecutor(max_workers=8) as pool:
        together = dict(zip(sources, pool.map(lambda item: parse_text(item[1], item[0]), sources.items())))
    for path, (module, diagnostics) in together.items():
        assert (module, diagnostics) == alone[path]
        assert [c.text for c in module.comments] == [c.text for c in alone[path][0].comments]
        assert module.statements[1].name_span.path == path

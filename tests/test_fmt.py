"""`circ fmt`: the canonical layout, golden files, and the formatter's promises.

Guards:
* messy layout in, canonical text out (tests/fixtures/fmt/NAME.circ ->
  NAME.expected.circ): spacing, indentation, wrapping of long lists at 100 columns,
  comments (leading, trailing, inside wrapped statements, before `}`, end of file),
  blank lines (kept, at most one), sorting of import runs;
* the formatter's promises on every fixture, example and stdlib file: the output is a
  fixed point (`fmt(fmt(x)) == fmt(x)`), it means the same (`parse(fmt(x)) == parse(x)`,
  import runs aside, which fmt sorts), and it keeps every comment;
* the pieces: minimal parentheses, string escapes, numbers, CRLF input.

Regenerate goldens with `UPDATE_GOLDEN=1 pytest tests/test_fmt.py` and read the diff.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from circuitlang.lang import syntax as S
from circuitlang.lang.fmt import WIDTH, format_expr, format_module, format_string
from circuitlang.lang.parse import parse_file, parse_text
from tests.conftest import FIXTURES, ROOT, assert_golden
from tests.strategies import sort_import_runs

FMT_FIXTURES = FIXTURES / "fmt"
INPUTS = sorted(p for p in FMT_FIXTURES.glob("*.circ") if not p.name.endswith(".expected.circ"))
EXPECTED = sorted(FMT_FIXTURES.glob("*.expected.circ"))

# Every valid .circ file we have: the fmt inputs and outputs, the parse fixtures,
# the examples and the standard library.
VALID_FILES = (
    INPUTS + EXPECTED
    + sorted(p for p in (FIXTURES / "parse").glob("*.circ") if not p.name.startswith("err_"))
    + sorted((ROOT / "examples").glob("*.circ")) + sorted((ROOT / "stdlib").rglob("*.circ"))
)


def _id(path: Path) -> str:
    return str(path.relative_to(ROOT))


def fmt_text(source: str) -> str:
    module, diagnostics = parse_text(source, "x.circ")
    assert [d for d in diagnostics if d.is_error] == [], diagnostics
    return format_module(module)


def same_meaning(a: S.Module, b: S.Module) -> bool:
    """Equal trees, with each run of imports compared in sorted order (fmt sorts them)."""
    return sort_import_runs(list(a.statements)) == sort_import_runs(list(b.statements))


def comment_texts(module: S.Module) -> Counter:
    return Counter(c.text.rstrip() for c in module.comments)


# ---------------------------------------------------------------------------------
# Golden files
# ---------------------------------------------------------------------------------


@pytest.mark.parametrize("path", INPUTS, ids=lambda p: p.stem)
def test_fmt_matches_golden(path: Path) -> None:
    expected = path.with_name(path.stem + ".expected.circ")
    assert_golden(expected, fmt_text(path.read_text(encoding="utf-8")))


def test_every_expected_file_has_an_input() -> None:
    stems = {p.stem for p in INPUTS}
    assert [p.name for p in EXPECTED if p.name[: -len(".expected.circ")] not in stems] == []


# ---------------------------------------------------------------------------------
# Promises, on every valid file
# ---------------------------------------------------------------------------------


@pytest.mark.parametrize("path", VALID_FILES, ids=_id)
def test_fmt_is_idempotent(path: Path) -> None:
    once = fmt_text(path.read_text(encoding="utf-8"))
    assert fmt_text(once) == once


@pytest.mark.parametrize("path", VALID_FILES, ids=_id)
def test_fmt_keeps_the_meaning(path: Path) -> None:
    before, _ = parse_file(path)
    after, diagnostics = parse_text(format_module(before), "x.circ")
    assert [d for d in diagnostics if d.is_error] == []
    assert same_meaning(before, after)


@pytest.mark.parametrize("path", VALID_FILES, ids=_id)
def test_fmt_keeps_every_comment(path: Path) -> None:
    before, _ = parse_file(path)
    after, _ = parse_text(format_module(before), "x.circ")
    assert comment_texts(after) == comment_texts(before)


@pytest.mark.parametrize("path", EXPECTED + sorted((ROOT / "examples").glob("*.circ"))
                         + sorted((ROOT / "stdlib").rglob("*.circ")), ids=_id)
def test_canonical_files_are_fixed_points(path: Path) -> None:
    """The goldens, the examples and the standard library are already in canonical form."""
    source = path.read_text(encoding="utf-8")
    assert fmt_text(source) == source


@pytest.mark.parametrize("path", EXPECTED, ids=lambda p: p.stem)
def test_canonical_layout_rules(path: Path) -> None:
    """No tabs, no trailing spaces, no double blank lines, one final newline, width kept."""
    text = path.read_text(encoding="utf-8")
    assert "\t" not in text and text.endswith("\n") and not text.endswith("\n\n")
    assert "\n\n\n" not in text and not text.startswith("\n")
    for line in text.splitlines():
        assert line == line.rstrip()
        indent = len(line) - len(line.lstrip(" "))
        assert indent % 4 == 0, line
        if len(line) > WIDTH and "//" not in line:
            # Only a line holding a single unbreakable item may be wider.
            assert _top_level_items(line) == 1, line


def _top_level_items(line: str) -> int:
    """How many list items a line holds: commas outside brackets, parentheses and strings."""
    depth, in_string, escaped, items = 0, False, False, 1
    body = line.rstrip().rstrip(",")
    for ch in body:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
            continue
        if ch == '"':
            in_string = True
        elif ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        elif ch == "," and depth == 0:
            items += 1
    return items


def test_wrapped_lines_fill_to_the_width() -> None:
    text = (FMT_FIXTURES / "wrapping.expected.circ").read_text(encoding="utf-8")
    lines = text.splitlines()
    # The fixture nests one block deep, so every line indented 8 or more is a continuation.
    wrapped = [i for i, line in enumerate(lines) if line.startswith(" " * 8)]
    assert wrapped, "the fixture should wrap"
    for i in wrapped:
        # A continuation exists only because the line above was full.
        previous = lines[i - 1]
        first_item = lines[i].strip().split(", ")[0]
        assert len(previous) + 1 + len(first_item) + 1 > WIDTH, (previous, lines[i])


# ---------------------------------------------------------------------------------
# Pieces
# ---------------------------------------------------------------------------------


def test_crlf_input_gives_lf_output() -> None:
    source = (FMT_FIXTURES / "comments.circ").read_text(encoding="utf-8")
    crlf = source.replace("\n", "\r\n")
    assert fmt_text(crlf) == fmt_text(source)
    assert "\r" not in fmt_text(crlf)


def test_trailing_whitespace_and_missing_final_newline() -> None:
    assert fmt_text("model gpt2   \t") == "model gpt2\n"


def test_empty_and_comment_only_files() -> None:
    assert fmt_text("") == ""
    assert fmt_text("\n\n  \n") == ""
    assert fmt_text("\n\n// just this   \n\n\n// and this\n\n") == "// just this\n\n// and this\n"


def N(*parts: str) -> S.NameRef:  # noqa: N802
    return S.NameRef(parts)


@pytest.mark.parametrize(("expr", "text"), [
    (S.SetOp("|", (N("a"), S.SetOp("&", (N("b"), N("c"))))), "a | b & c"),
    (S.SetOp("&", (S.SetOp("|", (N("a"), N("b"))), N("c"))), "(a | b) & c"),
    (S.SetOp("-", (N("a"), S.SetOp("-", (N("b"), N("c"))))), "a - (b - c)"),
    (S.SetOp("-", (S.SetOp("-", (N("a"), N("b"))), N("c"))), "(a - b) - c"),
    (S.SetOp("|", (N("a"), N("b"), N("c"))), "a | b | c"),
    (S.SetOp("-", (S.SetOp("&", (N("a"), N("b"))), N("c"))), "(a & b) - c"),
    (S.Channel(S.SetOp("|", (N("a"), N("b"))), "q"), "(a | b).q"),
    (S.Channel(S.Channel(N("a"), "q"), "k"), "(a.q).k"),
    (S.Channel(S.Call(N("m"), (N("a"),)), "v"), "(m(a)).v"),
    (S.Call(N("lib", "m"), (S.SetOp("|", (N("a"), N("b"))), N("c"))), "lib.m(a | b, c)"),
    (S.Channel(S.ComponentRef(S.IndexRange(5, 7), S.IndexRange(None, None)), "q"), "L5..7.H*.q"),
])
def test_format_expr_uses_the_fewest_parentheses(expr: S.Expr, text: str) -> None:
    assert format_expr(expr) == text
    module, diagnostics = parse_text(f"circuit c = {text}", "x.circ")
    assert diagnostics == [] and module.statements[0].expr == expr


@pytest.mark.parametrize(("value", "text"), [
    ('say "hi"', r'"say \"hi\""'),
    ("back\\slash", r'"back\\slash"'),
    ("line\nbreak\ttab", r'"line\nbreak\ttab"'),
    ("ünï ✓ 😀", '"ünï ✓ 😀"'),
    ("", '""'),
])
def test_format_string_escapes(value: str, text: str) -> None:
    assert format_string(value) == text
    module, diagnostics = parse_text(f"circuit c {text} {{ }}", "x.circ")
    assert diagnostics == [] and module.statements[0].doc == value


def test_a_run_of_imports_is_sorted() -> None:
    source = 'model gpt2\nimport stdlib.b\nimport "z.circ" as z\nimport a.c as x\nimport a.b\n'
    assert fmt_text(source) == 'model gpt2\n\nimport "z.circ" as z\nimport a.b\nimport a.c as x\nimport stdlib.b\n'


def test_a_comment_inside_a_run_of_imports_keeps_its_order() -> None:
    source = "import b.x\n// about a\nimport a.x\n"
    assert fmt_text(source) == source


def test_each_block_of_imports_is_sorted_on_its_own() -> None:
    source = "import b.x\nimport a.x\n\nimport d.x\nimport c.x\n"
    assert fmt_text(source) == "import a.x\nimport b.x\n\nimport c.x\nimport d.x\n"


def test_unquoted_model_name_that_needs_quotes_gets_them() -> None:
    module = S.Module((S.ModelDecl("my model", quoted=False),))
    assert format_module(module) == 'model "my model"\n'


def test_overflowing_number_is_refused_not_formatted_as_inf() -> None:
    # 1e999 would parse to float infinity, which fmt could only print as `inf`.
    source = "check c on t {\n    expect faithfulness >= 1e999\n}\n"
    _, diagnostics = parse_text(source, "x.circ")
    assert [d.code for d in diagnostics] == ["E109"]


@pytest.mark.parametrize("char", ["\x0c", "\x85", "\u2028"])
def test_blank_line_after_odd_line_break_character_is_kept(char: str) -> None:
    source = f'circuit c "a{char}b" {{\n    L0.H1 -> logits\n\n    L0.H2 -> logits\n}}\n'
    assert fmt_text(source) == source

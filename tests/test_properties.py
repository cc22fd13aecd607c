"""Property tests and fuzzing of the parser, formatter and static pipeline (hypothesis).

Guards:
* round trip: for any syntax tree, `parse(format(tree)) == tree` (spans ignored) and
  the formatter is idempotent, also after comments and blank lines are sprinkled into
  its output; `format` never raises;
* robustness: mutations of every valid file we have (deleted, inserted, duplicated,
  swapped and truncated characters and tokens, "nasty" bytes), generated modules,
  and random text all come back from `compile_text` as diagnostics, never as an
  exception; every diagnostic has a registered code and a real span;
* speed: each example runs under a hypothesis deadline, so a parser that hangs or
  goes quadratic on some input fails here.

Runs are derandomized (the same examples every run, tests/conftest.py) so CI is stable;
set CIRCUITLANG_EXPLORE=1 (and CIRCUITLANG_FUZZ_EXAMPLES=5000, say) to explore afresh.
"""

from __future__ import annotations

import math
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from circuitlang.core.diagnostics import CODES, Diagnostic
from circuitlang.lang import syntax as S
from circuitlang.lang.fmt import format_expr, format_module, format_string, format_value, format_verified
from circuitlang.lang.parse import parse_text
from circuitlang.lang.pipeline import compile_text
from tests.conftest import FIXTURES, ROOT, examples
from tests.strategies import exprs, keyword_programs, modules, sort_import_runs, texts, values

# ---------------------------------------------------------------------------------
# Round trip on generated trees
# ---------------------------------------------------------------------------------


def parse_clean(text: str) -> S.Module:
    module, diagnostics = parse_text(text, "gen.circ")
    problems = [d for d in diagnostics if not (d.code == "W005" and module.statements == ())]
    assert problems == [], (text, problems)
    return module


@examples(300, deadline_ms=None)
@given(exprs)
def test_expression_round_trip(expr: S.Expr) -> None:
    text = format_expr(expr)
    module = parse_clean(f"circuit c = {text}")
    assert module.statements[0].expr == expr, text


@examples(300, deadline_ms=None)
@given(values)
def test_value_round_trip(value: S.Value) -> None:
    text = format_value(value)
    module = parse_clean(f"task t {{ key {text} }}")
    assert module.statements[0].settings[0].values == (value,), text


@examples(300, deadline_ms=None)
@given(texts)
def test_string_round_trip(text: str) -> None:
    module = parse_clean(f"circuit c {format_string(text)} {{ }}")
    assert module.statements[0].doc == text


@pytest.mark.slow
@examples(200, deadline_ms=None)
@given(modules())
def test_parse_of_format_is_identity(module: S.Module) -> None:
    text = format_module(module)
    assert parse_clean(text) == module, text


@pytest.mark.slow
@examples(200, deadline_ms=None)
@given(modules())
def test_format_is_idempotent(module: S.Module) -> None:
    once = format_module(module)
    assert format_module(parse_clean(once)) == once


@pytest.mark.slow
@examples(150, deadline_ms=None)
@given(modules(), st.data())
def test_format_is_idempotent_with_comments_and_blank_lines(module: S.Module, data: st.DataObject) -> None:
    """Comments and blank lines sprinkled between and after the lines of canonical text."""
    canonical = format_module(module)
    lines: list[str] = []
    for i, line in enumerate(canonical.split("\n")):
        choice = data.draw(st.integers(0, 5), label=f"line {i}")
        if choice == 0:
            lines.append("")
        elif choice == 1:
            lines.append(f"// above {i}")
        elif choice == 3:
            lines.append("\n\n")
        lines.append(line + (f"   // after {i}" if choice == 2 and line.strip() else ""))
    messy = "\n".join(lines)
    parsed = parse_clean(messy)
    assert parsed == module
    once = format_module(parsed)
    again = parse_clean(once)
    assert again == module, once
    assert sorted(c.text.rstrip() for c in again.comments) == sorted(c.text.rstrip() for c in parsed.comments)
    assert format_module(again) == once


# ---------------------------------------------------------------------------------
# fmt on whole programs: keyword names in parentheses, several statements a line
# ---------------------------------------------------------------------------------


def compiled_meaning(text: str) -> tuple:
    """What a program compiles to: its diagnostic codes, circuits (by content hash), tasks and checks."""
    result = compile_text(text, "gen.circ", check_files=False)
    return (sorted(d.code for d in result.diagnostics), {n: g.content_hash for n, g in result.circuits.items()},
            sorted(result.tasks), len(result.checks))


@examples(40, deadline_ms=None)
@given(keyword_programs())
def test_fmt_keeps_the_compiled_circuits_and_is_idempotent(text: str) -> None:
    """`(group) -> logits`, `include (with)`, `expect necessary (expect)`, statements run
    together on one line: the formatted program compiles to the same circuits, tasks,
    checks and diagnostics, and formatting it again changes nothing."""
    module = parse_clean(text)
    once = format_verified(module)
    assert compiled_meaning(once) == compiled_meaning(text), (text, once)
    assert format_module(parse_clean(once)) == once, (text, once)


@examples(40, deadline_ms=None)
@given(keyword_programs(), st.data())
def test_fmt_never_modifies_a_file_it_cannot_parse(text: str, data: st.DataObject) -> None:
    """`circ fmt` on a mutated program: a file that does not parse keeps every byte and
    exits 1; one that parses is rewritten to a program with the same meaning, exit 0."""
    import tempfile
    from pathlib import Path

    from click.testing import CliRunner

    from circuitlang.cli import cli

    for _ in range(data.draw(st.integers(0, 3), label="mutations")):
        text = _mutate(data.draw, data.draw(st.sampled_from(["delete", "insert", "token_delete", "token_replace",
                                                               "token_swap", "truncate"])), text)
    _, diagnostics = parse_text(text, "gen.circ")
    parses = not any(d.is_error for d in diagnostics)
    with tempfile.TemporaryDirectory() as folder:
        file = Path(folder) / "gen.circ"
        file.write_bytes(text.encode("utf-8", errors="surrogatepass"))
        before = file.read_bytes()
        result = CliRunner().invoke(cli, ["fmt", str(file)], catch_exceptions=False)
        after = file.read_bytes()
    if not parses:
        assert result.exit_code == 1 and after == before, (text, result.output)
    else:
        assert result.exit_code == 0, (text, result.output)
        assert compiled_meaning(after.decode("utf-8")) == compiled_meaning(text), text


# ---------------------------------------------------------------------------------
# Fuzzing: mutations of valid files, generated modules, random text
# ---------------------------------------------------------------------------------

SEED_FILES = sorted(
    [*FIXTURES.joinpath("parse").glob("*.circ"), *FIXTURES.joinpath("fmt").glob("*.circ"),
     *ROOT.joinpath("examples").glob("*.circ"), *ROOT.joinpath("stdlib").rglob("*.circ")]
)
SEEDS = [p.read_text(encoding="utf-8") for p in SEED_FILES]
NASTY = list('{}()[]@.,-|&*"\\\n/=<>:#+ \t') + list("0123456789") + list("LHqkvMLPabz_") + \
    ["é", "→", "😀", "\u00a0", "\ufeff", "\x00", "\r", "..", "->", "//", "/*", "@-", "L1.H", ">=", '\\"']
TOKEN_RE = re.compile(r'"(?:[^"\\\n]|\\.)*"|//[^\n]*|[A-Za-z_][A-Za-z0-9_]*|\d+|->|\.\.|\S')
KEYWORDS = ["model", "import", "as", "group", "circuit", "include", "task", "check", "on", "with", "expect",
            "embed", "logits", "L0.H0", "L*.MLP", "@END", "[", "]", "{", "}", "(", ")"]


@st.composite
def mutated_sources(draw: st.DrawFn) -> str:
    text = draw(st.one_of(st.sampled_from(SEEDS), modules(max_statements=4).map(format_module), keyword_programs()))
    for _ in range(draw(st.integers(1, 5))):
        op = draw(st.sampled_from(["delete", "insert", "duplicate", "swap", "truncate", "token_delete",
                                   "token_duplicate", "token_swap", "token_replace"]))
        text = _mutate(draw, op, text)
    return text


def _mutate(draw: st.DrawFn, op: str, text: str) -> str:
    n = len(text)
    if op.startswith("token_"):
        spans = [m.span() for m in TOKEN_RE.finditer(text)]
        if not spans:
            return text
        a, b = spans[draw(st.integers(0, len(spans) - 1))]
        if op == "token_delete":
            return text[:a] + text[b:]
        if op == "token_duplicate":
            return text[:b] + " " + text[a:b] + text[b:]
        if op == "token_replace":
            return text[:a] + draw(st.sampled_from(KEYWORDS + NASTY)) + text[b:]
        c, d = spans[draw(st.integers(0, len(spans) - 1))]
        if (a, b) > (c, d):
            (a, b), (c, d) = (c, d), (a, b)
        if b > c:
            return text
        return text[:a] + text[c:d] + text[b:c] + text[a:b] + text[d:]
    i = draw(st.integers(0, n))
    if op == "delete":
        return text[:i] + text[i + draw(st.integers(1, 3)):]
    if op == "insert":
        return text[:i] + "".join(draw(st.lists(st.sampled_from(NASTY), min_size=1, max_size=4))) + text[i:]
    if op == "duplicate":
        j = min(n, i + draw(st.integers(1, 40)))
        return text[:j] + text[i:j] + text[j:]
    if op == "swap":
        j = draw(st.integers(0, n))
        if i == j or max(i, j) >= n:
            return text
        chars = list(text)
        chars[i], chars[j] = chars[j], chars[i]
        return "".join(chars)
    return text[:i]  # truncate


def assert_well_formed(diagnostics: "list[Diagnostic] | tuple[Diagnostic, ...]") -> None:
    assert isinstance(diagnostics, (list, tuple))
    for d in diagnostics:
        assert isinstance(d, Diagnostic)
        assert d.code in CODES
        assert d.message
        for span in (d.span, *(r.span for r in d.related)):
            assert span.path and span.path != S.NO_SPAN.path, d
            assert span.line >= 1 and span.column >= 1, d
            assert (span.end_line, span.end_column) >= (span.line, span.column), d


def _numbers(node: object) -> list[float]:
    found: list[float] = []
    if isinstance(node, S.Number):
        found.append(node.value)
    elif isinstance(node, tuple):
        for item in node:
            found += _numbers(item)
    elif hasattr(node, "__dataclass_fields__"):
        for name in node.__dataclass_fields__:  # type: ignore[attr-defined]
            if name not in ("span", "name_span"):
                found += _numbers(getattr(node, name))
    return found


def assert_format_promises(text: str) -> None:
    """If fuzzed text happens to be valid, formatting it must keep its meaning and comments."""
    module, diagnostics = parse_text(text, "fuzz.circ")
    if any(d.is_error for d in diagnostics):
        return
    assert all(math.isfinite(v) for v in _numbers(module.statements)), text  # 1e999 is E109
    once = format_module(module)
    again, diagnostics = parse_text(once, "fuzz.circ")
    assert not any(d.is_error for d in diagnostics), (text, once, diagnostics)
    assert sort_import_runs(list(again.statements)) == sort_import_runs(list(module.statements)), (text, once)
    assert sorted(c.text.rstrip() for c in again.comments) == sorted(c.text.rstrip() for c in module.comments)
    assert format_module(again) == once, (text, once)


BASE_DIR = FIXTURES / "parse"  # imports in fuzzed text resolve here (harmless fixture files)


@pytest.mark.slow
@examples(400, deadline_ms=2000)
@given(mutated_sources())
def test_mutated_files_give_diagnostics_not_exceptions(text: str) -> None:
    result = compile_text(text, "fuzz.circ", base_dir=BASE_DIR, check_files=False)
    assert_well_formed(result.diagnostics)
    assert_format_promises(text)


VALID_SEEDS = [text for text in SEEDS if not any(d.is_error for d in parse_text(text, "seed.circ")[1])]
PROTECTED_RE = re.compile(r'"(?:[^"\\\n]|\\.)*"|//[^\n]*')  # strings and comments
# Between tokens: at whitespace, around punctuation, before a position; never between a
# call's name and its `(` (a call is `name(` with nothing between), nor inside `>=`.
BOUNDARY_RE = re.compile(r"\s+|(?<=[{}(),\[\]=])|(?=[{})\],@])|(?<![<>])(?==)|(?<!\w)(?=\()|(?=->)|(?<=->)")


@examples(300, deadline_ms=2000)
@given(st.sampled_from(VALID_SEEDS), st.data())
def test_comments_anywhere_survive_formatting(text: str, data: st.DataObject) -> None:
    """A comment or blank line at any token boundary of a valid file: fmt keeps meaning and comments."""
    protected = [m.span() for m in PROTECTED_RE.finditer(text)]
    boundaries = sorted({m.start() for m in BOUNDARY_RE.finditer(text)
                         if not any(a < m.start() < b for a, b in protected)})
    if not boundaries:
        return
    chosen = data.draw(st.lists(st.sampled_from(boundaries), min_size=1, max_size=4, unique=True))
    for i, at in enumerate(sorted(chosen, reverse=True)):
        insert = data.draw(st.sampled_from([f" // c{i}\n", f"\n// c{i}\n", "\n\n\n", f" //c{i}\n\n", f"//c{i}\n"]))
        text = text[:at] + insert + text[at:]
    module, diagnostics = parse_text(text, "fuzz.circ")
    assert not any(d.is_error for d in diagnostics), (text, diagnostics)
    assert_format_promises(text)


@pytest.mark.slow
@examples(150, deadline_ms=2000)
@given(modules(), st.sampled_from(["", "model gpt2\n", "model attn-only-2l\n", "model zoo:induction-2l\n"]))
def test_generated_modules_compile_without_exceptions(module: S.Module, prefix: str) -> None:
    """Well-formed but meaningless programs: unknown names, bad ranges, odd calls, wrong kinds."""
    result = compile_text(prefix + format_module(module), "gen.circ", base_dir=BASE_DIR, check_files=False)
    assert_well_formed(result.diagnostics)


@examples(300, deadline_ms=2000)
@given(st.lists(st.sampled_from(NASTY), max_size=60).map("".join))
def test_nasty_text_gives_diagnostics_not_exceptions(text: str) -> None:
    module, diagnostics = parse_text(text, "fuzz.circ")
    assert_well_formed(diagnostics)
    assert isinstance(module, S.Module)
    result = compile_text(text, "fuzz.circ", base_dir=BASE_DIR, check_files=False)
    assert_well_formed(result.diagnostics)


@examples(200, deadline_ms=2000)
@given(st.text(max_size=200))
def test_any_unicode_text_parses_without_exceptions(text: str) -> None:
    module, diagnostics = parse_text(text, "fuzz.circ")
    assert_well_formed(diagnostics)
    if any(d.is_error for d in diagnostics):
        assert module.statements == ()


def test_seed_files_were_found() -> None:
    assert len(SEEDS) >= 20
    assert any(p.parent.name == "stdlib" or "stdlib" in p.parts for p in SEED_FILES)


def test_mutations_of_a_big_file_stay_fast() -> None:
    """A 2,000-edge file and a broken copy of it both come back quickly (no pathological parse)."""
    edges = "\n".join(f"    L{i % 12}.H{i % 7} -> L{(i % 12) + 1 if i % 12 < 11 else 11}.H{i % 5}.q"
                      for i in range(2000))
    source = f"model gpt2\ncircuit big {{\n{edges}\n}}\n"
    broken = source[: len(source) // 2] + "}}} ->" + source[len(source) // 2:]
    for text in (source, broken):
        module, diagnostics = parse_text(text, "big.circ")
        assert_well_formed(diagnostics)
    _, (d,) = parse_text(broken, "big.circ")
    assert d.code in ("E101", "E102")

"""Hardening of the parser and what surrounds it (issue 15): did-you-mean stays fast and
gives difflib's answer, misspelt keywords get a suggestion, snippets line up under tabs and
wide characters and drop a BOM, folder arguments get a clear usage error, `model` takes
unquoted paths, deep nesting is a diagnostic, and the documented diagnostic output is the
real output.
"""

from __future__ import annotations

import difflib
import os
import random
import re
import string
from pathlib import Path

import pytest

from circuitlang.cli.common import UsageError, circ_files
from circuitlang.core.diagnostics import Diagnostic, did_you_mean
from circuitlang.core.spans import Span
from circuitlang.lang.parse import model_name_needs_quotes, parse_text
from circuitlang.lang.pipeline import compile_text
from circuitlang.present.diagnostic_text import render_concise, render_full
from tests.conftest import ROOT


def _difflib(word: str, candidates: list[str]) -> str | None:
    matches = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    return f"did you mean `{matches[0]}`?" if matches else None


# -- 1. did-you-mean ------------------------------------------------------------------


def test_did_you_mean_gives_difflibs_answer_on_random_scopes() -> None:
    rng = random.Random(7)
    alphabet = "abcde_xyL0."
    for _ in range(3000):
        names = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 9))) for _ in range(rng.randint(0, 25))]
        word = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 9)))
        if names and rng.random() < 0.5:  # a typo of a real name
            word = rng.choice(names)
            word = word[:-1] + rng.choice(alphabet) if word else word
        assert did_you_mean(word, names) == _difflib(word, names), (word, names)


@pytest.mark.parametrize("word, names", [
    ("prev_tok", ["prev_token", "induction", "name_movers"]),
    ("metic", ["data", "ablation", "metric", "positions", "seed"]),
    ("gpt", ["gpt2", "gpt2-small", "pythia-70m"]),
    ("zzz", ["gpt2", "pythia-70m"]),
    ("ab", ["ba", "ab_", "abc"]),  # ties go to the greatest name, as in difflib
])
def test_did_you_mean_on_ordinary_names(word: str, names: list[str]) -> None:
    assert did_you_mean(word, names) == _difflib(word, names)
    assert did_you_mean(word, iter(names)) == _difflib(word, names)  # any iterable


def _misspelt_file(n: int) -> tuple[str, list[str]]:
    rng = random.Random(3)
    names = ["".join(rng.choice(string.ascii_lowercase) for _ in range(10)) for _ in range(n)]
    lines = ["model zoo:induction-2l"] + [f"group {name} = L0.H0" for name in names]
    lines += ["circuit c {"] + [f"  {name[:-1]}9 -> logits" for name in names] + ["}"]
    return "\n".join(lines) + "\n", names


def test_a_thousand_misspelt_names_finish_with_their_suggestions() -> None:
    """Was quadratic in difflib (15-60 s); each E301 still suggests the name it misspells."""
    text, names = _misspelt_file(1000)
    result = compile_text(text, path="typos.circ", check_files=False)
    unknown = [d for d in result.diagnostics if d.code == "E301"]
    assert len(unknown) == 1000
    suggested = {d.message.split("`")[1]: d.help for d in unknown}
    for name in names:
        assert suggested[name[:-1] + "9"] == f"did you mean `{name}`?"


def test_did_you_mean_with_a_thousand_words_and_adversarial_names() -> None:
    """1,000 anagrams: every one is an equally good candidate by the cheap bounds, so the
    full comparisons are capped; each call still finishes, with a real name or none."""
    names = ["a" * 8 + "b" * k for k in range(8)] + _anagrams("aabbccdd", 1000)
    for word in names[::5]:
        hint = did_you_mean(word + "x", names)
        assert hint is None or hint.split("`")[1] in names
    assert did_you_mean("aaaaaaaabbx", names) == _difflib("aaaaaaaabbx", names)  # a clear winner is kept
    assert did_you_mean("q" * 5000, names) is None  # a 5,000-character "name" is no misspelling


def _anagrams(letters: str, count: int) -> list[str]:
    rng = random.Random(1)
    out = set()
    while len(out) < count:
        chars = list(letters)
        rng.shuffle(chars)
        out.add("".join(chars))
    return sorted(out)


# -- 2. misspelt keywords ---------------------------------------------------------------

_CIRCUIT = "circuit c { L0.H0 -> logits }\n"


@pytest.mark.parametrize("text, keyword", [
    ("model gpt2\ncircut c { L0.H0 -> logits }\n", "circuit"),
    ("model gpt2\ntsak t { data induction(seq_len = 8) }\n", "task"),
    ("model gpt2\n" + _CIRCUIT + "chek c on t { }\n", "check"),
    ("modle gpt2\n", "model"),
    ("model gpt2\ngruop g = L0.H0\n", "group"),
    ("model gpt2\nimprt stdlib.gpt2.ioi\n", "import"),
    ("model gpt2\n" + _CIRCUIT + "check c on t { expct faithfulness }\n", "expect"),
    ("model gpt2\n" + _CIRCUIT + "check c on t wiht n = 16 { }\n", "with"),
    ("model gpt2\nCircuit c { L0.H0 -> logits }\n", "circuit"),
])
def test_misspelt_keyword_gets_a_suggestion(text: str, keyword: str) -> None:
    _, diagnostics = parse_text(text, "x.circ")
    (d,) = diagnostics
    assert d.code == "E102"
    assert d.help is not None and d.help.startswith(f"did you mean `{keyword}`?")
    assert "model name" not in d.message  # a word where a keyword belongs is a name


def test_a_word_like_no_keyword_gets_the_expected_list_only() -> None:
    _, (d,) = parse_text("model gpt2\nxyzzy y\n", "x.circ")
    assert d.code == "E102" and d.help.startswith("expected `check`")


# -- 3. snippets: tabs, wide characters, control characters, BOM --------------------------


def _caret_under(rendered: str, marker_text: str) -> None:
    """The caret line starts under `marker_text` in the echoed source line."""
    lines = rendered.splitlines()
    source = next(i for i, line in enumerate(lines) if marker_text in line and "|" in line and "^" not in line)
    shown, carets = lines[source], lines[source + 1]
    assert "\t" not in shown
    assert carets.index("^") == shown.index(marker_text), rendered


def test_caret_lines_up_under_tabs() -> None:
    text = "model gpt2\ncircuit c {\n\tL0.H0,\tL99.H0 -> logits\n}\n"
    result = compile_text(text, path="tabs.circ", check_files=False)
    d = next(d for d in result.diagnostics if d.code == "E201")
    rendered = render_full([d], {"tabs.circ": text})
    _caret_under(rendered, "L99.H0")
    assert rendered.count("^") == len("L99.H0")


def test_caret_lines_up_after_wide_characters() -> None:
    d = Diagnostic("E102", "m", Span("w.circ", 1, 7, 1, 8), "here")
    rendered = render_full([d], {"w.circ": "// 日本 x\n"})
    shown, carets = rendered.splitlines()[3], rendered.splitlines()[4]
    assert carets.index("^") == shown.index("x") + len("日本")  # each takes two columns


def test_control_characters_are_not_sent_to_the_terminal() -> None:
    d = Diagnostic("E102", "m", Span("c.circ", 1, 13, 1, 14), "here")
    rendered = render_full([d], {"c.circ": "// \x1b[31mred x\n"})
    assert "\x1b" not in rendered and "\ufffd" in rendered
    _caret_under(rendered, "x")


def test_a_terminal_escape_quoted_in_a_message_is_not_sent() -> None:
    text = 'model gpt2\n"\x1b[2J"\n'
    _, (d,) = parse_text(text, "esc.circ")
    assert "\x1b" in d.message  # the message quotes the string token ...
    for rendered in (render_full([d], {"esc.circ": text}), render_concise([d])):
        assert "\x1b" not in rendered  # ... but printing it does not clear the screen
    colored = render_full([d], {"esc.circ": text}, color=True)
    assert "\x1b[2J" not in colored and "\x1b[0m" in colored  # the colours' own escapes only


@pytest.mark.parametrize("from_disk", [False, True])
def test_bom_is_not_echoed(tmp_path: Path, from_disk: bool) -> None:
    text = "\ufeffmodel gpt99\n"
    path = tmp_path / "bom.circ"
    path.write_text(text, encoding="utf-8")
    d = Diagnostic("E203", "unknown model `gpt99`", Span(str(path), 1, 7, 1, 12), "this model")
    rendered = render_full([d], None if from_disk else {str(path): text})
    assert "\ufeff" not in rendered
    _caret_under(rendered, "gpt99")


# -- 4. folder and other file arguments ---------------------------------------------------


def test_folder_without_circ_files_is_named_as_a_folder(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("x", encoding="utf-8")
    with pytest.raises(UsageError) as err:
        circ_files([str(tmp_path)])
    assert "is a folder with no .circ files" in err.value.message and err.value.help


def test_folder_is_searched_recursively(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "x.circ").write_text("model gpt2\n", encoding="utf-8")
    (tmp_path / "y.circ").write_text("model gpt2\n", encoding="utf-8")
    assert [p.name for p in circ_files([str(tmp_path)])] == ["x.circ", "y.circ"]


def test_missing_file_suggests_the_circ_file(tmp_path: Path) -> None:
    (tmp_path / "ioi.circ").write_text("model gpt2\n", encoding="utf-8")
    with pytest.raises(UsageError) as err:
        circ_files([str(tmp_path / "ioi")])
    assert err.value.message.startswith("no such file or directory")
    assert err.value.help == f"did you mean {tmp_path / 'ioi.circ'}?"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_fifo_is_refused_rather_than_read(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.circ"
    os.mkfifo(fifo)
    with pytest.raises(UsageError, match="not a regular file"):
        circ_files([str(fifo)])


# -- 5. `model` with unquoted paths -------------------------------------------------------


@pytest.mark.parametrize("name", ["/abs/ckpt", "../ckpt", "./ckpt", "ckpt/run1", "..", "EleutherAI/pythia-70m"])
def test_model_takes_unquoted_paths(name: str) -> None:
    module, diagnostics = parse_text(f"model {name} // a comment\n", "x.circ")
    assert diagnostics == []
    (decl,) = module.statements
    assert (decl.name, decl.quoted) == (name, False)
    assert not model_name_needs_quotes(name)


@pytest.mark.parametrize("name", ["a//b", "my ckpt", "", "//x"])
def test_model_names_that_need_quotes(name: str) -> None:
    assert model_name_needs_quotes(name)


def test_unquoted_relative_and_absolute_checkpoint_paths_resolve(tmp_path: Path) -> None:
    checkpoint = ROOT / "tests" / "fixtures" / "docs" / "checkpoints" / "tiny-3l"
    base = ROOT / "tests" / "fixtures" / "docs" / "lib"
    body = "circuit c { L0.H0..3 -> L2.MLP }\n"
    for name in ("../checkpoints/tiny-3l", str(checkpoint)):
        result = compile_text(f"model {name}\n{body}", path="x.circ", base_dir=base, check_files=False)
        assert not [d for d in result.diagnostics if d.is_error], name
        assert len(result.circuits["c"].edges) == 4


# -- 7. deep nesting ----------------------------------------------------------------------

_DEEP = 10_000


@pytest.mark.parametrize("expr, code", [
    ("(" * _DEEP + "L0.H0" + ")" * _DEEP, None),  # parentheses alone are no nesting
    ("f(" * _DEEP + "L0.H0" + ")" * _DEEP, "E110"),
    ("(" * _DEEP + "L0.H0" + " | L0.H1)" * _DEEP, "E110"),
    ("(" * _DEEP + "L0.H0" + ").q" * _DEEP, "E110"),
])
def test_deep_circuit_expressions(expr: str, code: str | None) -> None:
    text = f"model gpt2\ncircuit c {{ embed -> {expr} }}\n"
    _, diagnostics = parse_text(text, "deep.circ")
    assert [d.code for d in diagnostics] == ([code] if code else [])
    compile_text(text, path="deep.circ", check_files=False)  # and no later stage overflows


def test_deep_data_generator_call_is_e110() -> None:
    text = "model gpt2\ntask t { data " + "f(a = " * _DEEP + "1" + ")" * _DEEP + " }\n"
    _, diagnostics = parse_text(text, "deep.circ")
    assert [d.code for d in diagnostics] == ["E110"]


def test_nesting_below_the_limit_still_parses() -> None:
    text = "model gpt2\ntask t { data " + "f(a = " * 60 + "1" + ")" * 60 + " }\n"
    assert parse_text(text, "ok.circ")[1] == []


# -- 6. the documented diagnostic output is the real output ---------------------------------

_DIAGNOSTICS_MD = ROOT / "docs" / "diagnostics.md"
_FIXTURES = ROOT / "tests" / "fixtures" / "docs"
_PAIR = re.compile(r"^```circ\n(// expect: ([EW]\d{3})[^\n]*\n.*?)^```\s*\n+```text\n(.*?)^```", re.S | re.M)


def _documented_pairs() -> list[tuple[str, str, str]]:
    """(code, ```circ example, the ```text output shown after it) in docs/diagnostics.md."""
    text = _DIAGNOSTICS_MD.read_text(encoding="utf-8")
    return [(m.group(2), m.group(1), m.group(3)) for m in _PAIR.finditer(text) if "not emitted" not in m.group(1)]


def _key_lines(rendered: str) -> list[str]:
    """The lines a reader compares: the heading, the location, notes and help, with paths
    shown as the docs show them (`…/` for the repository, fixtures relative to their folder)."""
    keep = []
    for line in rendered.splitlines():
        if line.startswith(("error[", "warning[", " --> ")) or line.lstrip().startswith("= "):
            line = line.replace(str(_FIXTURES) + os.sep, "").replace(str(ROOT) + os.sep, "")
            line = line.replace("tests/fixtures/docs/", "").replace("…/", "")
            keep.append(line.rstrip())
    return keep


def _pair_id(value: object) -> str:
    return str(value) if re.fullmatch(r"[EW]\d{3}", str(value)) else ""


@pytest.mark.parametrize("code, example, shown", _documented_pairs(), ids=_pair_id)
def test_documented_output_is_the_real_output(code: str, example: str, shown: str) -> None:
    """tests/test_docs.py only checks that each example produces its code; this compares
    the message, location, notes and help shown in the docs with the renderer's."""
    result = compile_text(example, path="example.circ", base_dir=_FIXTURES, check_files=False)
    found = [d for d in result.diagnostics if d.code == code]
    assert found, f"{code}: the example does not produce it"
    real = render_full(found[:1], {"example.circ": example})
    assert _key_lines(shown) == _key_lines(real)


def test_documented_pairs_are_found() -> None:
    codes = {code for code, _, _ in _documented_pairs()}
    assert {"E110", "E303", "E201"} <= codes


def test_scored_targets_read_as_one_token_build_the_same_tree_spans_included(monkeypatch) -> None:
    """`L0.H2.q [score = 0.5]` is read as one SCORED_COMPONENT token and `L0.H6.q, L0.H6.k,`
    as one TARGET_RUN token for speed (grammar); the tree, every span included, must be
    what the grammar without them gives.
    Compared on GPT-2's full graph with a score on every edge and on hand-written lines."""
    import circuitlang as cl
    import circuitlang.lang.parse as parse_module
    from circuitlang.core.graph import CircuitGraph
    from circuitlang.lang.write import graph_to_circ

    full = cl.compile_text("model gpt2\ncircuit full { L0..1.H*, L0..1.MLP }").circuits["full"]
    rng = random.Random(0)
    scored = CircuitGraph(full.nodes, full.edges, full.model, "full",
                          annotations={e: {"score": round(rng.uniform(-1, 1), 4)} for e in full.edges})
    texts = [graph_to_circ(scored, "gpt2"), graph_to_circ(full, "gpt2"),
             "model gpt2\ncircuit c {\n    L0.H1 -> L1.H2.q, L1.H3.k,  L2.MLP,\n        L3.H4, L4.H1 | L4.H2,"
             " L5.H0 [s = 1], L5.H1.v,\n L6.H0 @END, L6..7.H*,\tL8.MLP [a = 1, b = \"x, y]\"],"
             " L9.H1.q [c = d] ,L9.H2\n}\n",
             'model gpt2\ncircuit c {\n\tL0.H1 -> L1.H2.q   [score = 0.5, note = "x"], L2.MLP [a = b],\n'
             '        L3.H4 [n = -1e-3]\n    embed -> L0.H1.v\n}\n']
    fast = [parse_module.parse_text(t, "x.circ") for t in texts]
    assert all("SCORED_COMPONENT" in parse_module._grammar() for _ in fast)
    plain_grammar = "\n".join(line.replace("TARGET_RUN* ", "") for line in parse_module._grammar().splitlines()
                              if "SCORED_COMPONENT" not in line and not line.startswith(("TARGET_RUN", "_RUN_")))
    assert "TARGET_RUN" not in plain_grammar.replace("// ", "")
    monkeypatch.setattr(parse_module, "_grammar", lambda: plain_grammar)
    monkeypatch.setattr(parse_module, "_IDLE", [])
    slow = [parse_module.parse_text(t, "x.circ") for t in texts]
    for (module_a, diags_a), (module_b, diags_b) in zip(fast, slow):
        assert diags_a == diags_b == []
        assert repr(module_a) == repr(module_b)  # dataclass reprs hide spans: compare them too
        spans_a = [t.span for s in module_a.statements if hasattr(s, "body") and s.body
                   for stmt in s.body for t in getattr(stmt, "targets", ())]
        spans_b = [t.span for s in module_b.statements if hasattr(s, "body") and s.body
                   for stmt in s.body for t in getattr(stmt, "targets", ())]
        assert spans_a == spans_b and spans_a
        notes_a = [(kv.span, kv.value.span) for s in module_a.statements if hasattr(s, "body") and s.body
                   for stmt in s.body for t in getattr(stmt, "targets", ()) for kv in t.annotations]
        notes_b = [(kv.span, kv.value.span) for s in module_b.statements if hasattr(s, "body") and s.body
                   for stmt in s.body for t in getattr(stmt, "targets", ()) for kv in t.annotations]
        assert notes_a == notes_b
        exprs_a = [t.expr.span for s in module_a.statements if hasattr(s, "body") and s.body
                   for stmt in s.body for t in getattr(stmt, "targets", ())]
        exprs_b = [t.expr.span for s in module_b.statements if hasattr(s, "body") and s.body
                   for stmt in s.body for t in getattr(stmt, "targets", ())]
        assert exprs_a == exprs_b

"""The command line under hostile input (issue 15's "done when"), as property tests.

Over mutated stdlib files, mutated task JSONL files and mutated checkpoint configs, `circ`
must answer with an exit code in {0, 1, 2}, never an internal error, valid JSON for
`--format json` with no NaN or Infinity in it; and `circ fmt` must leave a file it cannot
parse byte for byte as it was. The commands run in process (click's CliRunner, which
hands back any exception instead of printing it), on the zoo's small models, with few
examples per property: derandomized in CI (tests/conftest.py), CIRCUITLANG_EXPLORE=1 and
CIRCUITLANG_FUZZ_EXAMPLES explore further.
"""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import ROOT, examples

pytest.importorskip("torch")

STDLIB_FILES = sorted((ROOT / "stdlib").rglob("*.circ"))
_COUNTER = itertools.count()

# Tokens a hostile edit inserts: keywords, punctuation, numbers that break bounds, odd text.
NASTY_TOKENS = ["circuit", "group", "include", "with", "expect", "check", "on", "task", "model", "import", "(",
                ")", "{", "}", "[", "]", "->", "|", "&", "-", ",", ".", "@", "@END+999", "L99.H99", "L0.H0.q",
                "L*.MLP", "1e400", "-3", "nan", "inf", '"', "\\", "\t", "\n", "\ufeff", "\x00", "é", "//", "/*", "0.5"]


@st.composite
def mutated(draw: st.DrawFn, text: str) -> str:
    """`text` after 1-3 edits: a character span deleted, a nasty token inserted, a line
    duplicated, or the text cut short."""
    for _ in range(draw(st.integers(1, 3))):
        if not text:
            break
        at = draw(st.integers(0, len(text)))
        kind = draw(st.sampled_from(["delete", "insert", "duplicate", "truncate"]))
        if kind == "delete":
            text = text[:at] + text[at + draw(st.integers(1, 12)):]
        elif kind == "insert":
            text = text[:at] + draw(st.sampled_from(NASTY_TOKENS)) + text[at:]
        elif kind == "duplicate":
            lines = text.splitlines(keepends=True)
            i = draw(st.integers(0, max(0, len(lines) - 1)))
            text = "".join(lines[:i + 1] + lines[i:])
        else:
            text = text[:at]
    return text


def _run(*args: str):
    from click.testing import CliRunner

    from circuitlang.cli import cli

    return CliRunner().invoke(cli, list(args))


def _assert_answered(result, json_output: bool) -> None:
    """An exit code of the documented set, no exception escaped, JSON that parses."""
    escaped = result.exception if not isinstance(result.exception, SystemExit) else None
    assert escaped is None, f"{type(escaped).__name__}: {escaped}\n{result.output[-2000:]}"
    assert result.exit_code in (0, 1, 2), result.output[-2000:]
    assert "internal error" not in result.output
    if json_output:
        out = result.stdout
        assert "NaN" not in out and "Infinity" not in out, out[-2000:]
        json.loads(out)


def _fresh_dir(tmp_path: Path) -> Path:
    folder = tmp_path / f"case{next(_COUNTER)}"
    folder.mkdir()
    return folder


# -- the static pipeline and fmt on mutated stdlib files -------------------------------------


@examples(40, deadline_ms=None)
@given(data=st.data())
def test_mutated_stdlib_files_check_statically_and_fmt_keeps_what_it_cannot_parse(tmp_path: Path, data) -> None:
    from circuitlang.lang.parse import parse_text

    source = data.draw(st.sampled_from(STDLIB_FILES))
    text = data.draw(mutated(source.read_text(encoding="utf-8")))
    folder = _fresh_dir(tmp_path)
    for json_file in source.parent.glob("*.json"):  # the generators' word lists sit beside their file
        shutil.copy(json_file, folder)
    path = folder / source.name
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    _assert_answered(_run("check", "--static", "--format", "json", str(path)), json_output=True)
    before = path.read_bytes()
    result = _run("fmt", str(path))
    _assert_answered(result, json_output=False)
    _, diagnostics = parse_text(text, str(path))
    if any(d.is_error for d in diagnostics):
        assert path.read_bytes() == before, "fmt changed a file it cannot parse"


# -- task JSONL files, evaluated --------------------------------------------------------------

GOOD_LINES = [json.dumps({"clean": [0, 5, 7, 9, 5], "corrupt": [0, 6, 8, 10, 6], "answer": 7, "wrong": 8}),
              json.dumps({"clean": [0, 11, 12, 13, 11], "corrupt": [0, 14, 15, 16, 14], "answer": 12, "wrong": 15}),
              json.dumps({"clean": [0, 3, 4, 5, 3], "corrupt": [0, 20, 21, 22, 20], "answer": 4, "wrong": 21,
                          "positions": {"FIRST": 1}})]
JSONL_FILE = ("model zoo:induction-2l\n"
              "circuit c { embed -> L0.H2.v, L1.H1.q, L1.H1.v\n    L0.H2 -> L1.H1.k\n    L1.H1 -> logits }\n"
              'task t { data "t.jsonl" }\n'
              "check c on t {\n    expect faithfulness >= 0.5\n    expect ratio > 0.1\n}\n")


@examples(15, deadline_ms=None)
@given(data=st.data())
def test_mutated_task_jsonl_is_answered_with_valid_json(tmp_path: Path, data) -> None:
    folder = _fresh_dir(tmp_path)
    (folder / "c.circ").write_text(JSONL_FILE, encoding="utf-8")
    text = data.draw(mutated("\n".join(GOOD_LINES * 3) + "\n"))
    (folder / "t.jsonl").write_bytes(text.encode("utf-8", "surrogatepass"))
    result = _run("check", "--format", "json", "--sensitivity", "off", "--bootstrap", "20", str(folder / "c.circ"))
    _assert_answered(result, json_output=True)


# -- checkpoint configs -----------------------------------------------------------------------

NASTY_VALUES = [0, -3, 2.7, 1e9, "1e400", None, "x", [], {}, True, 10 ** 30, {"a": {"b": {"c": [1]}}}]


@pytest.fixture(scope="module")
def checkpoint_parts():
    """The zoo's MLP model as a HookedTransformerConfig checkpoint: its config and weights."""
    from circuitlang.eval.zoo import mlp_planted, weights
    from circuitlang.eval.zoo.layout import blank_state

    config = {k: v for k, v in mlp_planted.CONFIG.items() if k != "model_name"}
    return config, weights("zoo:mlp-planted", blank_state).state


@examples(15, deadline_ms=None)
@given(data=st.data())
def test_mutated_checkpoint_configs_are_answered(tmp_path: Path, checkpoint_parts, data) -> None:
    from safetensors.torch import save_file

    config, state = checkpoint_parts
    config = dict(config)
    key = data.draw(st.sampled_from(sorted(config)))
    if data.draw(st.booleans()):
        config[key] = data.draw(st.sampled_from(NASTY_VALUES))
    else:
        del config[key]
    folder = _fresh_dir(tmp_path)
    (folder / "ckpt").mkdir()
    text = json.dumps(config).replace('"1e400"', "1e400")
    (folder / "ckpt" / "config.json").write_text(text, encoding="utf-8")
    save_file({k: v.contiguous() for k, v in state.items()}, str(folder / "ckpt" / "model.safetensors"))
    (folder / "c.circ").write_text(
        'model "ckpt"\ncircuit c { embed -> L0.MLP\n    L0.MLP -> logits }\n'
        "task t { data mod_sum(n = 16)  ablation zero }\ncheck c on t { expect faithfulness >= 0.1 }\n",
        encoding="utf-8")
    for args in (["--static"], ["--sensitivity", "off", "--bootstrap", "20"]):
        _assert_answered(_run("check", "--format", "json", *args, str(folder / "c.circ")), json_output=True)

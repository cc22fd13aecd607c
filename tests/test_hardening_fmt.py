"""Hardening of `circ fmt`, reading sources, `circ render` and `circ diff` (issue 15).

fmt keeps meaning (names that are keywords stay in parentheses), is idempotent (imports on
one line are one run), never writes a file it cannot parse or would change; stdin is read
by the rules for files; pipes are refused unopened; output paths fail with `error:` lines;
render refuses graphs too big to draw; diff names the models and warns when they differ.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from circuitlang.cli import cli
from circuitlang.lang import fmt as fmt_module
from circuitlang.lang.pipeline import compile_text
from circuitlang.lang.source import read_stream
from tests.conftest import ROOT

KEYWORD_PROGRAM = """model zoo:induction-2l
group group = L0.H0
group include = L0.H2
group with = L1.H1
group n = L1.H3
circuit c { (group) -> logits (include) -> (with).k }
circuit d { (include) n include c }
task t { data "t.jsonl" metric logit_diff }
check d on t { expect necessary (with) expect sufficient }
"""


def circ(*args: str, input: bytes | str | None = None):
    return CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)


def meaning(text: str) -> tuple:
    """What a program compiles to: its diagnostics, circuits (by content hash), tasks, checks."""
    result = compile_text(text, "x.circ", check_files=False)
    return (sorted((d.code, d.message) for d in result.diagnostics),
            {name: g.content_hash for name, g in result.circuits.items()},
            sorted(result.tasks), len(result.checks))


# -- fmt keeps meaning -------------------------------------------------------------------------

def test_keyword_names_keep_their_parentheses_and_meaning(tmp_path: Path):
    file = tmp_path / "kw.circ"
    file.write_text(KEYWORD_PROGRAM, encoding="utf-8")
    assert circ("fmt", str(file)).exit_code == 0
    formatted = file.read_text(encoding="utf-8")
    assert "(group) -> logits" in formatted and "    (include)\n    n\n" in formatted
    assert "expect necessary (with)" in formatted and "(include) -> (with).k" in formatted
    assert meaning(formatted) == meaning(KEYWORD_PROGRAM)
    assert all(code.startswith("W") for code, _ in meaning(formatted)[0])
    assert circ("fmt", "--check", str(file)).exit_code == 0


def test_imports_on_one_line_are_sorted_in_one_run(tmp_path: Path):
    file = tmp_path / "imports.circ"
    file.write_text("model gpt2 import zz import aa\nimport mm\n", encoding="utf-8")
    assert circ("fmt", str(file)).exit_code == 0
    assert file.read_text(encoding="utf-8") == "model gpt2\n\nimport aa\nimport mm\nimport zz\n"
    assert circ("fmt", "--check", str(file)).exit_code == 0


@pytest.mark.parametrize("line", ["model ./ckpt", "model ../runs/a", "model /abs/ckpt", 'model "./ckpt"',
                                  "model zoo:induction-2l", 'model "gpt2"'])
def test_model_names_keep_their_quoting(line: str):
    result = circ("fmt", "-", input=(line + "\n").encode())
    assert result.exit_code == 0 and result.output == line + "\n"


@pytest.mark.parametrize("source", [
    "import zz import zz import aa // x\n",           # a trailing comment on a line of imports
    "import c import b // x\nimport a\n",             # ... and a run that goes on below it
    "import zz\nimport\nqq\n",                        # `import` and its name on two lines
    "import\nqq import zz import pp // in\n as p\n",  # a comment inside an import
    "import b\n// c\nimport a\n\nimport d import c\n",
])
def test_fmt_of_import_runs_is_idempotent(source: str):
    first = circ("fmt", "-", input=source.encode())
    assert first.exit_code == 0, first.output
    assert circ("fmt", "--check", "-", input=first.output.encode()).exit_code == 0


def test_a_file_that_does_not_parse_is_left_byte_for_byte(tmp_path: Path):
    file = tmp_path / "bad.circ"
    data = b"model gpt2\r\ncircuit c {  L0.H0 ->  \n"
    file.write_bytes(data)
    result = circ("fmt", str(file))
    assert result.exit_code == 1 and "E10" in result.output
    assert file.read_bytes() == data


def test_a_formatter_bug_leaves_the_file_alone_and_exits_2(tmp_path: Path, monkeypatch):
    file = tmp_path / "c.circ"
    source = "model gpt2\ncircuit c {L0.H0->logits}\ncircuit d { L1.H1 -> logits }\n"
    file.write_text(source, encoding="utf-8")
    real = fmt_module.format_module
    monkeypatch.setattr(fmt_module, "format_module", lambda module: real(module).replace("circuit d", "circuit e"))
    result = circ("fmt", str(file))
    assert result.exit_code == 2 and "would not mean the same; left unchanged" in result.output
    assert file.read_text(encoding="utf-8") == source


def test_an_unwritable_file_is_an_error_line_not_a_traceback(tmp_path: Path, monkeypatch):
    file = tmp_path / "c.circ"
    file.write_text("model gpt2 circuit c {L0.H0->logits}\n", encoding="utf-8")

    def read_only(*args, **kwargs):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(os, "replace", read_only)  # write_output writes beside, then renames
    result = circ("fmt", str(file))
    assert result.exit_code == 1
    assert f"error: fmt {file}: cannot write: Read-only file system" in result.output
    # the file is as it was, and no temporary file is left beside it
    assert file.read_text(encoding="utf-8") == "model gpt2 circuit c {L0.H0->logits}\n"
    assert [p.name for p in tmp_path.iterdir()] == ["c.circ"]


# -- stdin and special files -------------------------------------------------------------------

def test_stdin_drops_a_byte_order_mark_like_a_file():
    result = circ("fmt", "-", input="\ufeffmodel gpt2 circuit c {L0.H0->logits}".encode("utf-8"))
    assert result.exit_code == 0
    assert result.output == "model gpt2\n\ncircuit c {\n    L0.H0 -> logits\n}\n"


@pytest.mark.parametrize("data, code", [(b"model gpt2\n\x00\x00", "E003"), (b"model caf\xe9", "E002")])
def test_stdin_refuses_binary_and_latin1_like_a_file(data: bytes, code: str):
    result = circ("fmt", "-", input=data)
    assert result.exit_code == 1 and f"error[{code}]" in result.output and "<stdin>" in result.output


def test_fmt_check_on_stdin_says_whether_it_would_change():
    assert circ("fmt", "--check", "-", input=b"model gpt2\n").exit_code == 0
    changed = circ("fmt", "--check", "-", input=b"model   gpt2\n")
    assert changed.exit_code == 1 and "would reformat <stdin>" in changed.output


def test_read_stream_applies_the_size_limit(monkeypatch):
    import io

    from circuitlang.lang import source

    monkeypatch.setattr(source, "MAX_FILE_BYTES", 8)
    text, diagnostics = read_stream(io.BytesIO(b"model gpt2 circuit"))
    assert text is None and [d.code for d in diagnostics] == ["E004"]


def _run_python(program: str) -> subprocess.CompletedProcess:
    """In a process of its own: a reader that opened a pipe would wait for a writer forever."""
    env = {**os.environ, "NO_COLOR": "1", "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, cwd=ROOT, env=env,
                          timeout=120)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_a_named_pipe_is_refused_without_being_opened(tmp_path: Path):
    fifo = tmp_path / "x.circ"
    os.mkfifo(fifo)
    done = _run_python("from pathlib import Path; from circuitlang.lang.source import read_source\n"
                       f"text, ds = read_source(Path({str(fifo)!r}))\n"
                       "print(text, [(d.code, d.message) for d in ds])")
    assert done.stdout.strip() == ("None [('E001', 'cannot read file: it is a named pipe (FIFO), "
                                   "not a regular file')]"), done.stderr


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_an_imported_named_pipe_and_fmt_of_one_never_block(tmp_path: Path):
    os.mkfifo(tmp_path / "pipe.circ")
    (tmp_path / "main.circ").write_text('model gpt2\nimport "pipe.circ" as p\n', encoding="utf-8")
    done = _run_python("from pathlib import Path; from circuitlang.lang.pipeline import compile_file\n"
                       f"r = compile_file(Path({str(tmp_path / 'main.circ')!r}))\n"
                       "print(sorted({d.code for d in r.diagnostics}))")
    assert done.returncode == 0 and ("E001" in done.stdout or "E303" in done.stdout), done.stderr
    fmt = _run_python(f"import sys; from circuitlang.cli import main; sys.argv = ['circ', 'fmt', "
                      f"{str(tmp_path / 'pipe.circ')!r}]; main()")
    assert fmt.returncode in (1, 2) and "not a regular file" in fmt.stderr and "Traceback" not in fmt.stderr


# -- output paths ---------------------------------------------------------------------------------

@pytest.fixture
def two(tmp_path: Path) -> tuple[Path, Path]:
    a, b = tmp_path / "a.circ", tmp_path / "b.circ"
    a.write_text("model gpt2\ncircuit c { L9.H6 -> logits }\n", encoding="utf-8")
    b.write_text("model gpt2\ncircuit c { L9.H9 -> logits }\n", encoding="utf-8")
    return a, b


@pytest.mark.parametrize("where", ["missing/out.txt", "."])
def test_diff_output_to_a_missing_folder_or_a_folder_is_an_error_line(two, tmp_path: Path, where: str):
    result = circ("diff", str(two[0]), str(two[1]), "-o", str(tmp_path / where))
    assert result.exit_code == 2 and result.output.startswith("error: -o ")


def test_diff_output_on_a_read_only_file_system_is_an_error_line(two, tmp_path: Path, monkeypatch):
    def read_only(*args, **kwargs):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(os, "replace", read_only)
    result = circ("diff", str(two[0]), str(two[1]), "-o", str(tmp_path / "d.txt"))
    assert result.exit_code == 2 and "cannot write: Read-only file system" in result.output


@pytest.mark.parametrize("where", ["missing/out.svg", "out.txt", "."])
def test_render_refuses_a_bad_output_before_compiling(two, tmp_path: Path, where: str):
    result = circ("render", str(two[0]), "-o", str(tmp_path / where))
    assert result.exit_code == 2 and result.output.startswith("error: ")


# -- render size -----------------------------------------------------------------------------------

BIG = """model gpt2
circuit big {
    embed -> L0..3.H*.q, L0..3.H*.k, L0..3.H*.v, L0..3.MLP
    L0..3.H* -> L0..3.H*.q, L0..3.H*.k, L0..3.H*.v, L0..3.MLP
    L0..3.MLP -> L0..3.H*.q, L0..3.H*.k, L0..3.H*.v, L0..3.MLP
}
"""


def test_render_refuses_to_draw_a_huge_graph_but_writes_dot(tmp_path: Path):
    file = tmp_path / "big.circ"
    file.write_text(BIG, encoding="utf-8")
    refused = circ("render", str(file), "-o", str(tmp_path / "big.svg"))
    assert refused.exit_code == 2 and "3,082 edges" in refused.output and "--force" in refused.output
    assert not (tmp_path / "big.svg").exists()
    dot = circ("render", str(file), "-o", str(tmp_path / "big.dot"))
    assert dot.exit_code == 0 and (tmp_path / "big.dot").read_text().count("->") >= 1000


def test_render_force_draws_and_says_it_may_take_a_while(tmp_path: Path, monkeypatch):
    from circuitlang.present import render

    file = tmp_path / "big.circ"
    file.write_text(BIG, encoding="utf-8")
    drawn = []
    monkeypatch.setattr(render, "render_dot", lambda dot, out: drawn.append(out))
    result = circ("render", str(file), "-o", str(tmp_path / "big.svg"), "--force")
    assert result.exit_code == 0 and "drawing 3,082 edges with Graphviz" in result.output
    assert drawn == [tmp_path / "big.svg"]


# -- diff across models -----------------------------------------------------------------------------

def test_diff_names_the_models_and_warns_when_they_differ(two):
    a, b = two
    b.write_text("model pythia-70m\ncircuit c { L3.H6 -> logits }\n", encoding="utf-8")
    runner = CliRunner(mix_stderr=False) if "mix_stderr" in CliRunner.__init__.__code__.co_varnames \
        else CliRunner()
    result = runner.invoke(cli, ["diff", str(a), str(b), "--format", "json"], catch_exceptions=False)
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert (data["model_a"], data["model_b"], data["same_model"]) == ("gpt2", "pythia-70m", False)
    assert data["pairs"][0]["model_b"] == "pythia-70m"
    assert "warning: the circuits are for different models: A is for gpt2 and B for pythia-70m" in result.stderr


def test_diff_of_the_same_model_has_no_warning_and_model_headers(two):
    result = circ("diff", str(two[0]), str(two[1]))
    assert result.exit_code == 1 and "warning" not in result.output
    assert f"--- {two[0]}:c (model gpt2)" in result.output

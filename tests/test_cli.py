"""The `circ` command line, run as a user would (a subprocess), against snapshot files."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import FIXTURES, ROOT, assert_golden

CLI = FIXTURES / "cli"


def circ(*args: str, cwd: Path = ROOT, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_COLOR": "1", "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "circuitlang", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, input=stdin, timeout=120)


def snapshot(result: subprocess.CompletedProcess) -> str:
    return f"exit {result.returncode}\n--- stdout\n{result.stdout}--- stderr\n{result.stderr}"


@pytest.mark.parametrize("fmt", ["full", "concise", "json"])
def test_check_reports_every_problem_in_each_format(fmt: str) -> None:
    result = circ("check", "--static", "--format", fmt, "tests/fixtures/cli/broken.circ")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert_golden(CLI / f"check_broken.{fmt}.txt", snapshot(result))


def test_check_json_is_machine_readable() -> None:
    result = circ("check", "--static", "--format", "json", "tests/fixtures/cli/broken.circ")
    payload = json.loads(result.stdout)
    assert payload["static"] is True and payload["passed"] is False
    diagnostics = payload["diagnostics"]
    assert [d["code"] for d in diagnostics] == ["E201", "E205", "E301"]
    assert diagnostics[0]["line"] == 6 and diagnostics[0]["column"] == 22
    assert [(f["file"], f["status"], f["passed"]) for f in payload["files"]] == [
        ("tests/fixtures/cli/broken.circ", "errors", False)]


def test_check_clean_file_exits_zero_and_directories_are_searched() -> None:
    assert circ("check", "--static", "tests/fixtures/cli/clean.circ").returncode == 0
    result = circ("check", "--static", "stdlib", "examples")
    assert result.returncode == 0, result.stdout + result.stderr


def test_strict_turns_warnings_into_failure(tmp_path: Path) -> None:
    path = tmp_path / "warn.circ"
    path.write_text("model gpt2\ncircuit c { }\n")
    assert circ("check", "--static", str(path)).returncode == 0
    assert circ("check", "--static", "--strict", str(path)).returncode == 1


def test_usage_errors_exit_two_with_one_line() -> None:
    missing = circ("check", "--static", "no/such/file.circ")
    assert missing.returncode == 2
    assert missing.stderr.strip() == "error: no such file or directory: no/such/file.circ"
    assert circ("check", "--format", "xml", "x.circ").returncode == 2
    assert circ("frobnicate").returncode == 2


def test_fmt_check_then_rewrite(tmp_path: Path) -> None:
    path = tmp_path / "messy.circ"
    shutil.copy(CLI / "messy.circ", path)
    check = circ("fmt", "--check", str(path))
    assert check.returncode == 1 and "would reformat" in check.stdout
    assert circ("fmt", str(path)).returncode == 0
    assert_golden(CLI / "messy.formatted.circ", path.read_text())
    assert circ("fmt", "--check", str(path)).returncode == 0


def test_fmt_stdin_to_stdout() -> None:
    result = circ("fmt", "-", stdin=(CLI / "messy.circ").read_text())
    assert result.returncode == 0
    assert result.stdout == (CLI / "messy.formatted.circ").read_text()


def test_fmt_refuses_a_file_with_syntax_errors(tmp_path: Path) -> None:
    path = tmp_path / "bad.circ"
    path.write_text("circuit c { L0.H0 -> \n")
    result = circ("fmt", str(path))
    assert result.returncode == 1
    assert "E103" in result.stderr
    assert path.read_text() == "circuit c { L0.H0 -> \n"


def test_models_lists_the_known_shapes() -> None:
    result = circ("models")
    assert result.returncode == 0
    assert "gpt2" in result.stdout and "zoo:induction-2l" in result.stdout


def test_every_command_has_help_with_an_example() -> None:
    for command in ("check", "fmt", "render", "diff"):
        result = circ(command, "--help")
        assert result.returncode == 0
        assert "Examples:" in result.stdout and f"circ {command}" in result.stdout


def _crash(*flags: str) -> subprocess.CompletedProcess:
    """Run `circ check` with the compiler replaced by one that raises."""
    program = ("import sys; from circuitlang.cli import main; import circuitlang.lang.pipeline as api\n"
               "def boom(*a, **k): raise RuntimeError('boom')\n"
               "api.compile_file = boom\n"
               f"sys.argv = ['circ', *{list(flags)!r}, 'check', '--static', 'examples']; main()")
    return subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, cwd=ROOT)


def test_internal_errors_are_one_line_unless_debug() -> None:
    result = _crash()
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "internal error: RuntimeError: boom (rerun with --debug for the traceback)"]
    debug = _crash("--debug")
    assert debug.returncode == 2 and "Traceback" in debug.stderr


STATIC_COMMANDS = [  # (arguments, exit code): every command that needs no model
    (["check", "--static", "stdlib"], 0),
    (["fmt", "--check", "stdlib"], 0),
    (["diff", "stdlib/gpt2/greater_than.circ:acdc", "stdlib/gpt2/greater_than.circ:hanna"], 1),
    (["render", "stdlib/zoo/induction.circ", "--circuit", "induction", "-o", "{tmp}/induction.dot"], 0),
    (["models"], 0),
    (["stdlib"], 0),
    (["export", "stdlib/zoo/induction.circ", "--circuit", "induction", "-o", "{tmp}/graph.json"], 0),
    (["import", "{tmp}/graph.json", "-o", "{tmp}/back.circ"], 0),
]


def test_static_commands_import_no_torch(tmp_path: Path) -> None:
    """Each static command, in a process of its own, runs without importing torch or
    TransformerLens (they cost seconds at start-up)."""
    for args, code in STATIC_COMMANDS:
        argv = [a.format(tmp=tmp_path) for a in args]
        probe = ("import sys\nfrom circuitlang.cli import cli\n"
                 f"try:\n    cli.main({argv!r}, standalone_mode=False)\nexcept SystemExit as err:\n"
                 "    print('exit', err.code or 0)\nelse:\n    print('exit', 0)\n"
                 "print('torch' in sys.modules, 'transformer_lens' in sys.modules)")
        result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT)
        lines = result.stdout.strip().splitlines()
        assert lines[-2:] == [f"exit {code}", "False False"], (argv, result.stdout[-300:], result.stderr[-500:])

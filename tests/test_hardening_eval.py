"""Hardening of task data at run time, reports, `circ check` and `circ eval` (issue 15):
every bad task is a located error, no NaN reaches a report, output paths are checked
before the work, one JSON schema for `check`, no wrapping off a terminal, `--task
FILE:TASK` for discovered files, paths as given, and no torch for nothing to run."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from circuitlang.eval.tasks.base import TaskData, TaskError
from circuitlang.eval.tasks.jsonl import load_jsonl
from tests.conftest import ROOT

CIRCUIT = """model zoo:induction-2l

circuit c {
    embed -> L1.H1.q, L1.H1.v
    L1.H1 -> logits%s
}

task t {
    data %s
    ablation zero
    metric %s
}
"""
CHECK = """
check c on t {
    expect faithfulness >= 0.5
}
"""
NON_FINITE = re.compile(r"\b(nan|-?inf|infinity)\b", re.IGNORECASE)
FAST = ("--sensitivity", "off", "--bootstrap", "20")
ZOO_TASK = f"{ROOT / 'stdlib/zoo/induction.circ'}:repeat_tokens_zero"


def _run(*args: str):
    from click.testing import CliRunner

    from circuitlang.cli import cli

    return CliRunner().invoke(cli, list(args))


def _file(folder: Path, data: str = "induction(seq_len = 16, n = 16)", position: str = "", metric: str = "logit_diff",
          check: bool = True) -> str:
    (folder / "c.circ").write_text(CIRCUIT % (position, data, metric) + (CHECK if check else ""), encoding="utf-8")
    return "c.circ"


def _answered(result) -> str:
    """The output of a run that ended with a documented exit code and no internal error."""
    escaped = result.exception if not isinstance(result.exception, SystemExit) else None
    assert escaped is None, f"{type(escaped).__name__}: {escaped}"
    assert "internal error" not in result.output and "Traceback" not in result.output, result.output
    return result.output


# -- 1. task problems at run time: located errors ------------------------------------------

@pytest.mark.parametrize("n", ["0", "-3", "2.5"])
def test_a_generator_without_examples_points_at_the_task(tmp_path: Path, monkeypatch, n: str) -> None:
    monkeypatch.chdir(tmp_path)
    result = _run("check", *FAST, _file(tmp_path, f"induction(seq_len = 16, n = {n})"))
    out = _answered(result)
    assert result.exit_code == 1
    assert "error: c.circ:8:6:" in out and "`n` must be a whole number of examples, at least 1" in out
    assert "0 of 0 check(s) passed" not in out


def test_discover_locates_a_task_without_examples_too(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    _file(tmp_path, "induction(seq_len = 16, n = 0)", check=False)
    out = _answered(_run("discover", "--task", "c.circ:t", "--edges", "3"))
    assert "error: c.circ:8:6: task `t`: `n` must be a whole number of examples" in out


JSONL_CASES = {
    "empty": ("", "data.jsonl: task `t`: the file has no examples"),
    "schema": ('{"foo": 1}\n', "data.jsonl:1: task `t`: missing field(s)"),
    "deep": ('{"clean": ' + "[" * 100_000 + "]" * 100_000 + "}\n", "data.jsonl:1: task `t`: invalid example"),
    "bool position": ('{"clean": [0, 1, 2], "corrupt": [0, 2, 1], "answer": 1, "wrong": 2, "positions": {"S": true}}\n',
                      "data.jsonl:1: task `t`: `positions` must map names"),
    "huge int": ('{"clean": [' + "9" * 5000 + '], "corrupt": [1], "answer": 1, "wrong": 2}\n', "data.jsonl:1:"),
}


@pytest.mark.parametrize("case", sorted(JSONL_CASES))
def test_a_bad_jsonl_names_its_line_as_the_user_wrote_it(tmp_path: Path, monkeypatch, case: str) -> None:
    text, expected = JSONL_CASES[case]
    (tmp_path / "data.jsonl").write_text(text, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    result = _run("check", *FAST, _file(tmp_path, '"data.jsonl"'))
    out = _answered(result)
    assert result.exit_code == 1
    assert f"error: {expected}" in out
    assert str(tmp_path) not in out  # the path as written, not made absolute


def test_an_edge_into_logits_outside_the_prompt_is_an_error_like_one_into_a_head(tmp_path: Path,
                                                                                 monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    out = _answered(_run("check", *FAST, _file(tmp_path, position=" @40")))
    assert "edge `L1.H1 -> logits @40`: position @40 is 40 in example 1, outside its 16 tokens" in out
    assert "faithfulness = 0.0000" not in out


def test_an_edge_position_in_the_padding_of_a_shorter_prompt_is_an_error(tmp_path: Path, monkeypatch) -> None:
    rows = ['{"clean": [0, 1, 2, 3], "corrupt": [0, 2, 3, 1], "answer": 1, "wrong": 2}',
            '{"clean": [0, 1, 2, 3, 4, 5], "corrupt": [0, 2, 3, 1, 4, 5], "answer": 1, "wrong": 2}']
    (tmp_path / "data.jsonl").write_text("\n".join(rows) + "\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    result = _run("check", *FAST, _file(tmp_path, '"data.jsonl"', position=" @5"))
    assert "position @5 is 5 in example 1, outside its 4 tokens" in _answered(result)
    assert result.exit_code == 1


def test_padded_jsonl_keeps_each_prompt_length(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text('{"clean": [0, 1], "corrupt": [0, 2], "answer": 1, "wrong": 2}\n'
                    '{"clean": [0, 1, 2], "corrupt": [0, 2, 1], "answer": 1, "wrong": 2}\n', encoding="utf-8")
    data = load_jsonl(path)
    assert data.prompt_lengths.tolist() == [2, 3] and data.select(slice(1, 2)).prompt_lengths.tolist() == [3]


def test_task_data_refuses_zero_examples() -> None:
    empty = torch.zeros(0, 4, dtype=torch.long)
    with pytest.raises(TaskError, match="no examples"):
        TaskData(empty, empty, torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long))


# -- 2. no NaN or inf in any report --------------------------------------------------------

def test_ratio_under_kl_says_why_it_is_undefined_in_every_report(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.circ").write_text(CIRCUIT % ("", "induction(seq_len = 16, n = 16)", "kl")
                                     + "\ncheck c on t {\n    expect ratio >= 0.5\n}\n", encoding="utf-8")
    result = _run("eval", "c.circ", *FAST, "--completeness", "2", "--json", "r.json", "--markdown", "r.md")
    out = _answered(result)
    report_json = (tmp_path / "r.json").read_text(encoding="utf-8")
    report_md = (tmp_path / "r.md").read_text(encoding="utf-8")
    for text in (out, report_json, report_md):
        assert not NON_FINITE.search(text), text
        assert "m(model) = 0 under kl" in text
    data = json.loads(report_json)
    assert data["checks"][0]["report"]["undefined"]["ratio"] == "m(model) = 0 under kl"
    assert data["checks"][0]["expectations"][0]["value"] is None
    assert result.exit_code == 1


def test_value_text_never_prints_a_non_finite_number() -> None:
    from circuitlang.eval.report import fixed, value_text
    from circuitlang.eval.results import Interval

    assert value_text(float("nan")) == "undefined" and fixed(float("inf")) == "undefined"
    assert value_text(0.5, Interval(float("-inf"), 0.7)) == "0.5000"


# -- 3. output paths are checked before the work --------------------------------------------

@pytest.mark.parametrize("option", ["--json", "--markdown"])
def test_eval_refuses_an_unwritable_output_before_evaluating(tmp_path: Path, monkeypatch, option: str) -> None:
    monkeypatch.chdir(tmp_path)
    result = _run("eval", _file(tmp_path), option, "missing/report.out")
    out = _answered(result)
    assert result.exit_code == 2
    assert f"error: {option} missing/report.out: the folder missing does not exist" in out
    assert "faithfulness" not in out  # nothing was evaluated


# -- 4. one JSON object for `check --format json` ------------------------------------------

def test_check_json_is_one_object_with_and_without_static(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    _file(tmp_path, check=False)
    for args in (("--static",), FAST):
        result = _run("check", "--format", "json", *args, "c.circ")
        data = json.loads(result.stdout)
        assert set(data) == {"static", "passed", "diagnostics", "files"}
        assert data["static"] is (args == ("--static",)) and data["passed"] is True
        entry = data["files"][0]
        assert entry["file"] == "c.circ" and entry["passed"] is None
        assert entry["status"] == ("static" if data["static"] else "nothing to evaluate")


def test_a_skipped_file_is_not_reported_as_passed() -> None:
    from circuitlang.cli.check import _eval_summary, _file_status
    from circuitlang.eval.runner import FileOutcome, Problem

    compiled = type("Compiled", (), {"ok": True})()
    skipped = FileOutcome("a.circ", skipped="a.circ:1:7: model not available")
    stopped = FileOutcome("b.circ", problems=(Problem("b.circ:1:7", "cannot load"),))
    assert _file_status(compiled, skipped, False) == ("skipped", None)
    assert _file_status(compiled, stopped, False) == ("failed", False)
    summary = _eval_summary([skipped, stopped])
    assert "0 of 0" not in summary and "1 file(s) not fully evaluated" in summary and "1 file(s) skipped" in summary


# -- 5. no wrapping off a terminal -----------------------------------------------------------

def test_verdict_lines_are_not_wrapped_in_a_log(tmp_path: Path, monkeypatch) -> None:
    folder = tmp_path / ("a-long-folder-name-for-a-ci-runner-workspace" * 2)
    folder.mkdir()
    monkeypatch.chdir(folder)
    out = _answered(_run("check", *FAST, _file(folder)))
    lines = [line for line in out.splitlines() if "faithfulness" in line and "examples)" in line]
    assert lines and all("logit_diff, 16 examples)" in line for line in lines), out
    assert any(len(line) > 80 for line in out.splitlines())


# -- 6. --task FILE:TASK for files without check blocks -------------------------------------

def test_check_says_when_a_file_has_nothing_to_evaluate(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    out = _answered(_run("check", _file(tmp_path, check=False)))
    assert "note: c.circ: nothing to evaluate: no check blocks" in out and "--task FILE:TASK" in out


@pytest.mark.parametrize("command", ["check", "eval"])
def test_task_from_another_file_evaluates_every_circuit(tmp_path: Path, monkeypatch, command: str) -> None:
    monkeypatch.chdir(tmp_path)
    result = _run(command, *FAST, "--completeness", "0", "--task", ZOO_TASK, _file(tmp_path, check=False)) \
        if command == "eval" else _run(command, *FAST, "--task", ZOO_TASK, _file(tmp_path, check=False))
    out = _answered(result)
    assert result.exit_code == 0
    assert "c.circ: circuit c on repeat_tokens_zero (zero ablation)" in out


def test_eval_circuit_needs_a_task(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = _run("eval", _file(tmp_path), "--circuit", "c")
    assert result.exit_code == 2 and "--circuit needs --task" in _answered(result)


# -- 8. no torch when there is nothing to evaluate ----------------------------------------

def test_check_imports_no_torch_when_nothing_runs(tmp_path: Path) -> None:
    _file(tmp_path, check=False)
    (tmp_path / "bad.circ").write_text("model zoo:induction-2l\ncircuit c { embed -> L9.H0.q }\ncheck c on t {}\n",
                                       encoding="utf-8")
    code = ("import sys\nfrom circuitlang.cli import cli\n"
            "try:\n    cli(['check', 'c.circ', 'bad.circ'])\nexcept SystemExit:\n    pass\n"
            "print('TORCH', 'torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert "TORCH False" in done.stdout, done.stdout + done.stderr
    assert "nothing to evaluate" in done.stderr

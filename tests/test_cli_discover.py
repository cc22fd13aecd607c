"""`circ discover` end to end on the zoo: the written file checks, and matches the planted circuit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import circuitlang as cl
from circuitlang.cli import cli
from circuitlang.present.diff import diff_graphs

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_discover_eap_ig_writes_the_planted_circuit_with_scores(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(ROOT)
    out, curve, plot = tmp_path / "found.circ", tmp_path / "curve.json", tmp_path / "curve.svg"
    result = run("discover", "--task", "stdlib/zoo/induction.circ:repeat_tokens_zero", "--edges", "7",
                 "--curve", str(curve), "--plot", str(plot), "-o", str(out), "--seed", "1")
    assert result.exit_code == 0, result.output
    found = cl.compile_file(out)
    assert found.ok, found.diagnostics
    truth = cl.load(ROOT / "stdlib/zoo/induction.circ").circuits["induction"]
    assert diff_graphs(found.circuit("found"), truth).is_empty
    assert all("score" in notes for notes in found.circuit("found").annotations.values())
    data = json.loads(curve.read_text())
    assert 0 < data["cpr"] <= 1.01 and len(data["curve"]) == 10
    xs = [p["fraction"] for p in data["curve"]]
    fs = [p["faithfulness"] for p in data["curve"]]
    area = lambda ys: sum((xs[i + 1] - xs[i]) * (ys[i] + ys[i + 1]) / 2 for i in range(len(xs) - 1))  # noqa: E731
    assert data["cpr"] == pytest.approx(area(fs)) and data["cmd"] == pytest.approx(area([abs(1 - f) for f in fs]))
    assert plot.read_text().startswith("<svg")


def test_discover_acdc_and_target_selection(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(ROOT)
    out = tmp_path / "acdc.circ"
    result = run("discover", "--task", "stdlib/zoo/mlp_planted.circ:mod_sum_resample", "--method", "acdc",
                 "--tau", "0.02", "-o", str(out))
    assert result.exit_code == 0, result.output
    truth = cl.load(ROOT / "stdlib/zoo/mlp_planted.circ").circuits["planted_resample"]
    assert cl.compile_file(out).circuit("found").edges == truth.edges
    target = tmp_path / "target.circ"
    result = run("discover", "--task", "stdlib/zoo/mlp_planted.circ:mod_sum_zero", "--method", "exact",
                 "--target", "0.95", "-o", str(target))
    assert result.exit_code == 0, result.output
    assert cl.compile_file(target).circuit("found").edges == cl.load(
        ROOT / "stdlib/zoo/mlp_planted.circ").circuits["planted"].edges


def test_discover_usage_errors(monkeypatch) -> None:
    monkeypatch.chdir(ROOT)
    both = run("discover", "--task", "stdlib/zoo/induction.circ:repeat_tokens", "--edges", "3", "--target", "0.9")
    assert both.exit_code == 2 and "choose one" in both.output
    missing = run("discover", "--task", "stdlib/zoo/induction.circ:nope")
    assert missing.exit_code == 2 and "no task `nope`" in missing.output


def test_discover_refuses_metrics_without_a_useful_gradient(monkeypatch) -> None:
    monkeypatch.chdir(ROOT)
    task = "stdlib/zoo/induction.circ:repeat_tokens"
    kl = run("discover", "--task", task, "--method", "eap", "--metric", "kl", "--edges", "3")
    assert kl.exit_code == 2 and "KL divergence" in kl.output and "eap-ig" in kl.output
    accuracy = run("discover", "--task", task, "--method", "eap-ig", "--metric", "accuracy", "--edges", "3")
    assert accuracy.exit_code == 2 and "accuracy has no gradient" in accuracy.output
    assert run("discover", "--task", task, "--method", "eap-ig", "--metric", "kl", "--edges", "5").exit_code == 0


def test_discover_failures_go_through_the_one_failure_path(monkeypatch, tmp_path: Path) -> None:
    """Usage problems print `error: ...` (exit 2) like every other command; a model that
    cannot be loaded prints `error: ...` with its help (exit 1)."""
    monkeypatch.chdir(ROOT)
    both = run("discover", "--task", "stdlib/zoo/induction.circ:repeat_tokens", "--edges", "3", "--target", "0.9")
    assert both.output.startswith("error: choose one of --edges, --threshold and --target")
    missing = run("discover", "--task", "stdlib/zoo/induction.circ:repeat_tokens", "--model", "no-such-model-here",
                  "--edges", "3")
    assert missing.exit_code == 1 and missing.output.startswith("error: ")
    assert "no-such-model-here" in missing.output and "  = help: " in missing.output
    assert "Traceback" not in missing.output

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
    cannot be found prints `error[CODE]: ...` with its help (exit 1), the code of its
    diagnostic (E203: unknown model; `--model` is resolved like a `model` line)."""
    monkeypatch.chdir(ROOT)
    both = run("discover", "--task", "stdlib/zoo/induction.circ:repeat_tokens", "--edges", "3", "--target", "0.9")
    assert both.output.startswith("error: choose one of --edges, --threshold and --target")
    missing = run("discover", "--task", "stdlib/zoo/induction.circ:repeat_tokens", "--model", "no-such-model-here",
                  "--edges", "3")
    assert missing.exit_code == 1 and missing.output.startswith("error[E203]: unknown model")
    assert "no-such-model-here" in missing.output and "  = help: " in missing.output
    assert "Traceback" not in missing.output


# ---- --target on zoo:induction-trained: the measured curve, what was chosen and why -------------

TRAINED = "stdlib/zoo/induction_trained.circ:repeat_tokens"


@pytest.mark.parametrize("method, k, written", [("eap", 80, 80), ("eap-ig", 80, 80), ("exact", 44, 43)])
def test_discover_target_on_induction_trained_says_what_it_chose_and_why(tmp_path: Path, monkeypatch, method: str,
                                                                         k: int, written: int) -> None:
    """Faithfulness is not monotone in k here (EAP: 0.930 at k = 17, 0.602 at k = 32); every k
    is measured, the smallest reaching 0.95 is kept, and the output says so. Exact's top 44
    hold `L1.H0 -> logits` (scored 0.007 in the full model) but no edge into L1.H0: under
    resample ablation it carries nothing, and pruning removes it without changing f."""
    monkeypatch.chdir(ROOT)
    out, why = tmp_path / "found.circ", tmp_path / "why.json"
    result = run("discover", "--task", TRAINED, "--method", method, "--json", str(why), "-o", str(out))
    assert result.exit_code == 0, result.output
    data = json.loads(why.read_text())
    selection = data["selection"]
    assert (selection["edges"], selection["every_k"], selection["settled"]) == (k, True, True)
    assert selection["target"] == 0.95 and selection["faithfulness"] >= 0.95 and selection["ranked_edges"] == 81
    assert [p["edges"] for p in selection["curve"]] == list(range(1, 82))
    assert all(p["faithfulness"] < 0.95 for p in selection["curve"] if p["edges"] < k)
    assert selection["non_monotone"]["size"] > selection["non_monotone"]["threshold"]
    assert data["pruning"]["edges"] == written == data["circuit"]["edges"]
    assert data["pruning"]["faithfulness_after"] == pytest.approx(data["pruning"]["faithfulness_before"], abs=1e-4)
    assert data["circuit"]["faithfulness"] >= 0.95
    assert any(w.startswith("faithfulness is not monotone in k") for w in data["warnings"])
    assert any(w.startswith(f"the chosen circuit has {k} of the model's 81 edges") for w in data["warnings"])
    said = f"selected: k = {k} of 81 ranked edges, the smallest k whose measured faithfulness reaches 0.95"
    assert said in result.output and "curve measured at every k = 1..81" in result.output
    assert "warning: faithfulness is not monotone in k: it falls from" in result.output
    text = out.read_text()
    assert f"// selected: k = {k} of 81 ranked edges" in text and "// warning: the chosen circuit has" in text
    found = cl.compile_file(out)
    assert found.ok and len(found.circuit("found").edges) == written


def test_discover_no_prune_keeps_the_top_k_and_zero_ablation_keeps_unfed_edges(tmp_path: Path,
                                                                               monkeypatch) -> None:
    monkeypatch.chdir(ROOT)
    kept = tmp_path / "kept.circ"
    result = run("discover", "--task", TRAINED, "--method", "exact", "--no-prune", "-o", str(kept))
    assert result.exit_code == 0 and "pruned" not in result.output
    assert len(cl.compile_file(kept).circuit("found").edges) == 44
    asked = run("discover", "--task", TRAINED, "--method", "exact", "--ablation", "zero", "--edges", "3")
    assert asked.exit_code == 0 and "pruned" not in asked.output  # --edges K writes the K edges asked for
    zero = run("discover", "--task", TRAINED, "--method", "exact", "--ablation", "zero", "--edges", "3", "--prune")
    assert zero.exit_code == 0, zero.output
    assert "pruned: 2 edges the circuit cannot use (2 into nodes with no path to logits, 0 out of" in zero.output
    assert "kept the edges out of L1.H2: no path from embed feeds it, so under zero ablation" in zero.output


def test_discover_target_out_of_reach_explains(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(ROOT)
    why = tmp_path / "why.json"
    result = run("discover", "--task", TRAINED, "--method", "eap", "--target", "1.2", "--json", str(why))
    assert result.exit_code == 1
    assert "error: no measured top-k circuit reaches faithfulness 1.2 (best: 1.0032 at k = 80)" in result.output
    assert json.loads(why.read_text())["selection"]["edges"] is None

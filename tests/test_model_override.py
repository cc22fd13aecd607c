"""`--model`: a file's checks (and discovery on its task) applied to another model of the
same shape, e.g. a training checkpoint; another shape is E215, naming each difference."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

pytest.importorskip("transformer_lens")

from circuitlang.cli import cli as main  # noqa: E402
from circuitlang.core.models import ModelRef, ShapeError, fit_override, resolve_shape, shape_differences  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PHASE = ROOT / "stdlib" / "zoo" / "induction_phase"
FAST = ("--sensitivity", "off", "--bootstrap", "0")


def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_shape_differences_name_each_field() -> None:
    two_l = resolve_shape(ModelRef("zoo:induction-2l"))
    assert shape_differences(two_l, resolve_shape(ModelRef("zoo:induction-trained"))) == []  # widths may differ
    different = shape_differences(two_l, resolve_shape(ModelRef("zoo:mlp-planted")))
    assert different == ["heads per layer 2 instead of 4", "blocks MLPs instead of no MLPs"]
    with pytest.raises(ShapeError) as err:
        fit_override(two_l, "zoo:induction-2l", ModelRef("zoo:gpt2-random"))
    assert err.value.code == "E215" and "layers 12 instead of 2" in err.value.message


def test_check_on_a_checkpoint_measures_that_checkpoint(monkeypatch) -> None:
    """The same file on its own model and on two checkpoints of the run: the reports name
    the model that ran, and the numbers are that model's (before the phase change the
    induction circuit cannot be faithful)."""
    monkeypatch.chdir(ROOT)
    reports = {}
    for model in (None, "stdlib/zoo/induction_phase/step-00100", "stdlib/zoo/induction_phase/step-01200"):
        args = ["check", "stdlib/zoo/induction_phase.circ", "--format", "json", *FAST]
        result = run(*args, *(["--model", model] if model else []))
        assert result.exit_code in (0, 1), result.output
        report = json.loads(result.stdout)
        check = report["files"][0]["checks"][0]
        reports[model] = check
    assert reports[None]["report"]["model"] == "zoo:induction-trained"
    assert reports["stdlib/zoo/induction_phase/step-00100"]["report"]["model"].endswith("step-00100")
    early, late = reports["stdlib/zoo/induction_phase/step-00100"], reports["stdlib/zoo/induction_phase/step-01200"]
    assert early["report"]["faithfulness"] < 0.2 < 0.8 < late["report"]["faithfulness"]
    assert late["passed"] and not early["passed"]


def test_check_refuses_another_shape_naming_the_difference() -> None:
    result = run("check", "stdlib/zoo/induction.circ", "--model", "zoo:mlp-planted", *FAST)
    assert result.exit_code == 1
    assert "error[E215]" in result.stderr
    assert "heads per layer 2 instead of 4" in result.stderr and "blocks MLPs instead of no MLPs" in result.stderr


def test_eval_refuses_another_shape() -> None:
    result = run("eval", "stdlib/zoo/induction.circ", "--model", "zoo:gpt2-random", *FAST)
    assert result.exit_code == 1
    assert "E215" in result.stderr and "layers 12 instead of 2" in result.stderr


def test_eval_on_a_model_of_the_same_shape(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    result = run("eval", "stdlib/zoo/induction.circ", "--model", "zoo:induction-trained", "--json", str(out), *FAST)
    assert result.exit_code in (0, 1), result.output
    checks = json.loads(out.read_text())["checks"]
    assert checks and all(c["report"]["model"] == "zoo:induction-trained" for c in checks)


def test_discover_refuses_another_shape() -> None:
    result = run("discover", "--task", "stdlib/zoo/induction.circ:repeat_tokens", "--model", "zoo:mlp-planted",
                 "--method", "eap", "--edges", "3")
    assert result.exit_code == 1
    assert "error[E215]" in result.stderr


def test_discover_on_a_checkpoint(monkeypatch) -> None:
    monkeypatch.chdir(ROOT)
    result = run("discover", "--task", "stdlib/zoo/induction_phase.circ:repeat_tokens", "--model",
                 "stdlib/zoo/induction_phase/step-01200", "--method", "eap", "--edges", "5")
    assert result.exit_code == 0, result.output
    assert 'model "stdlib/zoo/induction_phase/step-01200"' in result.stdout or \
        "model ./stdlib/zoo/induction_phase/step-01200" in result.stdout or \
        "stdlib/zoo/induction_phase/step-01200" in result.stdout


def test_check_file_takes_a_model(monkeypatch) -> None:
    from circuitlang import check_file, load_model

    monkeypatch.chdir(ROOT)
    outcome = check_file("stdlib/zoo/induction_phase.circ", model="stdlib/zoo/induction_phase/step-01200",
                         sensitivity="off", bootstrap=0)
    assert not outcome.problems and outcome.checks[0].circuit.model.endswith("step-01200")
    wrong = check_file("stdlib/zoo/induction.circ", model=load_model("zoo:mlp-planted"), sensitivity="off",
                       bootstrap=0)
    assert wrong.problems and wrong.problems[0].code == "E215" and not wrong.checks

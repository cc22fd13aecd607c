"""Hostile input to `circ discover`, `circ import` and `circ export` (issue 15): no NaN or
inf in any output, names and output paths refused before any work, written files that
check, graph JSON that cannot hang or recurse."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

import circuitlang as cl
from circuitlang.cli import cli

ROOT = Path(__file__).resolve().parent.parent
TASK = "stdlib/zoo/induction.circ:repeat_tokens_zero"
SMALL = 'task t { data induction(seq_len = 8, n = 16, seed = 0)  ablation zero }\n'


def run(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture
def small_task(tmp_path: Path) -> Path:
    """A 16-example induction task on the zoo model, in tmp_path."""
    path = tmp_path / "task.circ"
    path.write_text("model zoo:induction-2l\n" + SMALL)
    return path


# ---------------------------------------------------------------------------------
# discover: NaN and inf
# ---------------------------------------------------------------------------------


@pytest.mark.parametrize("option", ["--threshold", "--target"])
@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_discover_refuses_non_finite_threshold_and_target(option: str, value: str, small_task: Path) -> None:
    result = run("discover", "--task", f"{small_task}:t", option, value)
    assert result.exit_code == 2, result.output
    assert f"{option} must be a finite number" in result.output


def test_discover_threshold_above_every_score_is_an_empty_circuit_not_nan(small_task: Path, tmp_path: Path) -> None:
    out, report = tmp_path / "found.circ", tmp_path / "why.json"
    result = run("discover", "--task", f"{small_task}:t", "--threshold", "1e9", "-o", str(out), "--json", str(report))
    assert result.exit_code == 1, result.output
    assert "keeps no edge" in result.output and "the highest score is" in result.output
    assert "nan" not in result.output.lower()
    assert not out.exists()
    text = report.read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text)["circuit"]["edges"] == 0


def test_json_text_writes_non_finite_numbers_as_null() -> None:
    from circuitlang.cli.discover import json_text

    text = json_text({"a": float("nan"), "b": [1.0, float("inf")], "c": {"d": -float("inf")}})
    assert json.loads(text) == {"a": None, "b": [1.0, None], "c": {"d": None}}


def test_curve_svg_skips_non_finite_points() -> None:
    from circuitlang.discovery.plot import curve_svg

    svg = curve_svg([(0.01, float("nan")), (0.1, 0.5), (1.0, float("inf"))], "t")
    assert "nan" not in svg.lower() and "inf" not in svg.lower()
    assert svg.count("<circle") == 1


def test_select_refuses_non_finite_threshold_and_target() -> None:
    from circuitlang.discovery import select

    with pytest.raises(ValueError):
        select.by_threshold({}, float("nan"))
    with pytest.raises(ValueError):
        select.select_by_target(None, {}, float("inf"))


# ---------------------------------------------------------------------------------
# discover: names, output paths, the written file
# ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["bad name", "logits", "L3", "9lives", "circuit"])
def test_discover_refuses_a_name_the_file_could_not_parse(name: str, small_task: Path) -> None:
    result = run("discover", "--task", f"{small_task}:t", "--edges", "3", "--name", name)
    assert result.exit_code == 2, result.output
    assert "cannot name a circuit" in result.output


@pytest.mark.parametrize("option", ["-o", "--curve", "--plot", "--json"])
def test_discover_refuses_unwritable_outputs_before_computing(option: str, small_task: Path, tmp_path: Path,
                                                             monkeypatch) -> None:
    from circuitlang.eval import loading

    monkeypatch.setattr(loading, "model_for", lambda *args: pytest.fail("loaded the model"))
    for bad, says in ((tmp_path / "missing" / "x", "does not exist"), (tmp_path, "is a folder")):
        result = run("discover", "--task", f"{small_task}:t", "--edges", "3", option, str(bad))
        assert result.exit_code == 2, result.output
        assert f"{option} {bad}" in result.output and says in result.output
        assert "Traceback" not in result.output


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_discover_refuses_a_read_only_folder(small_task: Path, tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        result = run("discover", "--task", f"{small_task}:t", "--edges", "3", "-o", str(folder / "x.circ"))
    finally:
        folder.chmod(0o700)
    assert result.exit_code == 2 and "cannot write in the folder" in result.output, result.output


def test_discover_writes_a_file_that_checks_the_task_it_was_found_on(small_task: Path, tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    out = tmp_path / "sub" / "found.circ"
    result = run("discover", "--task", f"{small_task}:t", "--edges", "7", "-o", str(out))
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert 'import "../task.circ" as task_source' in text
    assert "check found on task_source.t {" in text and "expect faithfulness >= " in text
    outcome = cl.check_file(out)
    assert not outcome.problems and len(outcome.checks) == 1 and outcome.passed, outcome
    assert run("fmt", "--check", str(out)).exit_code == 0


def test_discover_check_block_names_the_overridden_ablation(small_task: Path, tmp_path: Path) -> None:
    out = tmp_path / "found.circ"
    result = run("discover", "--task", f"{small_task}:t", "--edges", "7", "--ablation", "resample", "-o", str(out))
    assert result.exit_code == 0, result.output
    assert "check found on task_source.t with ablation = resample {" in out.read_text()
    assert cl.compile_file(out).ok


def test_discover_rewrites_a_relative_checkpoint_against_the_output_folder(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    from circuitlang.eval.zoo import induction, weights
    from circuitlang.eval.zoo.layout import blank_state

    folder = tmp_path / "ckpt"
    folder.mkdir()
    state = weights("zoo:induction-2l", blank_state).state
    (folder / "config.json").write_text(json.dumps({k: v for k, v in induction.CONFIG.items() if k != "model_name"}))
    save_file({k: v.contiguous() for k, v in state.items()}, str(folder / "model.safetensors"))
    (tmp_path / "task.circ").write_text('model "ckpt"\n' + SMALL)
    (tmp_path / "sub").mkdir()
    out = tmp_path / "sub" / "found.circ"
    result = run("discover", "--task", f"{tmp_path / 'task.circ'}:t", "--edges", "3", "-o", str(out))
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert 'model "../ckpt"' in text or "model ../ckpt\n" in text  # an unquoted path with `/` is a directory
    compiled = cl.compile_file(out, check_files=True)
    assert compiled.ok, compiled.diagnostics


def test_discover_reports_a_bad_data_file_at_its_line(tmp_path: Path) -> None:
    (tmp_path / "bad.jsonl").write_text('{"clean": "a b", "answer": 3}\n')
    (tmp_path / "t.circ").write_text('model zoo:induction-2l\ntask t { data "bad.jsonl" }\n')
    result = run("discover", "--task", f"{tmp_path / 't.circ'}:t", "--edges", "3")
    assert result.exit_code == 1, result.output
    assert f"{tmp_path / 'bad.jsonl'}:1: task `t`:" in result.output


# ---------------------------------------------------------------------------------
# import
# ---------------------------------------------------------------------------------

CFG = '"cfg": {"n_layers": 2, "n_heads": 4, "d_model": 128}'


def test_import_top_without_scores_is_refused(tmp_path: Path) -> None:
    graph = tmp_path / "g.json"
    graph.write_text('{' + CFG + ', "edges": {"a0.h1->logits": {"in_graph": true}, '
                     '"a1.h1->logits": {"score": null}}}')
    result = run("import", str(graph), "--model", "zoo:induction-2l", "--top", "50")
    assert result.exit_code == 1 and "E611" in result.output, result.output
    assert "circuit" not in result.stdout
    assert run("import", str(graph), "--model", "zoo:induction-2l", "--top", "0").exit_code == 2


def test_import_deeply_nested_json_is_e601(tmp_path: Path) -> None:
    graph = tmp_path / "deep.json"
    graph.write_text('{"edges": ' + "[" * 200_000 + "]" * 200_000 + "}")
    result = run("import", str(graph))
    assert result.exit_code == 1 and "E601" in result.output and "nested too deeply" in result.output


def test_import_suggests_names_only_for_the_diagnostics_shown(tmp_path: Path, monkeypatch) -> None:
    from circuitlang.present.interop import read

    calls = []
    original = read.did_you_mean
    monkeypatch.setattr(read, "did_you_mean", lambda *args: calls.append(1) or original(*args))
    edges = {f"attn{i % 2}.head{i}->logits": {"score": 1.0} for i in range(3000)}
    graph, diagnostics = read.graph_from_mib({"cfg": {"n_layers": 2, "n_heads": 4, "d_model": 128},
                                              "edges": edges}, source="g.json")
    assert graph is None
    assert [d.code for d in diagnostics] == ["E603"] * read.MAX_PER_CODE
    assert "(and 2990 more like it)" in diagnostics[-1].message
    assert len(calls) == read.MAX_PER_CODE


def test_import_reads_a_score_too_large_for_a_float_as_none() -> None:
    from circuitlang.present.interop.read import read_mib

    text = '{' + CFG + ', "edges": {"a0.h1->logits": {"score": 1' + "0" * 400 + ', "in_graph": true}}}'
    graph, diagnostics = read_mib(text, source="g.json", model="zoo:induction-2l")
    assert not diagnostics and len(graph.edges) == 1 and not graph.annotations


@pytest.mark.parametrize("command", ["import", "export"])
def test_interop_refuses_unwritable_output_before_reading(command: str, tmp_path: Path) -> None:
    source = tmp_path / "never-read"  # an -o problem is reported before the input is read
    source.write_text("{")
    for bad, says in ((tmp_path / "missing" / "x", "does not exist"), (tmp_path, "is a folder")):
        result = run(command, str(source), "-o", str(bad))
        assert result.exit_code == 2, result.output
        assert f"-o {bad}" in result.output and says in result.output


# ---------------------------------------------------------------------------------
# export
# ---------------------------------------------------------------------------------

CIRCUITS = """model zoo:induction-2l
circuit c { L0.H1 -> logits @END [score = 1e308]
            L0.H1 -> logits @S1 [score = 1e308] }
circuit d { L1.H1 -> logits [score = 0.5]
            embed -> L1.H1.q }
"""


@pytest.fixture
def circuits(tmp_path: Path) -> Path:
    path = tmp_path / "c.circ"
    path.write_text(CIRCUITS)
    return path


def test_export_takes_file_colon_circuit(circuits: Path) -> None:
    data = json.loads(run("export", f"{circuits}:d").stdout)
    assert data["edges"]["a1.h1->logits"] == {"score": 0.5, "in_graph": True}
    result = run("export", f"{circuits}:d", "--circuit", "c")
    assert result.exit_code == 2 and "name different circuits" in result.output
    assert run("export", f"{circuits}:nope").exit_code == 2


def test_export_writes_zero_for_unscored_edges_and_imports_them_back_unscored(circuits: Path, tmp_path: Path) -> None:
    out = tmp_path / "g.json"
    assert run("export", f"{circuits}:d", "-o", str(out)).exit_code == 0
    data = json.loads(out.read_text())
    assert data["edges"]["input->a1.h1<q>"] == {"score": 0.0, "in_graph": True}
    assert data["edges"]["input->a0.h0<k>"] == {"score": 0.0, "in_graph": False}
    assert data["cfg"]["unscored"] == 0.0
    back = tmp_path / "back.circ"
    assert run("import", str(out), "-o", str(back), "--name", "d").exit_code == 0
    circuit = cl.compile_file(back).circuits["d"]
    assert circuit == cl.compile_file(circuits).circuits["d"]
    assert len(circuit.annotations) == 1
    assert json.loads(run("export", f"{circuits}:d", "--unscored", "null").stdout)["edges"]["input->a1.h1<q>"] == \
        {"score": None, "in_graph": True}


@pytest.mark.parametrize("value", ["nan", "inf", "-Infinity", "x"])
def test_export_refuses_unscored_that_is_not_a_finite_number(value: str, circuits: Path) -> None:
    result = run("export", f"{circuits}:d", "--unscored", value)
    assert result.exit_code == 2 and "--unscored" in result.output, result.output


def test_export_refuses_summed_scores_that_overflow(circuits: Path, tmp_path: Path) -> None:
    out = tmp_path / "g.json"
    result = run("export", f"{circuits}:c", "--drop-positions", "-o", str(out))
    assert result.exit_code == 1 and "E612" in result.output, result.output
    assert not out.exists()


def test_graph_to_mib_refuses_a_non_finite_fill() -> None:
    from circuitlang.core.models import KNOWN_SHAPES
    from circuitlang.present.interop.write import graph_to_mib

    graph = cl.compile_text(CIRCUITS, path="c.circ").circuits["d"]
    with pytest.raises(ValueError):
        graph_to_mib(graph, KNOWN_SHAPES["zoo:induction-2l"], unscored=float("nan"))


def test_no_command_overwrites_its_input(small_task: Path, circuits: Path, tmp_path: Path) -> None:
    before = small_task.read_text()
    result = run("discover", "--task", f"{small_task}:t", "--edges", "3", "-o", str(small_task))
    assert result.exit_code == 2 and "is the task's file" in result.output, result.output
    assert small_task.read_text() == before
    result = run("export", f"{circuits}:d", "-o", str(circuits))
    assert result.exit_code == 2 and "is the input file" in result.output
    assert circuits.read_text() == CIRCUITS
    graph = tmp_path / "g.json"
    graph.write_text('{' + CFG + ', "edges": {"a0.h1->logits": {"score": 1.0}}}')
    assert run("import", str(graph), "-o", str(graph)).exit_code == 2
    assert "a0.h1" in graph.read_text()


def test_an_undefined_faithfulness_is_never_written_as_nan(tmp_path: Path) -> None:
    from circuitlang.cli.discover import _check_block, _f4

    assert _f4(float("nan")) == "undefined" and _f4(0.5) == "0.5000"
    assert _check_block(str(tmp_path / "t.circ"), "t", "found", float("nan"), None, None, {}, None) == ""
    block = _check_block(str(tmp_path / "t.circ"), "t", "found", 0.987, None, tmp_path / "x.circ",
                         {"ablation": "zero", "metric": None}, 3)
    assert "expect faithfulness >= 0.98" in block and "with ablation = zero {" in block and "--seed 3" in block

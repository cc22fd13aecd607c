"""The evaluator on the zoo's planted induction circuit (ground truth), checks' verdicts,
task files, and the guards against meaningless numbers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import circuitlang as cl
from circuitlang.core.graph import CircuitGraph, Edge, Node
from circuitlang.eval.backends.base import ModelLoadError
from circuitlang.eval.backends.installed import transformer_lens_major
from circuitlang.eval.evaluator import Evaluator
from circuitlang.eval.loading import load_model
from circuitlang.eval.session import EvaluationError, Session
from circuitlang.eval.tasks.base import TaskData, TaskError
from circuitlang.eval.tasks.jsonl import load_jsonl
from circuitlang.eval.tasks.registry import task_data
from circuitlang.lang.check import TaskSpec

POSITION_ONLY = {"embed -> L0.H2.q", "embed -> L0.H2.k"}


@pytest.fixture(scope="module")
def induction():
    loaded = load_model("zoo:induction-2l")
    circuit = cl.load(Path(__file__).parent.parent / "stdlib/zoo/induction.circ").circuits["induction"]
    data = task_data(TaskSpec("repeat", ("induction", {"n": 48, "seed": 1})), loaded)
    return loaded, circuit, data


@pytest.mark.parametrize("ablation", ["zero", "resample", "mean"])
def test_planted_circuit_is_faithful(induction, ablation: str) -> None:
    loaded, circuit, data = induction
    report = Evaluator(Session(loaded, data, ablation)).report(circuit)
    assert report.faithfulness >= 0.95
    by_edge = {c.name: c.delta for c in report.edges}
    assert len(by_edge) == 7
    for name, delta in by_edge.items():
        if ablation != "zero" and name in POSITION_ONLY:
            # Position-only edges: the corrupted input has the same positions.
            assert abs(delta) < 0.05, (name, delta)
        else:
            assert delta >= 0.25, (name, delta)


def test_distractor_edges_are_superfluous(induction) -> None:
    loaded, circuit, data = induction
    extra = [Edge(cl.EMBED, Node.attn(0, 0), "q"), Edge(Node.attn(0, 1), Node.attn(1, 1), "v"),
             Edge(Node.attn(1, 3), cl.LOGITS)]
    padded = circuit | CircuitGraph.from_edges(extra)
    report = Evaluator(Session(loaded, data, "zero")).report(padded)
    flagged = {c.name for c in report.edges if c.superfluous}
    assert {str(e) for e in extra} <= flagged
    assert not flagged & {str(e) for e in circuit.edges}


def test_full_and_empty_circuits_anchor_the_scale(induction) -> None:
    loaded, _, data = induction
    from tests.engine_models import full_circuit

    evaluator = Evaluator(Session(loaded, data, "resample"))
    faith = evaluator.faithfulness([full_circuit(loaded.shape), CircuitGraph.from_edges([])])
    torch.testing.assert_close(faith, torch.tensor([1.0, 0.0], dtype=faith.dtype), atol=1e-4, rtol=0)


def test_check_verdicts_pass_and_fail(induction, tmp_path: Path) -> None:
    source = (Path(__file__).parent.parent / "stdlib/zoo/induction.circ").read_text()
    path = tmp_path / "ind.circ"
    path.write_text(source + """
task t { data induction(n = 32)  ablation zero }
check induction on t { expect faithfulness >= 0.95  expect minimal  expect necessary ind }
check induction on t with ablation = resample { expect minimal }
check induction - L1.H1 on t { expect faithfulness >= 0.5 }
""")
    outcome = cl.check_file(path)
    mine = outcome.checks[-3:]  # after the stdlib file's own checks
    verdicts = [[r.passed for r in c.results] for c in mine]
    assert verdicts == [[True, True, True], [False], [False]]
    assert "embed -> L0.H2.q" in mine[1].results[0].detail
    assert all(c.passed for c in outcome.checks[:-3])


def test_metric_that_cannot_separate_model_from_empty_is_an_error(induction) -> None:
    loaded, _, data = induction
    same = TaskData(data.clean, data.clean, data.answer, data.wrong, data.positions)
    with pytest.raises(EvaluationError, match="does not tell the model from the empty circuit"):
        Evaluator(Session(loaded, same, "resample"))


@pytest.mark.parametrize("metric", ["logit_diff", "logprob", "prob", "kl", "accuracy"])
def test_every_metric_gives_a_finite_faithfulness(induction, metric: str) -> None:
    loaded, circuit, data = induction
    report = Evaluator(Session(loaded, data, "zero", metric)).report(circuit, minimality=False)
    assert report.faithfulness == pytest.approx(1.0, abs=0.05)


def test_jsonl_tasks_load_and_report_the_bad_line(tmp_path: Path) -> None:
    good = tmp_path / "good.jsonl"
    good.write_text('{"clean": [1, 2, 3], "corrupt": [1, 4, 3], "answer": 5, "wrong": 6, "positions": {"S": 1}}\n'
                    '{"clean": [1, 2], "corrupt": [1, 4], "answer": 5, "wrong": 6, "positions": {"S": -1}}\n')
    data = load_jsonl(good)
    assert data.clean.shape == (2, 3)
    assert data.positions["END"].tolist() == [2, 1]
    assert data.positions["S"].tolist() == [1, 1]
    cases = {
        '{"clean": [1], "corrupt": [1]}': (1, "missing field"),
        '{"clean": [1, 2], "corrupt": [1], "answer": 1, "wrong": 2}': (1, "clean has 2 tokens"),
        'not json': (1, "invalid JSON"),
        '{"clean": "text", "corrupt": "text", "answer": 1, "wrong": 2}': (1, "no tokenizer"),
    }
    for line, (number, message) in cases.items():
        bad = tmp_path / "bad.jsonl"
        bad.write_text('{"clean": [1], "corrupt": [2], "answer": 1, "wrong": 2}\n' * (number - 1) + line + "\n")
        with pytest.raises(TaskError, match=message) as info:
            load_jsonl(bad)
        assert info.value.line == number


def test_task_file_errors_reach_the_cli_with_their_line(tmp_path: Path) -> None:
    (tmp_path / "t.jsonl").write_text('{"clean": [1, 2], "corrupt": [1, 3], "answer": 999, "wrong": 2}\n')
    path = tmp_path / "c.circ"
    path.write_text('model zoo:induction-2l\ncircuit c { L1.H1 -> logits }\ntask t { data "t.jsonl" }\n'
                    'check c on t { expect faithfulness >= 0.5 }\n')
    from click.testing import CliRunner

    from circuitlang.cli import cli

    result = CliRunner().invoke(cli, ["check", str(path)])
    assert result.exit_code == 1
    assert "t.jsonl:1" in result.output and "outside the vocabulary" in result.output


def test_unavailable_pretrained_model_is_a_clear_error() -> None:
    if transformer_lens_major() == 3:  # 3.x knows its own names: one it does not know is refused as such
        with pytest.raises(ModelLoadError, match="loads only the models it knows by name") as info:
            load_model("gpt2-this-does-not-exist")
        assert "in quotes" in (info.value.help or "")
        return
    with pytest.raises(ModelLoadError, match="offline") as info:
        load_model("gpt2-this-does-not-exist")
    assert "Hugging Face cache" in (info.value.help or "")


def test_eval_writes_json_and_markdown(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from circuitlang.cli import cli

    source = (Path(__file__).parent.parent / "stdlib/zoo/induction.circ").read_text()
    path = tmp_path / "ind.circ"
    path.write_text(source + "\ntask t { data induction(n = 16)  ablation zero }\n")
    out_json, out_md = tmp_path / "r.json", tmp_path / "r.md"
    result = CliRunner().invoke(cli, ["eval", str(path), "--circuit", "induction", "--task", "t", "--json",
                                      str(out_json), "--markdown", str(out_md), "--completeness", "3"])
    assert result.exit_code == 0, result.output
    report = json.loads(out_json.read_text())
    assert report["schema"] == 2
    check = report["checks"][0]["report"]
    assert check["faithfulness"] >= 0.95
    assert len(check["per_example"]["circuit"]) == 16
    assert len(check["edges"]) == 7
    completeness = check["completeness"]  # the worst of the subsets tried, and one of them
    assert completeness["worst_gap"] == max(gap for _, gap in completeness["samples"])
    assert [list(completeness["worst_subset"]), completeness["worst_gap"]] in completeness["samples"]
    assert "| faithfulness [95% interval] |" in out_md.read_text()


def test_out_of_memory_splits_the_variants_with_a_note(induction, monkeypatch) -> None:
    loaded, circuit, data = induction
    from circuitlang.eval.engines.fast import FastEngine

    real = FastEngine.run

    def tight(self, clean, ablated, variants, named, columns=None):
        if len(variants) > 2:
            raise RuntimeError("DefaultCPUAllocator: not enough memory: you tried to allocate 1 GB")
        return real(self, clean, ablated, variants, named, columns)

    session = Session(loaded, data, "zero")
    expected = Evaluator(session).report(circuit)
    monkeypatch.setattr(FastEngine, "run", tight)
    session = Session(loaded, data, "zero")
    report = Evaluator(session).report(circuit)
    assert [c.delta for c in report.edges] == pytest.approx([c.delta for c in expected.edges], abs=1e-6)
    assert any("split them in two" in note for note in session.notes)


def test_shape_mismatch_between_table_and_model_is_reported(induction, monkeypatch, tmp_path: Path) -> None:
    from circuitlang.core import models
    from circuitlang.eval.runner import RunOptions, run_checks

    wrong = models.ModelShape("zoo:induction-2l", 3, 4, 128, attn_only=True)
    monkeypatch.setitem(models.KNOWN_SHAPES, "zoo:induction-2l", wrong)
    path = tmp_path / "c.circ"
    path.write_text("model zoo:induction-2l\ncircuit c { L1.H1 -> logits }\ntask t { data induction(n = 8) }\n"
                    "check c on t { expect faithfulness >= 0.1 }\n")
    outcome = run_checks(cl.compile_file(path), RunOptions())
    assert not outcome.passed
    assert "static checks used 3 x 4" in outcome.problems[0].message


def test_fast_engine_that_cannot_reproduce_the_model_is_replaced(induction, monkeypatch) -> None:
    loaded, circuit, data = induction
    from circuitlang.eval.engines.fast import FastEngine

    honest = Evaluator(Session(loaded, data, "zero")).report(circuit, minimality=False).faithfulness
    monkeypatch.setattr(FastEngine, "run", lambda self, clean, ablated, variants, named:
                        torch.zeros(len(variants), clean.shape[0], loaded.d_vocab))
    session = Session(loaded, data, "zero")
    assert session.engine_name == "reference"
    assert any("does not reproduce this model" in note for note in session.notes)
    assert Evaluator(session).report(circuit, minimality=False).faithfulness == pytest.approx(honest, abs=1e-4)


@pytest.mark.skipif(transformer_lens_major() != 3,
                    reason="TransformerLens 3.x config flags; 4.x's refusals are read from the model's modules "
                           "(tests/test_hf_architectures.py)")
@pytest.mark.parametrize("flag", [dict(use_local_attn=True), dict(output_logits_soft_cap=30.0),
                                  dict(use_normalization_before_and_after=True)])
def test_unsupported_architectures_are_refused_by_the_fast_engine(flag) -> None:
    from circuitlang.eval.backends.base import Unsupported
    from circuitlang.eval.engines.fast import FastEngine
    from tests.engine_models import tiny_model

    backend, _ = tiny_model("ln-mlp")
    FastEngine(backend)  # supported as built
    for key, value in flag.items():
        setattr(backend.model.cfg, key, value)
    assert backend.unsupported()
    with pytest.raises(Unsupported):
        FastEngine(backend)


def test_seed_override_reaches_generator_calls_that_name_a_seed(induction) -> None:
    loaded, _, _ = induction
    spec = TaskSpec("t", ("induction", {"n": 8, "seed": 0}))
    same = task_data(spec, loaded)
    assert torch.equal(task_data(spec, loaded).clean, same.clean)
    assert not torch.equal(task_data(spec, loaded, seed=3).clean, same.clean)


def test_evaluate_keeps_the_data_calls_own_seed_as_circ_eval_does(induction) -> None:
    """`evaluate(circuit, model, task)` once passed the task's seed (0) over the data
    call's `seed = 1`, measuring other examples than `circ eval` (found by circ serve's tests)."""
    loaded, circuit, data = induction
    spec = TaskSpec("repeat", ("induction", {"n": 48, "seed": 1}), ablation="zero")
    report = cl.evaluate(circuit, loaded, spec, sensitivity="off", bootstrap=0)
    direct = Evaluator(Session(loaded, data, "zero"), draws=0).report(circuit, minimality=False)
    assert report.faithfulness == pytest.approx(direct.faithfulness, abs=1e-9)
    assert report.per_example["circuit"] == direct.per_example["circuit"]
    override = cl.evaluate(circuit, loaded, spec, sensitivity="off", bootstrap=0, seed=5)
    assert override.per_example["circuit"] != direct.per_example["circuit"]


def test_results_and_compiled_files_are_frozen(induction) -> None:
    import dataclasses

    loaded, circuit, data = induction
    report = Evaluator(Session(loaded, data, "zero")).report(circuit, minimality=False)
    with pytest.raises(dataclasses.FrozenInstanceError):
        report.faithfulness = 1.0  # type: ignore[misc]
    compiled = cl.compile_text("model gpt2\ncircuit c { L9.H6 -> logits }")
    with pytest.raises(dataclasses.FrozenInstanceError):
        compiled.checks = ()  # type: ignore[misc]
    with pytest.raises(TypeError):
        compiled.circuits["d"] = circuit  # type: ignore[index]


def test_one_loader_keeps_each_model_once(tmp_path: Path) -> None:
    from circuitlang.eval.loading import model_for

    path = tmp_path / "c.circ"
    path.write_text("model zoo:induction-2l\ncircuit c { L1.H1 -> logits }\n")
    ref = cl.compile_file(path).model_ref
    assert ref is not None and (ref.name, ref.quoted, ref.base_dir) == ("zoo:induction-2l", False, tmp_path)
    assert model_for(ref) is model_for(ref)
    assert model_for(ref, dtype="float64") is not model_for(ref)
    with pytest.raises(ModelLoadError, match="declares no model"):
        model_for(None)


def test_checkpoint_directories_load_through_the_file_path(tmp_path: Path) -> None:
    """A checkpoint directory (config.json with HookedTransformerConfig fields and
    model.safetensors), named in quotes, evaluates exactly like the zoo model it was saved
    from, in float32 and float64; weights that do not fit the config are a clear error."""
    import json as json_module

    from safetensors.torch import save_file

    from circuitlang.eval.zoo import mlp_planted, weights
    from circuitlang.eval.zoo.layout import blank_state

    zoo = load_model("zoo:mlp-planted")
    state = weights("zoo:mlp-planted", blank_state).state  # HookedTransformer's layout, as such checkpoints hold
    folder = tmp_path / "ckpt"
    folder.mkdir()
    config = {k: v for k, v in mlp_planted.CONFIG.items() if k != "model_name"}
    (folder / "config.json").write_text(json_module.dumps(config))
    save_file({k: v.contiguous() for k, v in state.items()}, str(folder / "model.safetensors"))
    source = ('model "ckpt"\ncircuit c { L0.H0 -> L0.MLP\n embed -> L0.MLP, L0.H0.q, L0.H0.k, L0.H0.v\n'
              ' L0.MLP -> logits }\ntask t { data mod_sum(n = 32)  ablation zero }\n'
              'check c on t { expect faithfulness >= 0.9 }\n')
    (tmp_path / "c.circ").write_text(source)
    outcome = cl.check_file(tmp_path / "c.circ")
    assert outcome.passed, (outcome.problems, outcome.checks)
    task = cl.load(tmp_path / "c.circ").tasks["t"]
    circuit = cl.load(tmp_path / "c.circ").circuits["c"]
    from_zoo = cl.evaluate(circuit, zoo, task, ablation="zero", completeness_samples=0)
    assert outcome.checks[0].circuit.faithfulness == pytest.approx(from_zoo.faithfulness, abs=1e-6)
    wide = load_model("ckpt", quoted=True, base_dir=tmp_path, dtype=torch.float64)
    assert wide.dtype == torch.float64 and next(wide.model.parameters()).dtype == torch.float64
    save_file({"embed.W_E": state["embed.W_E"].clone()}, str(folder / "model.safetensors"))  # the rest missing
    with pytest.raises(ModelLoadError, match="does not fit"):
        load_model("ckpt", quoted=True, base_dir=tmp_path)

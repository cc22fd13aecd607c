"""`circ track` on the shipped induction phase change (stdlib/zoo/induction_phase/): the
induction circuit's faithfulness rises where the loss on repeated tokens falls, the
circuits discovered at the end hold the induction heads' edges, and Ray gives the same
numbers as one checkpoint after another."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

pytest.importorskip("transformer_lens")

from circuitlang.cli import cli as main  # noqa: E402
from circuitlang.discovery.track import Options, TrackError, checkpoints, step_of, track  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
FILE = "stdlib/zoo/induction_phase.circ"
PHASE = ROOT / "stdlib" / "zoo" / "induction_phase"
SPEC = "stdlib/zoo/induction_phase/step-*"


@pytest.fixture(scope="module")
def result() -> dict:
    return track(str(ROOT / FILE), SPEC, Options(str(ROOT / FILE), bootstrap=200), workers=1, base=ROOT)


def _series(result: dict, circuit: str) -> list[tuple[int, float]]:
    return [(cp["step"], next(c["faithfulness"] for c in cp["checks"] if c["circuit"] == circuit))
            for cp in result["checkpoints"]]


def test_the_sequence_is_read_in_step_order(result: dict) -> None:
    steps = [cp["step"] for cp in result["checkpoints"]]
    assert steps == [0, 60, 100, 120, 130, 140, 150, 160, 180, 200, 400, 1200]
    assert all("repeat_loss" in cp["training"] for cp in result["checkpoints"])
    assert len(result["transitions"]) == len(steps) - 1
    assert result["transitions"][5]["summary"].startswith("step 140 -> 150: induction faithfulness 0.24 -> 0.42")


def test_the_induction_circuit_forms_where_the_loss_drops(result: dict) -> None:
    """Before the drop (steps 60-130, where the model already beats chance) the induction
    circuit explains almost nothing; at the end it explains most of the metric; and its
    faithfulness rises fastest between the same two checkpoints as the loss falls fastest."""
    f = _series(result, "induction")
    loss = [(cp["step"], cp["training"]["repeat_loss"]) for cp in result["checkpoints"]]
    assert all(abs(value) <= 0.1 for step, value in f if 60 <= step <= 130), f
    assert f[-1][1] >= 0.85 and _series(result, "with_values")[-1][1] >= 0.95

    def steepest(points, sign):
        rates = [(sign * (b[1] - a[1]) / (b[0] - a[0]), a[0]) for a, b in zip(points[1:], points[2:])]
        return max(rates)[1]

    assert steepest(f, 1) == steepest(loss, -1) == 140
    # and the full model's metric rises with it (logit difference of the answer)
    m = [next(c["m_model"] for c in cp["checks"] if c["circuit"] == "induction") for cp in result["checkpoints"]]
    assert m[4] < 2.5 < 8 < m[8]


def test_induction_heads_become_necessary(result: dict) -> None:
    """Per-node necessity (faithfulness lost without the node): before the drop no node of
    the circuit matters beyond noise; at the end the main induction head L1.H2 and the
    main previous-token head L0.H1 do (the other heads of each role share their work)."""
    def nodes(cp):
        return next(c for c in cp["checks"] if c["circuit"] == "induction")["nodes"]

    for cp in result["checkpoints"][1:5]:  # steps 60-130
        assert max(abs(v) for v in nodes(cp).values()) <= 0.1, (cp["step"], nodes(cp))
    last = nodes(result["checkpoints"][-1])
    assert last["L1.H2"] >= 0.2 and last["L0.H1"] >= 0.1, last
    assert last["L1.H1"] + last["L1.H2"] + last["L1.H3"] >= 0.3


def test_discovered_circuits_hold_the_induction_edges_at_the_end(tmp_path: Path) -> None:
    options = Options(str(ROOT / FILE), method="exact", edges=15, out_dir=str(tmp_path), bootstrap=0)
    out = track(str(ROOT / FILE), "stdlib/zoo/induction_phase/step-00060,stdlib/zoo/induction_phase/step-01200",
                options, workers=1, base=ROOT)
    early, late = (cp["discovered"] for cp in out["checkpoints"])
    kcomp = {f"L0.H{a} -> L1.H{b}.k" for a in range(3) for b in (1, 2, 3)}
    assert {"L1.H1 -> logits", "L1.H2 -> logits", "L1.H3 -> logits"} <= set(late["edge_list"])
    assert kcomp & set(late["edge_list"]) and not kcomp & set(early["edge_list"])
    change = out["transitions"][0]
    assert set(change["added_edges"]) == set(late["edge_list"]) - set(early["edge_list"])
    written = sorted(tmp_path.glob("*.circ"))
    assert [p.name for p in written] == ["step-00060.circ", "step-01200.circ"]
    diff = CliRunner().invoke(main, ["diff", str(written[0]), str(written[1])], catch_exceptions=False)
    assert diff.exit_code == 1 and "L1.H2.k" in diff.output  # the files differ, and say where


def test_ray_gives_the_same_numbers_as_one_after_another() -> None:
    pytest.importorskip("ray")
    spec = "stdlib/zoo/induction_phase/step-00100,stdlib/zoo/induction_phase/step-00150,stdlib/zoo/induction_phase/step-01200"
    options = Options(str(ROOT / FILE), bootstrap=100)
    sequential = track(str(ROOT / FILE), spec, options, workers=1, base=ROOT)
    parallel = track(str(ROOT / FILE), spec, options, workers=2, base=ROOT)
    assert parallel["how"] == "local Ray, 2 workers" and sequential["how"] == "in-process"
    assert json.dumps(parallel["checkpoints"]) == json.dumps(sequential["checkpoints"])
    assert parallel["transitions"] == sequential["transitions"]


def test_small_models_run_in_process_unless_workers_are_asked_for() -> None:
    """Zoo-sized checkpoints are measured faster than Ray starts (bench/bench_track.py), so
    the default runs them here, and says why."""
    spec = "stdlib/zoo/induction_phase/step-01200"
    out = track(str(ROOT / FILE), spec, Options(str(ROOT / FILE), bootstrap=0), base=ROOT)
    assert out["how"].startswith("in-process (checkpoints this small")


def test_cli_writes_table_json_markdown_and_plot(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(ROOT)
    paths = {k: tmp_path / f"track.{k}" for k in ("json", "md", "svg")}
    result = CliRunner().invoke(main, ["track", FILE, "--checkpoints", "stdlib/zoo/induction_phase/step-0010*,"
                                       "stdlib/zoo/induction_phase/step-01200", "--workers", "1", "--bootstrap", "0",
                                       "--json", str(paths["json"]), "--markdown", str(paths["md"]),
                                       "--plot", str(paths["svg"])], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "step 100 -> 1200: induction faithfulness" in result.stdout and "step-01200" in result.stdout
    data = json.loads(paths["json"].read_text())
    assert [cp["step"] for cp in data["checkpoints"]] == [100, 1200] and data["schema"] == 1
    assert "step 100 -> 1200" in paths["md"].read_text()
    import xml.etree.ElementTree as ET

    assert ET.fromstring(paths["svg"].read_text()).tag.endswith("svg")


def test_bad_specs_and_options_are_refused(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(ROOT)
    run = CliRunner().invoke
    missing = run(main, ["track", FILE, "--checkpoints", "no/such/dir-*"], catch_exceptions=False)
    assert missing.exit_code == 1 and "no directory matches" in missing.stderr
    not_ckpt = run(main, ["track", FILE, "--checkpoints", "stdlib/zoo"], catch_exceptions=False)
    assert not_ckpt.exit_code == 1 and "not a checkpoint directory" in not_ckpt.stderr
    loose = run(main, ["track", FILE, "--checkpoints", SPEC, "--edges", "3"], catch_exceptions=False)
    assert loose.exit_code == 2 and "--discover" in loose.stderr
    wrong_task = run(main, ["track", FILE, "--checkpoints", SPEC, "--task", "nope"], catch_exceptions=False)
    assert wrong_task.exit_code == 1 and "no task `nope`" in wrong_task.stderr


def test_a_checkpoint_of_another_shape_is_a_problem_not_a_crash(tmp_path: Path, monkeypatch) -> None:
    other = tmp_path / "step-00500"
    other.mkdir()
    config = json.loads((PHASE / "step-01200" / "config.json").read_text())
    (other / "config.json").write_text(json.dumps({**config, "n_heads": 2, "d_head": 32}))
    from safetensors.torch import load_file, save_file

    state = load_file(str(PHASE / "step-01200" / "model.safetensors"))
    resized = {k: (v.reshape(2, *v.shape[1:-1], v.shape[-1] * 2) if k.endswith(("W_Q", "W_K", "W_V")) else
                   v.reshape(2, v.shape[1] * 2) if k.endswith(("b_Q", "b_K", "b_V")) else
                   v.reshape(2, v.shape[1] * 2, v.shape[2]) if k.endswith("W_O") else v) for k, v in state.items()}
    save_file(resized, str(other / "model.safetensors"))
    monkeypatch.chdir(ROOT)
    result = CliRunner().invoke(main, ["track", FILE, "--checkpoints", f"stdlib/zoo/induction_phase/step-01200,{other}",
                                       "--workers", "1", "--bootstrap", "0"], catch_exceptions=False)
    assert result.exit_code == 1
    assert "heads per layer 2 instead of 4" in result.stderr


def test_hugging_face_revisions_and_steps(tmp_path: Path, monkeypatch) -> None:
    """MODEL@REVISIONS reads the cache as huggingface_hub writes it: refs/REV holds the
    commit whose snapshot has the files; the step comes from the revision's name."""
    cache = tmp_path / "hub"
    folder = cache / "models--org--tiny"
    for revision, commit, source in (("step100", "aaa1", "step-00100"), ("step1200", "bbb2", "step-01200"),
                                     ("main", "bbb2", None)):
        (folder / "refs").mkdir(parents=True, exist_ok=True)
        (folder / "refs" / revision).write_text(commit)
        if source:
            snapshot = folder / "snapshots" / commit
            snapshot.mkdir(parents=True)
            for name in ("config.json", "model.safetensors"):
                shutil.copy(PHASE / source / name, snapshot / name)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    found = checkpoints("org/tiny@step*")
    assert [(cp.name, cp.step) for cp in found] == [("org/tiny@step100", 100), ("org/tiny@step1200", 1200)]
    with pytest.raises(TrackError, match="no cached revision"):
        checkpoints("org/tiny@step5*")
    with pytest.raises(TrackError, match="not in the Hugging Face cache"):
        checkpoints("org/absent@step1")
    out = track(str(ROOT / FILE), "org/tiny@step*", Options(str(ROOT / FILE), bootstrap=0), workers=1)
    assert [cp["step"] for cp in out["checkpoints"]] == [100, 1200]
    assert out["checkpoints"][1]["checks"][0]["faithfulness"] > 0.8


def test_step_from_metadata_or_name(tmp_path: Path) -> None:
    assert step_of(PHASE / "step-00150") == 150  # trainer_state.json
    for name, step in (("checkpoint-500", 500), ("step1000", 1000), ("final", None)):
        (tmp_path / name).mkdir()
        assert step_of(tmp_path / name) == step
    (tmp_path / "final" / "trainer_state.json").write_text('{"global_step": 7}')
    assert step_of(tmp_path / "final") == 7

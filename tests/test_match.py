"""`circ match`: the planted or recorded heads of the zoo models come first for the
motifs (and transferred circuits) they instantiate, and every reported number is the
evaluator's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

pytest.importorskip("transformer_lens")

import circuitlang as cl  # noqa: E402
from circuitlang.cli import cli  # noqa: E402
from circuitlang.core.graph import EMBED, LOGITS, Node  # noqa: E402
from circuitlang.core.shapes import ModelShape  # noqa: E402
from circuitlang.discovery.match import MatchError, instantiate, load_template, search  # noqa: E402
from circuitlang.eval.evaluator import Evaluator  # noqa: E402
from circuitlang.eval.loading import load_model  # noqa: E402
from circuitlang.eval.session import Session  # noqa: E402
from circuitlang.eval.tasks.registry import task_data  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
MOTIF = ROOT / "stdlib" / "motifs" / "induction.circ"


def _evaluator(model: str, task_file: str, task_name: str, draws: int = 200) -> Evaluator:
    backend = load_model(model)
    task = cl.load(ROOT / task_file).tasks[task_name]
    return Evaluator(Session(backend, task_data(task, backend, task.seed), task.ablation, task.metric), draws=draws)


def _heads(match, param: str) -> set[str]:
    return {str(n) for n in dict(match.binding)[param]}


def test_a_motif_becomes_a_template_over_its_parameters() -> None:
    template = load_template(MOTIF, "induction")
    assert template.params == ("prev", "ind") and template.kinds == {"prev": "head", "ind": "head"}
    assert set(template.edges) == {(EMBED, "prev", "q"), (EMBED, "prev", "k"), (EMBED, "prev", "v"),
                                   ("prev", "ind", "k"), (EMBED, "ind", "q"), (EMBED, "ind", "v"),
                                   ("ind", LOGITS, None)}
    with pytest.raises(MatchError):
        load_template(MOTIF, "no_such_motif")


def test_instantiate_refuses_backward_bindings_and_names_shared_key_inputs() -> None:
    template = load_template(MOTIF, "induction")
    gqa = ModelShape("gqa", n_layers=2, n_heads=4, d_model=32, attn_only=True, n_kv_heads=2)
    assert instantiate(template, {"prev": (Node.attn(1, 0),), "ind": (Node.attn(0, 1),)}, gqa) is None
    graph = instantiate(template, {"prev": (Node.attn(0, 0),), "ind": (Node.attn(1, 3),)}, gqa)
    assert {str(e) for e in graph.edges if e.channel == "k"} == {"L0.H0 -> L1.H2.k", "embed -> L0.H0.k"}


def test_the_planted_induction_heads_come_first() -> None:
    evaluator = _evaluator("zoo:induction-2l", "stdlib/zoo/induction.circ", "repeat_tokens")
    result = search(load_template(MOTIF, "induction"), evaluator, keep=5)
    best = result.matches[0]
    assert _heads(best, "prev") == {"L0.H2"} and _heads(best, "ind") == {"L1.H1"}
    assert best.faithfulness > 0.99 and best.faithfulness - result.matches[1].faithfulness > 0.3
    assert best.pattern["prev"] > 0.9 and best.pattern["ind"] > 0.9
    assert result.per_pass >= 2 and result.evaluated >= len(result.matches)


def test_reported_numbers_are_the_evaluators() -> None:
    """Each binding's faithfulness is what the evaluator gives its circuit alone, and the
    interval brackets it (a binding's number must not come from anything else)."""
    evaluator = _evaluator("zoo:induction-trained", "stdlib/zoo/induction_phase.circ", "repeat_tokens")
    result = search(load_template(MOTIF, "induction"), evaluator, keep=4, group_size=3)
    alone = evaluator.faithfulness([m.circuit for m in result.matches]).tolist()
    assert [m.faithfulness for m in result.matches] == pytest.approx(alone, abs=1e-6)
    assert all(m.interval[0] <= m.faithfulness <= m.interval[1] for m in result.matches)
    assert [m.faithfulness for m in result.matches] == sorted((m.faithfulness for m in result.matches), reverse=True)


def test_the_recorded_heads_of_the_trained_model_are_found_and_grown() -> None:
    """zoo:induction-trained under mean ablation: the single best binding is its main
    previous-token head and its main induction head; grown to groups of 3, the induction
    parameter holds all three recorded induction heads."""
    evaluator = _evaluator("zoo:induction-trained", "stdlib/zoo/induction_phase.circ", "repeat_tokens")
    template = load_template(MOTIF, "induction")
    single = search(template, evaluator, keep=3)
    assert _heads(single.matches[0], "prev") == {"L0.H1"} and _heads(single.matches[0], "ind") == {"L1.H2"}
    grown = search(template, evaluator, keep=3, group_size=3)
    best = grown.matches[0]
    assert _heads(best, "ind") == {"L1.H1", "L1.H2", "L1.H3"}
    assert "L0.H1" in _heads(best, "prev") and _heads(best, "prev") <= {"L0.H0", "L0.H1", "L0.H2"}
    assert best.faithfulness > single.matches[0].faithfulness + 0.1


def test_a_circuit_transfers_with_its_groups_as_parameters() -> None:
    """The planted MLP circuit's groups (mover, table) are re-found on its model; the
    zoo:induction-2l circuit's groups (prev, ind) land on the trained model's roles."""
    planted = load_template(ROOT / "stdlib/zoo/mlp_planted.circ", "planted")
    assert planted.params == ("mover", "table") and planted.kinds == {"mover": "head", "table": "mlp"}
    result = search(planted, _evaluator("zoo:mlp-planted", "stdlib/zoo/mlp_planted.circ", "mod_sum_zero"), keep=3)
    assert _heads(result.matches[0], "mover") == {"L0.H0"} and _heads(result.matches[0], "table") == {"L0.MLP"}
    assert result.matches[0].faithfulness > 0.95
    moved = search(load_template(ROOT / "stdlib/zoo/induction.circ", "induction"),
                   _evaluator("zoo:induction-trained", "stdlib/zoo/induction_phase.circ", "repeat_tokens"), keep=3)
    assert _heads(moved.matches[0], "prev") <= {"L0.H0", "L0.H1", "L0.H2"}
    assert _heads(moved.matches[0], "ind") <= {"L1.H1", "L1.H2", "L1.H3"}


def test_cli_writes_the_best_binding_and_json(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(ROOT)
    out, report = tmp_path / "bound.circ", tmp_path / "match.json"
    result = CliRunner().invoke(cli, ["match", "stdlib.motifs.induction:induction", "--model", "zoo:induction-2l",
                                      "--task", "stdlib/zoo/induction.circ:repeat_tokens", "--keep", "3",
                                      "-o", str(out), "--json", str(report)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "per forward pass" in result.stdout and "L0.H2" in result.stdout
    bound = cl.compile_file(out)
    assert bound.ok, bound.diagnostics
    circuit = bound.circuit()
    assert {str(e) for e in circuit.edges} >= {"L0.H2 -> L1.H1.k", "L1.H1 -> logits"}
    assert "found by `circ match`" in out.read_text() and "binding: prev = L0.H2, ind = L1.H1" in out.read_text()
    data = json.loads(report.read_text())
    assert data["matches"][0]["binding"] == {"prev": ["L0.H2"], "ind": ["L1.H1"]} and data["per_pass"] >= 2


def test_cli_refuses_what_it_cannot_match(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(ROOT)
    run = CliRunner().invoke
    missing = run(cli, ["match", "nowhere.circ:x", "--task", "stdlib/zoo/induction.circ:repeat_tokens"],
                  catch_exceptions=False)
    assert missing.exit_code == 2 and "no motif file" in missing.stderr
    unknown = run(cli, ["match", "stdlib/motifs/induction.circ:nope", "--task",
                        "stdlib/zoo/induction.circ:repeat_tokens"], catch_exceptions=False)
    assert unknown.exit_code == 1 and "nope" in unknown.stderr


def test_python_api() -> None:
    task = cl.load(ROOT / "stdlib/zoo/induction.circ").tasks["repeat_tokens"]
    result = cl.match(MOTIF, "zoo:induction-2l", task, "induction", keep=2, bootstrap=0)
    assert result.matches[0].text() == "prev = L0.H2, ind = L1.H1" and result.matches[0].interval is None


def _stdlib_motifs() -> list[tuple[Path, str]]:
    import re

    return [(path, m.group(1)) for path in sorted((ROOT / "stdlib" / "motifs").glob("*.circ"))
            for m in re.finditer(r"^circuit (\w+)\(", path.read_text(encoding="utf-8"), re.M)]


@pytest.mark.parametrize("path,name", _stdlib_motifs(), ids=lambda x: getattr(x, "stem", x))
def test_every_stdlib_motif_becomes_a_template(path: Path, name: str) -> None:
    """Each motif of the standard library is matchable: its template uses every parameter,
    and binding each parameter to a distinct head of GPT-2 small in layer order gives the
    motif's own instantiation."""
    from circuitlang.core.models import KNOWN_SHAPES

    template = load_template(path, name)
    used = {end for e in template.edges for end in e[:2] if isinstance(end, str)}
    assert template.params and used == set(template.params)
    heads = {p: (Node.attn(2 + 3 * i, i),) for i, p in enumerate(template.params)}
    mine = instantiate(template, heads, KNOWN_SHAPES["gpt2"])
    args = ", ".join(str(heads[p][0]) for p in template.params)
    text = f'model gpt2\nimport "{path.as_posix()}" as m\ncircuit c = m.{name}({args})\n'
    theirs = cl.compile_text(text).circuits["c"]
    assert mine is not None and mine.edges == theirs.edges

"""`circ serve`'s JSON API over real HTTP (the page's browser test is test_serve_browser.py).

The numbers the page shows must be the evaluator's: f of the shown circuit equals
`circuitlang.evaluate` on the same circuit and task, a switched-off edge's "gain" equals
f(C + e) - f(C), an edge's per-example effects average to its delta f, a ranked circuit's
curve equals its top-k circuits measured one by one, and the exported .circ compiles back
to the circuit shown. Paths outside the served folder, other hosts and bad views are
refused with a status and a one-line message.
"""

from __future__ import annotations

import json
import shutil
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlencode

import pytest
from click.testing import CliRunner

import circuitlang
from circuitlang.cli import cli
from circuitlang.core.graph import CircuitGraph
from circuitlang.present.diff import diff_graphs
from circuitlang.serve.http import make_server, start
from circuitlang.serve.workspace import Workspace

ROOT = Path(__file__).resolve().parent.parent
ZOO = ROOT / "stdlib" / "zoo"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A server over a copy of stdlib/zoo's induction file (plus a scored circuit file), on a free port."""
    folder = tmp_path_factory.mktemp("served")
    shutil.copy(ZOO / "induction.circ", folder / "induction.circ")
    (folder / "scored.circ").write_text(
        "model zoo:induction-2l\n"
        "circuit ranked {\n"
        "    L1.H1 -> logits [score = 3.0]\n"
        "    embed -> L1.H1.v [score = 2.0]\n"
        "    L0.H2 -> L1.H1.k [score = -1.5]\n"
        "    embed -> L1.H1.q [score = 0.5]\n"
        "}\n"
        "task t { data induction(seq_len = 16, n = 64, seed = 1)\n ablation zero\n metric logit_diff }\n",
        encoding="utf-8")
    (folder / "notes.txt").write_text("not a circuit", encoding="utf-8")
    workspace = Workspace(folder)
    server = make_server(workspace, "induction.circ", "127.0.0.1", 0)
    start(server)
    yield f"http://127.0.0.1:{server.server_address[1]}", workspace, folder
    server.shutdown()
    server.server_close()


def get(base: str, path: str, headers: dict | None = None, verb: str = "GET", **query):
    """(status, parsed JSON or text) of a request."""
    url = f"{base}{path}" + (f"?{urlencode(query)}" if query else "")
    request = urllib.request.Request(url, headers=headers or {}, method=verb)
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            status, kind, body = response.status, response.headers.get("Content-Type", ""), response.read()
    except urllib.error.HTTPError as err:
        status, kind, body = err.code, err.headers.get("Content-Type", ""), err.read()
    return status, (json.loads(body) if kind.startswith("application/json") else body.decode("utf-8"))


def evaluated(circuit: CircuitGraph, task: str = "repeat_tokens", file: Path = ZOO / "induction.circ") -> float:
    compiled = circuitlang.load(file)
    return circuitlang.evaluate(circuit, compiled.model, compiled.tasks[task], sensitivity="off").faithfulness


def test_the_page_and_its_files_are_served(served) -> None:
    base, _, _ = served
    status, page = get(base, "/")
    assert status == 200 and "/static/app.js" in page
    assert get(base, "/static/app.js")[0] == 200 and get(base, "/static/style.css")[0] == 200
    status, files = get(base, "/api/files")
    assert files["files"] == ["induction.circ", "scored.circ"] and files["default"] == "induction.circ"
    assert "eap" in files["methods"] and "acdc" not in files["methods"]  # acdc ranks no edges


def test_the_file_lists_circuits_tasks_and_which_are_ranked(served) -> None:
    base, _, _ = served
    info = get(base, "/api/file", file="induction.circ")[1]
    names = [c["name"] for c in info["circuits"]]
    assert names == ["induction", "from_motif", "induction_resample"]
    assert info["circuits"][0]["edges"][4] == "L0.H2 -> L1.H1.k" and not info["circuits"][0]["ranked"]
    assert [t["name"] for t in info["tasks"]] == ["repeat_tokens_zero", "repeat_tokens"]
    scored = get(base, "/api/file", file="scored.circ")[1]["circuits"][0]
    assert scored["ranked"] and scored["total"] == 4


def test_measure_is_the_evaluator_and_switching_an_edge_off_remeasures(served) -> None:
    base, _, _ = served
    circuit = circuitlang.load(ZOO / "induction.circ").circuit("induction")
    full = get(base, "/api/measure", file="induction.circ", circuit="induction", task="repeat_tokens")[1]
    assert full["faithfulness"] == pytest.approx(evaluated(circuit), abs=1e-6)
    assert full["interval"][0] <= full["faithfulness"] <= full["interval"][1]
    off = get(base, "/api/measure", file="induction.circ", circuit="induction", task="repeat_tokens", off="4")[1]
    edge = circuit.sorted_edges()[4]
    smaller = circuit - CircuitGraph.from_edges([edge])
    assert off["edges_on"] == 6 and off["faithfulness"] == pytest.approx(evaluated(smaller), abs=1e-6)
    assert off["faithfulness"] < 0.6 < full["faithfulness"]  # K-composition matters under resample ablation
    row = off["edges"][4]
    assert not row["on"] and row["edge"] == str(edge)
    assert row["delta"] == pytest.approx(full["faithfulness"] - off["faithfulness"], abs=1e-6)  # gain back
    # the full circuit's delta f for that edge is the same number seen from the other side
    assert full["edges"][4]["delta"] == pytest.approx(row["delta"], abs=1e-6)


def test_per_example_effects_average_to_delta_f(served) -> None:
    base, _, _ = served
    view = dict(file="induction.circ", circuit="induction", task="repeat_tokens")
    measured = get(base, "/api/measure", **view)[1]
    effects = get(base, "/api/effects", edge="4", **view)[1]
    assert effects["item"] == "L0.H2 -> L1.H1.k" and len(effects["per_example"]) == 256
    assert effects["mean"] == pytest.approx(measured["edges"][4]["delta"], abs=1e-5)
    node = get(base, "/api/effects", node="1", **view)[1]  # L0.H2
    assert node["item"] == "L0.H2" and node["mean"] == pytest.approx(measured["nodes"][1]["delta"], abs=1e-5)
    status, err = get(base, "/api/effects", node="0", **view)  # embed
    assert status == 400 and "always there" in err["error"]


def test_export_compiles_back_to_the_circuit_shown(served, tmp_path) -> None:
    base, _, _ = served
    status, text = get(base, "/api/export", file="induction.circ", circuit="induction", off="0,4")
    assert status == 200 and "switched off: embed -> L0.H2.q; L0.H2 -> L1.H1.k" in text
    (tmp_path / "out.circ").write_text(text, encoding="utf-8")
    compiled = circuitlang.compile_file(tmp_path / "out.circ")
    assert compiled.ok
    base_circuit = circuitlang.load(ZOO / "induction.circ").circuit("induction")
    edges = base_circuit.sorted_edges()
    assert compiled.circuit("induction_edited").edges == base_circuit.edges - {edges[0], edges[4]}
    assert circuitlang.compile_text(text).circuit().canonical_text() == compiled.circuit().canonical_text()


def test_a_ranked_circuit_has_a_slider_curve_equal_to_its_top_k_measured(served) -> None:
    base, workspace, _ = served
    curve = get(base, "/api/curve", file="scored.circ", circuit="ranked", task="t")[1]
    assert curve["total"] == 4 and [k for k, _ in curve["points"]] == [1, 2, 3, 4]
    graph = circuitlang.load(workspace.root / "scored.circ").circuit("ranked")
    order = sorted(graph.edges, key=lambda e: -abs(graph.annotations[e]["score"]))
    for k, f in curve["points"]:
        top = CircuitGraph.from_edges(order[:k], model=graph.model)
        assert f == pytest.approx(evaluated(top, "t", workspace.root / "scored.circ"), abs=1e-6)
    at2 = get(base, "/api/measure", file="scored.circ", circuit="ranked", task="t", k="2")[1]
    assert at2["edges_on"] == 2 and at2["faithfulness"] == pytest.approx(curve["points"][1][1], abs=1e-6)
    assert at2["edges"][0]["score"] in (3.0, 2.0)


def test_discovery_on_the_page_adds_a_ranked_circuit(served) -> None:
    base, _, _ = served
    status, found = get(base, "/api/discover", verb="POST", file="induction.circ", task="repeat_tokens_zero",
                        method="exact")
    assert status == 200 and found["circuit"] == "exact_repeat_tokens_zero"
    info = get(base, "/api/file", file="induction.circ")[1]
    ranked = next(c for c in info["circuits"] if c["name"] == found["circuit"])
    assert ranked["ranked"] and ranked["total"] > 7
    curve = get(base, "/api/curve", file="induction.circ", circuit=found["circuit"], task="repeat_tokens_zero")[1]
    # under zero ablation all 7 planted edges are needed: the top 7 exact scores are them
    seven = get(base, "/api/measure", file="induction.circ", circuit=found["circuit"], task="repeat_tokens_zero",
                k="7")[1]
    planted = circuitlang.load(ZOO / "induction.circ").circuit("induction")
    assert {r["edge"] for r in seven["edges"]} == {str(e) for e in planted.edges}
    assert dict(map(tuple, curve["points"]))[7] == pytest.approx(seven["faithfulness"], abs=1e-6)
    status, err = get(base, "/api/discover", verb="POST", file="induction.circ", method="acdc")
    assert status == 400 and "does not rank edges" in err["error"]


def test_diff_is_circ_diff(served) -> None:
    base, _, _ = served
    answer = get(base, "/api/diff", file="induction.circ", a="induction", b="induction_resample")[1]
    compiled = circuitlang.load(ZOO / "induction.circ")
    expected = diff_graphs(compiled.circuit("induction"), compiled.circuit("induction_resample"),
                           "induction", "induction_resample")
    assert answer["text"] == expected.to_text() and answer["svg"].lstrip().startswith("<?xml")
    assert answer["counts"] == expected.counts()


@pytest.mark.parametrize("query, status, words", [
    ({"file": "../induction.circ"}, 403, "outside the served folder"),
    ({"file": "/etc/passwd"}, 403, "outside the served folder"),
    ({"file": "notes.txt"}, 403, "not a .circ file"),
    ({"file": "missing.circ"}, 404, "no file missing.circ"),
])
def test_paths_outside_the_folder_are_refused(served, query, status, words) -> None:
    base, _, _ = served
    got, err = get(base, "/api/file", **query)
    assert got == status and words in err["error"]


def test_a_symlink_out_of_the_folder_is_refused(served, tmp_path) -> None:
    base, _, folder = served
    outside = tmp_path / "secret.circ"
    outside.write_text("model zoo:induction-2l\ncircuit c { L1.H1 -> logits }\n", encoding="utf-8")
    (folder / "link.circ").symlink_to(outside)
    try:
        got, err = get(base, "/api/file", file="link.circ")
        assert got == 403 and "outside the served folder" in err["error"]
    finally:
        (folder / "link.circ").unlink()


@pytest.mark.parametrize("query, status, words", [
    ({"circuit": "nope"}, 404, "no circuit `nope`"),
    ({"circuit": "induction", "off": "x"}, 400, "whole numbers"),
    ({"circuit": "induction", "off": "99"}, 400, "outside 0..6"),
    ({"circuit": "induction", "task": "nope"}, 404, "no task `nope`"),
    ({"circuit": "ranked", "file": "scored.circ", "k": "9"}, 400, "outside 1..4"),
])
def test_bad_views_get_a_status_and_one_line(served, query, status, words) -> None:
    base, _, _ = served
    got, err = get(base, "/api/measure", **{"file": "induction.circ", **query})
    assert got == status and words in err["error"]


def test_other_hosts_and_unknown_pages_are_refused(served) -> None:
    base, _, _ = served
    status, text = get(base, "/api/files", headers={"Host": "attacker.example:80"})
    assert status == 403 and "only to localhost" in text
    assert get(base, "/static/../workspace.py")[0] == 404
    assert get(base, "/static/app.py")[0] == 404
    assert get(base, "/api/measure", verb="POST", file="induction.circ", circuit="induction")[0] == 405


def test_a_file_with_errors_is_named_with_its_diagnostic(served) -> None:
    base, _, folder = served
    (folder / "broken.circ").write_text("model zoo:induction-2l\ncircuit c { L9.H1 -> logits }\n", encoding="utf-8")
    try:
        status, err = get(base, "/api/file", file="broken.circ")
        assert status == 422 and "does not compile" in err["error"] and "line 2" in err["error"]
    finally:
        (folder / "broken.circ").unlink()


def test_the_command_refuses_a_file_outside_its_root_and_explains_itself(tmp_path) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["serve", str(ZOO / "induction.circ"), "--root", str(tmp_path)])
    assert result.exit_code == 2 and "is not inside the served folder" in result.output
    help_text = " ".join(runner.invoke(cli, ["serve", "--help"]).output.split())
    assert "Only this machine can connect" in help_text and "canonical .circ" in help_text


def test_the_page_gets_circ_evals_ablation_warnings(served) -> None:
    """Under resample ablation the previous-token head's query and key edges cost nothing,
    under zero ablation 0.95 each: the page says so, as `circ eval` does."""
    base, _, _ = served
    measured = get(base, "/api/measure", file="induction.circ", circuit="induction", task="repeat_tokens")[1]
    hidden = [w for w in measured["warnings"] if "under zero ablation but" in w]
    assert len(hidden) == 2 and "embed -> L0.H2.q" in hidden[0] and "embed -> L0.H2.k" in hidden[1]
    planted = get(base, "/api/measure", file="induction.circ", circuit="induction", task="repeat_tokens_zero")[1]
    assert planted["faithfulness"] > 0.95 and planted["edges"][0]["delta"] > 0.9


def test_a_circuit_too_large_to_draw_is_refused_with_what_to_do_instead(tmp_path) -> None:
    """Graphviz takes minutes beyond MAX_DRAW_EDGES edges: the page says so at once."""
    from circuitlang.serve.http import Api
    from circuitlang.serve.workspace import ServeError

    (tmp_path / "big.circ").write_text("model gpt2\ncircuit all { L0..5.H* -> L6..11.H* }\n", encoding="utf-8")
    big = Api(Workspace(tmp_path), "big.circ")
    with pytest.raises(ServeError) as err:
        big.graph({"file": "big.circ", "circuit": "all"})
    assert err.value.status == 413 and "--collapse" in err.value.help


def test_an_edited_file_is_measured_again(tmp_path) -> None:
    """The page picks up a file changed on disk: its circuits and its task's data are rebuilt."""
    import os

    text = (ZOO / "induction.circ").read_text(encoding="utf-8")
    file = tmp_path / "induction.circ"
    file.write_text(text, encoding="utf-8")
    workspace = Workspace(tmp_path)
    from circuitlang.serve.workspace import View

    before = workspace.measure(View("induction.circ", "induction", "repeat_tokens_zero"))
    file.write_text(text.replace("data induction(seq_len = 16, n = 256, seed = 0)\n    ablation zero",
                                 "data induction(seq_len = 16, n = 64, seed = 3)\n    ablation zero"), encoding="utf-8")
    stamp = file.stat().st_mtime
    os.utime(file, (stamp + 5, stamp + 5))  # a later modification time, even on coarse clocks
    after = workspace.measure(View("induction.circ", "induction", "repeat_tokens_zero"))
    assert before["n_examples"] == 256 and after["n_examples"] == 64


def test_the_drawing_refuses_an_edge_index_out_of_range_as_measuring_does(served) -> None:
    base, _, _ = served
    status, err = get(base, "/api/graph", file="induction.circ", circuit="induction", off="7")
    assert status == 400 and "outside 0..6" in err["error"]
    status, svg = get(base, "/api/graph", file="induction.circ", circuit="induction", off="4")
    assert status == 200 and 'id="e4"' in svg and "stroke-dasharray" in svg.split('id="e4"')[1].split("</g>")[0]

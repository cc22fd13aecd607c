"""EAP-IG / MIB graph JSON: export then import is the identity, hand-written files import
to exactly their edges, and bad files get diagnostics with positions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import circuitlang as cl
from circuitlang.core.diagnostics import CircuitError
from circuitlang.core.graph import EMBED, LOGITS, CircuitGraph, Edge, Node
from circuitlang.core.models import KNOWN_SHAPES
from circuitlang.core.positions import Position
from circuitlang.core.shapes import all_edges
from circuitlang.core.spans import Span
from circuitlang.lang.write import graph_to_circ
from circuitlang.present.interop.names import edge_name, parse_edge_name
from circuitlang.present.interop.read import MAX_PER_CODE, graph_from_mib, load_mib, read_mib
from circuitlang.present.interop.write import check_exportable, graph_json_text, graph_to_mib
from tests.conftest import FIXTURES, ROOT, examples

INTEROP = FIXTURES / "interop"
PLANTED = KNOWN_SHAPES["zoo:mlp-planted"]  # 2 layers x 2 heads, with MLPs
GPT2 = KNOWN_SHAPES["gpt2"]


def _codes(diagnostics) -> list[str]:
    return [d.code for d in diagnostics]


def _where(diagnostics, code: str) -> list[tuple[int, int]]:
    return [(d.span.line, d.span.column) for d in diagnostics if d.code == code]


def _roundtrip(graph: CircuitGraph, shape=PLANTED) -> CircuitGraph:
    data = json.loads(graph_json_text(graph_to_mib(graph, shape)))
    back, diagnostics = graph_from_mib(data, source="g.json", model=shape.name, name=graph.name or "c")
    assert diagnostics == [] and back is not None
    return back


# -- the model's edge list ------------------------------------------------------------


def test_model_edges_match_eap_ig_counts() -> None:
    # EAP-IG builds n_layers * (3 * n_heads + 1) + 1 receivers; GPT-2 small has 32,491 edges.
    assert len(all_edges(GPT2)) == 32491
    names = {edge_name(e) for e in all_edges(PLANTED)}
    assert "a0.h1->m0" in names and "a0.h1->a1.h0<q>" in names and "input->logits" in names
    assert "a1.h0->m0" not in names
    parallel = {edge_name(e) for e in all_edges(KNOWN_SHAPES["pythia-70m"])}
    assert "a0.h0->m0" not in parallel and "a0.h0->m1" in parallel


def test_parse_edge_name() -> None:
    assert parse_edge_name("a9.h6->a10.h0<q>") == ("a9.h6", "a10.h0", "q")
    assert parse_edge_name("m3->logits") == ("m3", "logits", None)
    assert isinstance(parse_edge_name("m3->logits->x"), str)
    assert isinstance(parse_edge_name("a0.h0->a1.h0<z>"), str)


# -- export then import ------------------------------------------------------------------


def test_export_then_import_gives_the_same_graph_and_scores() -> None:
    result = cl.compile_text("model zoo:mlp-planted\n"
                             "circuit c {\n"
                             "    embed -> L0.H1.q [score = 0.5], L0.H1.k, L0.MLP [score = -2.25]\n"
                             "    L0.H1 -> L0.MLP [score = 1e-05], L1.H0.v\n"
                             "    L1.H0 -> logits [score = 3]\n"
                             "}\n")
    assert result.ok, result.diagnostics
    graph = result.circuits["c"]
    data = graph_to_mib(graph, PLANTED)
    assert data["cfg"] == {"n_layers": 2, "n_heads": 2, "parallel_attn_mlp": False, "d_model": 32,
                           "model_name": "zoo:mlp-planted"}
    assert len(data["edges"]) == len(all_edges(PLANTED))
    assert sum(e["in_graph"] for e in data["edges"].values()) == len(graph.edges)
    assert data["edges"]["input->a0.h1<k>"] == {"score": None, "in_graph": True}
    assert data["edges"]["a0.h0->logits"] == {"score": None, "in_graph": False}
    assert data["nodes"]["a0.h1"] == {"in_graph": True} and data["nodes"]["a0.h0"] == {"in_graph": False}
    back = _roundtrip(graph)
    assert back == graph and back.model == "zoo:mlp-planted"
    assert {e: dict(a) for e, a in back.annotations.items()} == {e: dict(a) for e, a in graph.annotations.items()}
    assert back.annotations[Edge(Node.attn(1, 0), LOGITS)] == {"score": 3.0}


def test_model_name_in_cfg_tells_shapes_apart() -> None:
    graph = CircuitGraph.from_edges([Edge(Node.attn(9, 6), LOGITS)], model="zoo:gpt2-random")
    data = graph_to_mib(graph, KNOWN_SHAPES["zoo:gpt2-random"])
    back, diagnostics = graph_from_mib(data, source="g.json")
    assert back == graph and not diagnostics
    del data["cfg"]["model_name"]
    back, _ = graph_from_mib(data, source="g.json")
    assert back is not None and back.model == "gpt2"  # EAP-IG's own cfg: the pretrained model wins


def test_unscored_fill_value() -> None:
    graph = CircuitGraph.from_edges([Edge(Node.attn(1, 0), LOGITS)], model="zoo:mlp-planted")
    data = graph_to_mib(graph, PLANTED, unscored=0.0)
    assert data["edges"]["a1.h0->logits"] == {"score": 0.0, "in_graph": True}


def test_positions_are_an_error_unless_dropped() -> None:
    a = Edge(Node.attn(0, 1), LOGITS, None, Position("END"))
    b = Edge(Node.attn(0, 1), LOGITS, None, Position(-2))
    graph = CircuitGraph.from_edges([a, b, Edge(EMBED, LOGITS)], model="zoo:mlp-planted", name="c",
                                    annotations={a: {"score": 1.0}, b: {"score": 0.5}})
    span = Span("c.circ", 2, 9, 2, 10)
    assert _codes(check_exportable(graph, PLANTED, span)) == ["E608"]
    with pytest.raises(CircuitError):
        graph_to_mib(graph, PLANTED)
    assert _codes(check_exportable(graph, PLANTED, span, drop_positions=True)) == ["W609"]
    data = graph_to_mib(graph, PLANTED, drop_positions=True)
    assert data["edges"]["a0.h1->logits"] == {"score": 1.5, "in_graph": True}
    assert sum(e["in_graph"] for e in data["edges"].values()) == 2
    assert _codes(check_exportable(graph, None, span)) == ["E607"]


# -- hand-written files -----------------------------------------------------------------


def test_hand_written_file_imports_to_exactly_its_edges() -> None:
    graph, diagnostics = load_mib(INTEROP / "hand_written.json")
    assert diagnostics == [] and graph is not None
    assert graph.model == "zoo:mlp-planted"  # inferred from cfg: 2 layers, 2 heads, d_model 32
    expected = {
        "embed -> L0.H0.q": 0.5,
        "embed -> L0.H0.k": -0.125,
        "embed -> L0.H0.v": 2.0,
        "L0.H0 -> L0.MLP": 1.5,
        "L0.MLP -> L1.H0.k": None,  # score null
        "L0.H0 -> L1.H0.v": None,  # no score key
        "L1.H0 -> L1.MLP": -3.0,  # no in_graph key: listed means in the graph
        "L1.MLP -> logits": 4.0,  # an int score
    }
    assert {str(e): graph.annotations.get(e, {}).get("score") for e in graph.edges} == expected


def test_include_all_and_top_k() -> None:
    text = (INTEROP / "hand_written.json").read_text(encoding="utf-8")
    every, _ = read_mib(text, source="h.json", include="all")
    assert every is not None and len(every.edges) == 11
    top, _ = read_mib(text, source="h.json", include=3)
    assert top is not None
    assert sorted(str(e) for e in top.edges) == ["L1.H0 -> L1.MLP", "L1.MLP -> logits", "embed -> L0.H0.v"]
    none, _ = read_mib(text, source="h.json", include=0)
    assert none is not None and len(none.edges) == 0


def test_old_eap_ig_layout_with_bool_nodes_and_minified_text() -> None:
    data = {"cfg": {"n_layers": 2, "n_heads": 2, "parallel_attn_mlp": False, "d_model": 32},
            "nodes": {"input": True, "a0.h0": True, "logits": True},
            "edges": {"input->a0.h0<v>": {"score": None, "in_graph": True},
                      "a0.h0->logits": {"score": 0.25, "in_graph": True}}}
    graph, diagnostics = read_mib(json.dumps(data), source="old.json")
    assert diagnostics == [] and graph is not None
    assert sorted(map(str, graph.edges)) == ["L0.H0 -> logits", "embed -> L0.H0.v"]


def test_attention_only_model_accepts_unused_mlp_names() -> None:
    # EAP-IG gives every model MLP nodes; they are fine as long as no chosen edge uses them.
    shape = KNOWN_SHAPES["attn-only-2l"]
    data = {"cfg": {"n_layers": 2, "n_heads": 8, "parallel_attn_mlp": False, "d_model": 512},
            "nodes": {"m0": {"in_graph": False}},
            "edges": {"a0.h1->m0": {"score": 0.1, "in_graph": False}, "a0.h1->logits": {"score": 1.0, "in_graph": True}}}
    graph, diagnostics = graph_from_mib(data, source="a.json")
    assert diagnostics == [] and graph is not None and graph.model == shape.name
    data["edges"]["a0.h1->m0"]["in_graph"] = True
    graph, diagnostics = graph_from_mib(data, source="a.json")
    assert graph is None and _codes(diagnostics) == ["E603"]


def test_neuron_masks_are_ignored_with_a_warning() -> None:
    data = {"cfg": {"n_layers": 2, "n_heads": 2, "d_model": 32},
            "nodes": {"m0": {"in_graph": True, "neurons": [True] * 32}},
            "edges": {"m0->logits": {"score": 1.0, "in_graph": True}}}
    graph, diagnostics = graph_from_mib(data, source="n.json")
    assert graph is not None and _codes(diagnostics) == ["W610"]


# -- bad files ---------------------------------------------------------------------------


def test_invalid_json_has_line_and_column() -> None:
    graph, diagnostics = load_mib(INTEROP / "truncated.json")
    assert graph is None
    assert _codes(diagnostics) == ["E601"] and _where(diagnostics, "E601") == [(6, 36)]
    assert diagnostics[0].span.path.endswith("truncated.json")


def test_bad_names_get_their_codes_at_their_keys() -> None:
    graph, diagnostics = load_mib(INTEROP / "bad_names.json")
    assert graph is None
    assert _where(diagnostics, "E603") == [(5, 5), (13, 5)]  # a0.h7 node, a0.h9 in an edge
    assert _where(diagnostics, "E604") == [(10, 5), (11, 5), (12, 5)]  # =>, no <q/k/v>, <q> on an MLP
    assert _where(diagnostics, "E605") == [(14, 5), (15, 5)]  # backwards, out of logits


def test_cfg_that_disagrees_with_the_named_model() -> None:
    text = (INTEROP / "hand_written.json").read_text(encoding="utf-8")
    graph, diagnostics = read_mib(text, source="h.json", model="gpt2")
    assert graph is None and set(_codes(diagnostics)) == {"E606"}
    assert _where(diagnostics, "E606")[0] == (2, 11)  # "n_layers" in cfg
    assert "zoo:mlp-planted" in (diagnostics[0].help or "")


def test_unknown_shape_and_unknown_model() -> None:
    data = {"cfg": {"n_layers": 7, "n_heads": 3}, "edges": {}}
    assert _codes(graph_from_mib(data, source="x.json")[1]) == ["E607"]
    assert _codes(graph_from_mib({"edges": {}}, source="x.json")[1]) == ["E607"]
    assert _codes(graph_from_mib({"edges": {}}, source="x.json", model="gpt3")[1]) == ["E203"]


@pytest.mark.parametrize("data", [[], {"nodes": {}}, {"edges": []}, {"cfg": 3, "edges": {}},
                                  {"cfg": {"n_layers": "2"}, "edges": {}},
                                  {"cfg": {"n_layers": 2, "n_heads": 2}, "edges": {"a0.h0->logits": 1}},
                                  {"cfg": {"n_layers": 2, "n_heads": 2}, "edges": {"a0.h0->logits": {"score": "x"}}},
                                  {"cfg": {"n_layers": 2, "n_heads": 2}, "edges": {"a0.h0->logits": {"in_graph": "y"}}}],
                         ids=repr)
def test_wrong_structure_is_e602(data: object) -> None:
    graph, diagnostics = graph_from_mib(data, source="x.json", model="zoo:mlp-planted")
    assert graph is None and _codes(diagnostics) == ["E602"]


def test_many_errors_are_capped() -> None:
    edges = {f"a0.h{h}->logits": {"score": 1.0, "in_graph": True} for h in range(2, 40)}
    graph, diagnostics = graph_from_mib({"edges": edges}, source="x.json", model="zoo:mlp-planted")
    assert graph is None and len(diagnostics) == MAX_PER_CODE
    assert diagnostics[-1].message.endswith(f"(and {38 - MAX_PER_CODE} more like it)")


# -- property: random circuits round-trip ---------------------------------------------------


@st.composite
def circuits(draw: st.DrawFn) -> CircuitGraph:
    edges = draw(st.lists(st.sampled_from(all_edges(PLANTED)), unique=True, max_size=20))
    scores = draw(st.lists(st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False)),
                           min_size=len(edges), max_size=len(edges)))
    notes = {e: {"score": s} for e, s in zip(edges, scores) if s is not None}
    return CircuitGraph.from_edges(edges, model=PLANTED.name, name="c", annotations=notes)


@examples(60, deadline_ms=None)
@given(circuits())
def test_random_circuits_round_trip(graph: CircuitGraph) -> None:
    back = _roundtrip(graph)
    assert back == graph
    assert dict(back.annotations) == dict(graph.annotations)
    # ... and through .circ text too, as `circ import` writes it.
    text = graph_to_circ(back, PLANTED.name)
    again = cl.compile_text(text).circuits["c"]
    assert again == graph
    assert {e: dict(a) for e, a in again.annotations.items()} == {e: dict(a) for e, a in graph.annotations.items()}


# -- the command line ---------------------------------------------------------------------


def circ(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_COLOR": "1", "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "circuitlang", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=120)


def test_cli_round_trip(tmp_path: Path) -> None:
    first = tmp_path / "hand.circ"
    result = circ("import", str(INTEROP / "hand_written.json"), "-o", str(first), "--name", "hand")
    assert result.returncode == 0, result.stderr
    text = first.read_text(encoding="utf-8")
    assert "// imported by `circ import` from" in text and "hand_written.json" in text
    assert "[score = 0.5]" in text and "model zoo:mlp-planted" in text
    result = circ("check", "--static", str(first))
    assert result.returncode == 0, result.stdout + result.stderr
    exported = tmp_path / "hand.json"
    result = circ("export", str(first), "--to", "mib", "-o", str(exported))
    assert result.returncode == 0, result.stderr
    second = tmp_path / "again.circ"
    result = circ("import", str(exported), "-o", str(second), "--name", "hand")
    assert result.returncode == 0, result.stderr
    a, b = cl.compile_file(first).circuits["hand"], cl.compile_file(second).circuits["hand"]
    assert a == b and dict(a.annotations) == dict(b.annotations)
    assert len(a.edges) == 8


def test_cli_import_errors_exit_1_with_positions(tmp_path: Path) -> None:
    out = tmp_path / "x.circ"
    result = circ("import", str(INTEROP / "bad_names.json"), "-o", str(out))
    assert result.returncode == 1 and not out.exists()
    assert "error[E604]" in result.stderr and "bad_names.json:10:5" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_usage_errors_exit_2(tmp_path: Path) -> None:
    assert circ("import", str(tmp_path / "missing.json")).returncode == 2
    assert circ("import", str(INTEROP / "hand_written.json"), "--all", "--top", "3").returncode == 2
    assert circ("import", str(INTEROP / "hand_written.json"), "--name", "circuit").returncode == 2


def test_cli_export_refuses_positions(tmp_path: Path) -> None:
    src = tmp_path / "pos.circ"
    src.write_text("model gpt2\ncircuit c { L9.H6 -> logits @END }\n", encoding="utf-8")
    result = circ("export", str(src), "--to", "mib")
    assert result.returncode == 1 and "error[E608]" in result.stderr and "pos.circ:2:9" in result.stderr
    result = circ("export", str(src), "--to", "mib", "--drop-positions")
    assert result.returncode == 0 and "warning[W609]" in result.stderr
    assert json.loads(result.stdout)["edges"]["a9.h6->logits"]["in_graph"] is True


def test_cli_stdout_and_help() -> None:
    result = circ("import", str(INTEROP / "hand_written.json"), "--top", "2")
    body = [line for line in result.stdout.splitlines() if not line.startswith("//")]
    assert result.returncode == 0 and sum("[score =" in line for line in body) == 2
    for command in ("import", "export"):
        help_text = circ(command, "--help").stdout
        assert "Examples:" in help_text

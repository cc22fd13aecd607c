"""Lowering: golden edge lists per fixture, and the semantics of sets, channels and direction."""

from __future__ import annotations

from pathlib import Path

import pytest

import circuitlang as cl
from circuitlang.core.graph import EMBED, LOGITS, Node
from tests.conftest import FIXTURES, assert_golden

LOWER = FIXTURES / "lower"


def dump(result: cl.Compiled) -> str:
    """Every circuit's sorted edges and nodes, then the diagnostics: the golden format."""
    lines = []
    for name, graph in result.circuits.items():
        lines.append(f"circuit {name} ({graph.level}-level): {len(graph.nodes)} nodes, {len(graph.edges)} edges")
        for edge in graph.sorted_edges():
            notes = graph.annotations.get(edge)
            lines.append(f"  {edge}" + (f"  {dict(notes)}" if notes else ""))
        listed = [str(n) for n in graph.sorted_nodes()]
        lines.append(f"  nodes: {' '.join(listed)}")
    for d in result.diagnostics:
        lines.append(f"{d.code} {d.span.line}:{d.span.column} {d.message}")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("fixture", sorted(LOWER.glob("*.circ")), ids=lambda p: p.stem)
def test_lowering_matches_golden(fixture: Path) -> None:
    result = cl.compile_file(fixture)
    assert_golden(fixture.with_suffix(".lowered"), dump(result))


def compile_ok(text: str) -> cl.Compiled:
    result = cl.compile_text(text, check_files=False)
    assert result.ok, [str(d.message) for d in result.diagnostics]
    return result


def test_head_target_without_channel_means_q_k_and_v() -> None:
    graph = compile_ok("model gpt2\ncircuit c { L0.H0 -> L1.H1 }").circuits["c"]
    assert sorted(e.channel for e in graph.edges) == ["k", "q", "v"]


def test_mlp_and_logits_targets_have_no_channel() -> None:
    graph = compile_ok("model gpt2\ncircuit c { L0.H0 -> L0.MLP, logits }").circuits["c"]
    assert {e.channel for e in graph.edges} == {None}
    assert len(graph.edges) == 2


def test_full_gpt2_node_level_circuit_has_every_edge() -> None:
    # 144 heads x 3 channels, 12 MLPs and logits, each fed by every earlier sender.
    graph = compile_ok("model gpt2\ncircuit full { L*.H*, L*.MLP }").circuits["full"]
    heads = sum(3 * 12 * (1 + 13 * layer) for layer in range(12))
    mlps = sum(1 + 12 * (layer + 1) + layer for layer in range(12))
    assert len(graph.edges) == heads + mlps + 157 == 32491
    assert graph.level == "node"


def test_parallel_attention_models_have_no_head_to_own_mlp_edge() -> None:
    pythia = compile_ok("model pythia-70m\ncircuit c { L0.H0, L0.MLP }").circuits["c"]
    gpt2 = compile_ok("model gpt2\ncircuit c { L0.H0, L0.MLP }").circuits["c"]
    edge_in_gpt2 = {(str(e.sender), str(e.receiver)) for e in gpt2.edges}
    edge_in_pythia = {(str(e.sender), str(e.receiver)) for e in pythia.edges}
    assert ("L0.H0", "L0.MLP") in edge_in_gpt2
    assert ("L0.H0", "L0.MLP") not in edge_in_pythia


def test_motif_instance_equals_hand_written_circuit() -> None:
    result = compile_ok("""model gpt2
circuit m(p, i) { embed -> p.q, p.k, p.v
  p -> i.k
  embed -> i.q, i.v
  i -> logits }
circuit a = m(L4.H11, L5.H5)
circuit b { embed -> L4.H11.q, L4.H11.k, L4.H11.v
  L4.H11 -> L5.H5.k
  embed -> L5.H5.q, L5.H5.v
  L5.H5 -> logits }""")
    assert result.circuits["a"] == result.circuits["b"]
    assert result.circuits["a"].content_hash == result.circuits["b"].content_hash
    assert "m" not in result.circuits  # motifs are not circuits until called


def test_motif_from_model_less_file_expands_in_the_importers_model(tmp_path: Path) -> None:
    (tmp_path / "lib.circ").write_text("circuit m(x) { embed -> x\n x -> logits }\n")
    main = tmp_path / "main.circ"
    main.write_text('model gpt2\nimport "lib.circ" as lib\ncircuit c = lib.m(L1.H*)\n')
    result = cl.compile_file(main)
    assert result.ok, result.diagnostics
    assert len(result.circuits["c"].edges) == 12 * 3 + 12


def test_circuit_from_another_model_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "other.circ").write_text("model attn-only-2l\ncircuit c { L0.H0 -> logits }\n")
    main = tmp_path / "main.circ"
    main.write_text('model gpt2\nimport "other.circ" as o\ncircuit mine = o.c\n')
    codes = [d.code for d in cl.compile_file(main).diagnostics]
    assert "E208" in codes


def test_node_level_circuit_equals_listing_all_edges_among_its_nodes() -> None:
    result = compile_ok("""model attn-only-2l
circuit n { L0.H1, L1.H0 }
circuit e {
    embed -> L0.H1, L1.H0, logits
    L0.H1 -> L1.H0, logits
    L1.H0 -> logits
}""")
    assert result.circuits["n"] == result.circuits["e"]


def test_difference_with_nodes_removes_their_edges() -> None:
    result = compile_ok("model gpt2\ncircuit a { embed -> L0.H0\n L0.H0 -> L1.H0\n L1.H0 -> logits }\n"
                        "circuit b = a - L0.H0")
    b = result.circuits["b"]
    assert Node.attn(0, 0) not in b.nodes
    assert {(e.sender, e.receiver) for e in b.edges} == {(Node.attn(1, 0), LOGITS)}
    assert EMBED not in b.nodes  # embed kept no edge


def test_precedence_difference_binds_tighter_than_union() -> None:
    # `a - b | b` is `(a - b) | b`; were `|` tighter it would be `a - (b | b)`, empty.
    result = compile_ok("model gpt2\ngroup g = L0.H1 - L0.H1 | L0.H1\ngroup h = L0.H1 - (L0.H1 | L0.H1)\n"
                        "circuit cg { L0.H0, g }\ncircuit ch { L0.H0, h }")
    assert Node.attn(0, 1) in result.circuits["cg"].nodes
    assert Node.attn(0, 1) not in result.circuits["ch"].nodes


def test_annotations_attach_to_the_target_they_follow() -> None:
    graph = compile_ok("model gpt2\ncircuit c { L0.H0 -> L1.H0.q [score = 2], L1.H1.q }").circuits["c"]
    scored = {str(e): dict(n) for e, n in graph.annotations.items()}
    assert scored == {"L0.H0 -> L1.H0.q": {"score": 2}}


def test_positions_make_distinct_edges() -> None:
    graph = compile_ok("model gpt2\ncircuit c { L0.H0 -> logits @END, logits @S1+1, logits }").circuits["c"]
    assert sorted(str(e.position) for e in graph.edges) == ["END", "None", "S1+1"]


@pytest.mark.parametrize("source, code", [
    ("model gpt2\ncircuit c { L12.H0 -> logits }", "E201"),
    ("model gpt2\ncircuit c { L1.H12 -> logits }", "E202"),
    ("model gpt2\ncircuit c { L2.H0 -> L1.H0.q }", "E205"),
    ("model gpt2\ncircuit c { L2.MLP -> L2.H0 }", "E205"),
    ("model gpt2\ncircuit c { L2.MLP.q -> logits }", "E204"),
    ("model gpt2\ncircuit c { L2.H0.q -> logits }", "E211"),
    ("model gpt2\ncircuit c { logits -> L2.H0 }", "E206"),
    ("model gpt2\ncircuit c { L2.H0 -> embed }", "E206"),
    ("model gpt2\ncircuit c { L3.H* -> L1.H* }", "E207"),
    ("model attn-only-2l\ncircuit c { L0.MLP -> logits }", "E209"),
    ("circuit c { L*.H0 -> logits }", "E212"),
    ("model gpt2\ncircuit c = c", "E307"),
    ("model gpt2\ncircuit m(a) { a -> logits }\ncircuit c = m", "E306"),
    ("model gpt2\ncircuit m(a) { a -> logits }\ncircuit c = m(L0.H0, L0.H1)", "E306"),
    ("model gpt2\ntask t { data \"x\" }\ncircuit c = t", "E305"),
    ("model gpt2\ncircuit c { }", "W501"),
    ("model gpt2\ncircuit c { L0.H0 -> logits\n L0.H0 -> logits }", "W502"),
    ("model gpt2\ncircuit c { L0.H0 -> logits\n L5.H5 }", "W503"),
])
def test_lowering_diagnostics(source: str, code: str) -> None:
    result = cl.compile_text(source, "t.circ", check_files=False)
    codes = [d.code for d in result.diagnostics]
    assert code in codes, codes
    for d in result.diagnostics:
        assert d.span.line >= 1, d

"""Tests for circuitlang.present.render: DOT text (deterministic, complete, styled) and real `dot` output."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path
from types import MappingProxyType

import pytest

import circuitlang
from circuitlang.core.graph import EMBED, LOGITS, CircuitGraph, Edge, Node
from circuitlang.core.positions import Position
from circuitlang.present.render import INSTALL_HINT, RenderError, dot_available, render_dot, to_diff_dot, to_dot

H01, H12, H13, M1 = Node.attn(0, 1), Node.attn(1, 2), Node.attn(1, 3), Node.mlp(1)
EDGES = [
    Edge(EMBED, H01, "q"), Edge(EMBED, H01, "k"), Edge(EMBED, H01, "v"),
    Edge(H01, H12, "k", Position("END")), Edge(EMBED, H12, "q"),
    Edge(H01, H13, "v"), Edge(H12, M1), Edge(H13, M1), Edge(M1, LOGITS), Edge(H12, LOGITS),
]
needs_dot = pytest.mark.skipif(not dot_available(),
                               reason="Graphviz `dot` is not installed (apt-get install -y graphviz)")


def scored(scores: dict[Edge, float]) -> CircuitGraph:
    notes = {e: {"score": s} for e, s in scores.items()}
    return CircuitGraph.from_edges(EDGES, model="gpt2", name="c", annotations=MappingProxyType(notes))


def edge_lines(text: str, sender: str, receiver: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln.strip().startswith(f'"{sender}" -> "{receiver}" [')]


def penwidth(line: str) -> float:
    found = re.search(r'penwidth="([0-9.]+)"', line)
    assert found, line
    return float(found.group(1))


def test_dot_is_deterministic_whatever_the_construction_order():
    first = to_dot(CircuitGraph.from_edges(EDGES, name="c"))
    assert first == to_dot(CircuitGraph.from_edges(EDGES, name="c"))
    assert first == to_dot(CircuitGraph.from_edges(list(reversed(EDGES)), name="c"))
    assert first == to_dot(CircuitGraph.from_edges(EDGES[3:] + EDGES[:3], nodes=[LOGITS], name="c"))


def test_every_node_is_declared_once_and_every_pair_has_an_edge():
    text = to_dot(CircuitGraph.from_edges(EDGES))
    for node in (EMBED, H01, H12, H13, M1, LOGITS):
        declarations = [ln for ln in text.splitlines() if ln.strip().startswith(f'"{node}" [')]
        assert len(declarations) == 1, node
    for e in EDGES:
        assert edge_lines(text, str(e.sender), str(e.receiver)), e


def test_edge_labels_carry_channels_and_positions():
    text = to_dot(CircuitGraph.from_edges(EDGES))
    (qkv,) = edge_lines(text, "embed", "L0.H1")  # three channels merged into one edge
    assert 'label="q,k,v"' in qkv
    (k_end,) = edge_lines(text, "L0.H1", "L1.H2")
    assert 'label="k@END"' in k_end
    (v,) = edge_lines(text, "L0.H1", "L1.H3")
    assert 'label="v"' in v
    (residual,) = edge_lines(text, "L1.MLP", "logits")
    assert "label=" not in residual


def test_channels_merge_only_when_positions_and_annotations_agree():
    edges = [Edge(EMBED, H01, "q", Position("END")), Edge(EMBED, H01, "k", Position("S1")),
             Edge(EMBED, H01, "v", Position("END"))]
    text = to_dot(CircuitGraph.from_edges(edges))
    labels = sorted(re.search(r'label="([^"]*)"', ln).group(1) for ln in edge_lines(text, "embed", "L0.H1"))
    assert labels == ["k@S1", "q,v@END"]
    notes = {edges[0]: {"score": 1.0}, edges[2]: {"score": 2.0}}
    text = to_dot(CircuitGraph.from_edges(edges, annotations=notes))
    assert len(edge_lines(text, "embed", "L0.H1")) == 3


def test_heads_mlps_and_io_look_different():
    text = to_dot(CircuitGraph.from_edges(EDGES))
    decl = {n: next(ln for ln in text.splitlines() if ln.strip().startswith(f'"{n}" [')) for n in (H01, M1, EMBED)}
    shape = {n: re.search(r'shape="(\w+)"', ln).group(1) for n, ln in decl.items()}
    fill = {n: re.search(r'fillcolor="([^"]+)"', ln).group(1) for n, ln in decl.items()}
    assert shape[H01] != shape[M1]
    assert len(set(fill.values())) == 3


def test_layers_are_ranks_ordered_bottom_to_top():
    text = to_dot(CircuitGraph.from_edges(EDGES))
    assert 'rankdir="BT"' in text
    rows = re.findall(r'\{rank="same"; (.*)\}', text)
    assert [set(re.findall(r'"([^"]+)"', row)[1:]) for row in rows] == [
        {"embed"}, {"L0.H1"}, {"L1.H2", "L1.H3"}, {"L1.MLP"}, {"logits"}]


def test_penwidth_grows_with_score_and_score_is_in_tooltip():
    text = to_dot(scored({EDGES[4]: 0.1, EDGES[8]: -2.0, EDGES[9]: 1.0}))
    low, = edge_lines(text, "embed", "L1.H2")
    high, = edge_lines(text, "L1.MLP", "logits")
    mid, = edge_lines(text, "L1.H2", "logits")
    assert penwidth(low) < penwidth(mid) < penwidth(high)
    assert penwidth(high) == pytest.approx(5.0)
    assert "score -2" in high and "score 0.1" in low
    unscored, = edge_lines(text, "L1.H3", "L1.MLP")
    assert "penwidth" not in unscored


def test_no_penwidth_without_scores_and_non_numeric_scores_ignored():
    assert "penwidth" not in to_dot(CircuitGraph.from_edges(EDGES))
    notes = {EDGES[0]: {"score": "high"}, EDGES[1]: {"score": True}, EDGES[2]: {"score": float("nan")}}
    assert "penwidth" not in to_dot(CircuitGraph.from_edges(EDGES, annotations=notes))


def test_groups_become_clusters_and_first_group_wins():
    groups = {"movers": [H12, H13], "late": [H13, M1], "ghost": [Node.attn(5, 5)]}
    text = to_dot(CircuitGraph.from_edges(EDGES), groups=groups)
    clusters = re.findall(r'subgraph "(cluster_[^"]*)" \{', text)
    assert len(clusters) == 2 and "ghost" not in text  # a group with no node in the graph draws nothing
    blocks = re.findall(r'subgraph "cluster_[^"]*" \{\n(.*?)\n  \}', text, re.S)
    members = [set(re.findall(r'^\s*"([^"]+)" \[', block, re.M)) for block in blocks]
    assert members == [{"L1.H2", "L1.H3"}, {"L1.MLP"}]
    assert 'label="movers"' in blocks[0] and 'label="late"' in blocks[1]


def test_title_defaults_to_name_and_model_and_is_escaped():
    graph = CircuitGraph.from_edges(EDGES, model="gpt2", name="ioi")
    assert 'label="ioi (gpt2)"' in to_dot(graph)
    assert 'label="say \\"hi\\""' in to_dot(graph, title='say "hi"')
    assert "labelloc" not in to_dot(graph, title="").split("subgraph")[0]


def test_compiled_circuit_renders():
    graph = circuitlang.compile_text("model gpt2\ncircuit c { embed -> L0.H1.q \n L0.H1 -> logits }").circuits["c"]
    text = to_dot(graph)
    assert edge_lines(text, "embed", "L0.H1") and edge_lines(text, "L0.H1", "logits")


def test_diff_dot_colours_each_side():
    a = CircuitGraph.from_edges(EDGES[:6])
    b = CircuitGraph.from_edges(EDGES[3:] + [Edge(H13, LOGITS)])
    text = to_diff_dot(a, b, labels=("old", "new"))
    (only_a,) = edge_lines(text, "embed", "L0.H1")
    (both,) = edge_lines(text, "L0.H1", "L1.H3")
    (only_b,) = edge_lines(text, "L1.H3", "logits")
    assert 'style="dashed"' in only_a and "#d62728" in only_a
    assert "#2ca02c" in only_b and "dashed" not in only_b
    assert "#d62728" not in both and "#2ca02c" not in both
    assert "only in old" in text and "only in new" in text and "cluster_legend" in text
    assert text == to_diff_dot(CircuitGraph.from_edges(reversed(EDGES[:6])), b, labels=("old", "new"))


def test_diff_dot_marks_nodes_only_on_one_side():
    a = CircuitGraph.from_edges([Edge(H01, LOGITS)])
    b = CircuitGraph.from_edges([Edge(H12, LOGITS)])
    text = to_diff_dot(a, b)
    decl = {ln.split(" [")[0].strip(): ln for ln in text.splitlines() if ln.strip().startswith('"L')}
    assert "#d62728" in decl['"L0.H1"'] and "#2ca02c" in decl['"L1.H2"']


def test_render_writes_dot_text_without_graphviz(tmp_path: Path):
    text = to_dot(CircuitGraph.from_edges(EDGES))
    render_dot(text, tmp_path / "c.dot")
    assert (tmp_path / "c.dot").read_text() == text


def test_render_rejects_unknown_suffix(tmp_path: Path):
    with pytest.raises(RenderError, match=r"\.svg"):
        render_dot("digraph {}", tmp_path / "c.jpeg")


def test_render_without_dot_says_how_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: no `dot` on PATH
    assert not dot_available()
    with pytest.raises(RenderError) as err:
        render_dot("digraph {}", tmp_path / "c.svg")
    assert str(err.value) == INSTALL_HINT and "apt-get install -y graphviz" in str(err.value)


@needs_dot
def test_dot_failure_is_a_render_error(tmp_path: Path):
    with pytest.raises(RenderError, match="failed"):
        render_dot("digraph { this is not dot", tmp_path / "c.svg")


@needs_dot
def test_real_dot_makes_svg_with_every_node(tmp_path: Path):
    graph = scored({EDGES[4]: 0.1, EDGES[8]: 2.0})
    out = tmp_path / "c.svg"
    render_dot(to_dot(graph, groups={"movers": [H12, H13]}), out)
    root = ET.parse(out).getroot()
    assert root.tag.endswith("svg")
    texts = {el.text for el in root.iter() if el.tag.endswith("text")}
    assert {"embed", "L0.H1", "L1.H2", "L1.H3", "L1.MLP", "logits", "movers", "q,k,v"} <= texts


@needs_dot
def test_real_dot_makes_png_and_diff_svg(tmp_path: Path):
    render_dot(to_dot(CircuitGraph.from_edges(EDGES)), tmp_path / "c.png")
    assert (tmp_path / "c.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    a, b = CircuitGraph.from_edges(EDGES[:6]), CircuitGraph.from_edges(EDGES[3:])
    render_dot(to_diff_dot(a, b), tmp_path / "d.svg")
    texts = {el.text for el in ET.parse(tmp_path / "d.svg").getroot().iter() if el.tag.endswith("text")}
    assert {"only in a", "only in b", "embed", "logits"} <= texts

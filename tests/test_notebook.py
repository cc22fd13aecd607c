"""Notebook display: short reprs, a circuit's drawing as SVG that parses, a diff drawn
with its listing, reports and checks as HTML tables with their verdicts and intervals,
per-edge tables as DataFrames."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

import circuitlang as cl
from circuitlang.core.graph import EMBED, LOGITS, Edge, Node
from circuitlang.present.diff import diff_graphs
from circuitlang.present.render import dot_available

needs_dot = pytest.mark.skipif(not dot_available(), reason="Graphviz's dot draws the SVG (make setup installs it)")


def test_reprs_are_short_and_read_like_circ() -> None:
    circuit = cl.load("stdlib/zoo/induction.circ").circuits["induction"]
    assert repr(circuit) == "CircuitGraph('induction', model='zoo:induction-2l', 4 nodes, 7 edges)"
    assert repr(LOGITS) == "Node('logits')" and repr(Node.attn(9, 6)) == "Node('L9.H6')"
    assert repr(Edge(EMBED, Node.attn(1, 1), "k")) == "Edge('embed -> L1.H1.k')"
    compiled = cl.load("stdlib/zoo/induction.circ")
    diff = diff_graphs(compiled.circuits["induction"], compiled.circuits["induction_resample"], "a", "b")
    assert repr(diff) == "CircuitDiff('a' -> 'b': 0 nodes added, 0 removed; 0 edges added, 2 removed)"


@needs_dot
def test_a_circuit_draws_itself_as_svg() -> None:
    circuit = cl.load("stdlib/zoo/induction.circ").circuits["induction"]
    root = ET.fromstring(circuit._repr_svg_())
    assert root.tag.endswith("svg")
    text = " ".join(t.text or "" for t in root.iter() if t.tag.endswith("text"))
    assert "L0.H2" in text and "L1.H1" in text and "logits" in text


@needs_dot
def test_a_diff_shows_its_drawing_and_listing() -> None:
    compiled = cl.load("stdlib/zoo/induction.circ")
    html = diff_graphs(compiled.circuits["induction"], compiled.circuits["induction_resample"], "a", "b")._repr_html_()
    assert "<svg" in html and "- embed -&gt; L0.H2.q" in html and "<?xml" not in html


def test_reports_show_verdicts_and_intervals() -> None:
    pytest.importorskip("transformer_lens")
    outcome = cl.check_file("stdlib/zoo/induction.circ", sensitivity="off", bootstrap=100)
    check = outcome.checks[0]
    assert repr(check).startswith("CheckReport('induction' on 'repeat_tokens_zero': PASS")
    html = check._repr_html_()
    assert "faithfulness &gt;= 0.95" in html and "pass" in html and str(check.circuit.faithfulness_interval) in html
    report = check.circuit
    assert "per_example" not in repr(report) and f"{report.faithfulness:.4f}" in repr(report)
    frame = report.to_pandas()
    assert list(frame.columns) == ["name", "delta", "low", "high", "superfluous"]
    assert set(frame["name"]) == {c.name for c in report.edges} and len(frame) == len(report.edges)
    assert len(report.to_pandas("nodes")) == len(report.nodes)

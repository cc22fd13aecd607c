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


def test_class_level_drawing_collapses_groups_and_counts_edges() -> None:
    """IOI at class level, as Wang et al. draw it: one node per group, one arrow per pair
    of classes labelled with channels and edge count; embed can be left out."""
    from circuitlang.lang.lower import groups_of
    from circuitlang.present.render import to_class_dot

    compiled = cl.load("stdlib/gpt2/ioi.circ")
    ioi = compiled.circuits["ioi"]
    dot = to_class_dot(ioi, groups_of(compiled.program, "ioi"), embed=False)
    nodes = {line.split('"')[1] for line in dot.splitlines() if "[label=" in line and "graph [" not in line}
    assert nodes == {"logits", "name_movers", "backup_name_movers", "negative_name_movers", "s_inhibition",
                     "induction", "duplicate_token", "previous_token"}
    arrows = [line for line in dot.splitlines() if "->" in line]
    assert '"s_inhibition" -> "backup_name_movers"' in dot and 'label="q ×32"' in dot
    assert len(arrows) == 9 and "embed" not in dot
    assert sum(int(line.split("×")[1].split('"')[0]) for line in arrows) == \
        sum(1 for e in ioi.edges if e.sender != EMBED) - sum(
            1 for e in ioi.edges if e.sender != EMBED and _same_class(compiled, e))
    bare = to_class_dot(ioi, groups_of(compiled.program, "ioi"), labels=False)
    assert "×" not in bare and '"embed"' in bare


def _same_class(compiled, edge) -> bool:
    from circuitlang.lang.lower import groups_of

    groups = groups_of(compiled.program, "ioi")
    home = {n: name for name, members in reversed(list(groups.items())) for n in members}
    return home.get(edge.sender, str(edge.sender)) == home.get(edge.receiver, str(edge.receiver))


def test_render_collapse_on_the_command_line(tmp_path, monkeypatch) -> None:
    from pathlib import Path

    from click.testing import CliRunner

    from circuitlang.cli import cli

    monkeypatch.chdir(Path(__file__).resolve().parent.parent)
    out = tmp_path / "ioi.dot"
    result = CliRunner().invoke(cli, ["render", "stdlib/gpt2/ioi.circ", "--circuit", "ioi", "--collapse", "--no-embed",
                                      "-o", str(out)], catch_exceptions=False)
    assert result.exit_code == 0 and "at class level" in result.stderr
    assert '"s_inhibition" -> "name_movers"' in out.read_text()
    loose = CliRunner().invoke(cli, ["render", "stdlib/gpt2/ioi.circ", "--no-embed", "-o", str(out)],
                               catch_exceptions=False)
    assert loose.exit_code == 2 and "--collapse" in loose.stderr


def test_plots_refuse_a_name_that_names_no_plot_format(tmp_path, monkeypatch) -> None:
    """A plot is written in the format its name says (.svg, .png, .pdf): --plot refuses
    any other name before any work (never SVG text in a .jpg)."""
    from pathlib import Path

    from click.testing import CliRunner

    from circuitlang.cli import cli

    monkeypatch.chdir(Path(__file__).resolve().parent.parent)
    run = CliRunner().invoke
    discover = run(cli, ["discover", "--task", "stdlib/zoo/induction.circ:repeat_tokens", "--method", "eap",
                         "--edges", "3", "--plot", str(tmp_path / "curve.jpg")], catch_exceptions=False)
    assert discover.exit_code == 2 and "use a .svg, .png or .pdf file" in discover.stderr
    track = run(cli, ["track", "stdlib/zoo/induction_phase.circ", "--checkpoints", "stdlib/zoo/induction_phase/step-*",
                      "--plot", str(tmp_path / "t.gif")], catch_exceptions=False)
    assert track.exit_code == 2 and "use a .svg, .png or .pdf file" in track.stderr
    assert not (tmp_path / "curve.jpg").exists() and not (tmp_path / "t.gif").exists()

"""Readable large graphs (issue 13): the class-level diff (`circ diff --collapse`), plots
written in the format their name says (`--plot F.png`), and plots whose labels never
overlap."""

from __future__ import annotations

import re
import shutil
import struct
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner

from circuitlang.cli import cli
from circuitlang.cli.common import UsageError, check_plot_name, write_plot
from circuitlang.core.graph import EMBED, LOGITS, CircuitGraph, Edge, Node
from circuitlang.core.positions import Position
from circuitlang.discovery.plot import curve_svg
from circuitlang.present.render import RSVG_HINT, RenderError, dot_available, plot_bytes, to_class_diff_dot

ROOT = Path(__file__).resolve().parent.parent
GT = ROOT / "stdlib" / "gpt2" / "greater_than.circ"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
needs_dot = pytest.mark.skipif(not dot_available(),
                               reason="Graphviz `dot` is not installed (apt-get install -y graphviz)")
needs_rsvg = pytest.mark.skipif(shutil.which("rsvg-convert") is None,
                                reason="rsvg-convert is not installed (apt-get install -y librsvg2-bin)")

H01, H02, H11, H12, M1 = Node.attn(0, 1), Node.attn(0, 2), Node.attn(1, 1), Node.attn(1, 2), Node.mlp(1)
GROUPS = {"low": frozenset({H01, H02}), "high": frozenset({H11, H12})}


def arrow(text: str, sender: str, receiver: str) -> str:
    (line,) = [ln for ln in text.splitlines() if ln.strip().startswith(f'"{sender}" -> "{receiver}" [')]
    return line


def declaration(text: str, name: str) -> str:
    (line,) = [ln for ln in text.splitlines() if ln.strip().startswith(f'"{name}" [')]
    return line


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG_SIGNATURE
    return struct.unpack(">II", data[16:24])


# -- the class-level diff ------------------------------------------------------------------

def two_sides() -> tuple[CircuitGraph, CircuitGraph]:
    """A and B share embed -> low and low -> high.k; high -> logits is half shared; only A
    has L0.H2 -> MLP 1, only B has MLP 1 -> logits."""
    shared = [Edge(EMBED, H01, "q"), Edge(EMBED, H02, "v"), Edge(H01, H11, "k"), Edge(H11, LOGITS)]
    a = CircuitGraph.from_edges(shared + [Edge(H02, M1), Edge(H12, LOGITS)])
    b = CircuitGraph.from_edges(shared + [Edge(M1, LOGITS), Edge(H12, LOGITS, position=Position("END"))])
    return a, b


def test_class_diff_colours_each_arrow_by_side_and_counts_a_mix() -> None:
    a, b = two_sides()
    text = to_class_diff_dot(a, b, GROUPS, names=("old.circ:x", "new.circ:y"))
    both, only_a, only_b = arrow(text, "low", "high"), arrow(text, "low", "L1.MLP"), arrow(text, "L1.MLP", "logits")
    assert "#404040" in both and 'label="k ×1"' in both and "dashed" not in both
    assert "#d62728" in only_a and 'style="dashed"' in only_a
    assert "#2ca02c" in only_b and "dashed" not in only_b
    mixed = arrow(text, "high", "logits")  # one shared edge, one only in A, one only in B (it has a position)
    assert "#b8860b" in mixed and 'label="×3 (both 1, A 1, B 1)"' in mixed
    assert "only in A: old.circ:x" in text and "only in B: new.circ:y" in text and "mixed: counts per side" in text
    assert len([ln for ln in text.splitlines() if " -> " in ln and "__legend" not in ln]) == 5


def test_class_diff_colours_classes_by_side() -> None:
    a, b = two_sides()
    text = to_class_diff_dot(a, b, GROUPS)
    assert "#d62728" not in declaration(text, "low") and "#b8860b" not in declaration(text, "low")
    # MLP 1 is in both circuits (A's edge into it, B's edge out of it)
    assert "#d62728" not in declaration(text, "L1.MLP") and "#2ca02c" not in declaration(text, "L1.MLP")
    a2 = CircuitGraph.from_edges([Edge(H01, LOGITS)])
    b2 = CircuitGraph.from_edges([Edge(H01, LOGITS), Edge(H02, LOGITS), Edge(M1, LOGITS)])
    text = to_class_diff_dot(a2, b2, GROUPS)
    low = declaration(text, "low")
    assert "#b8860b" in low and r"(2 heads)\nboth 1, B 1" in low
    assert "#2ca02c" in declaration(text, "L1.MLP")


def test_class_diff_leaves_out_embed_and_labels_on_request() -> None:
    a, b = two_sides()
    text = to_class_diff_dot(a, b, GROUPS, embed=False, labels=False)
    assert '"embed"' not in text and "×" not in text
    assert "both 1, A 1, B 1" in arrow(text, "high", "logits")  # the tooltip still counts


def test_class_label_says_where_a_groups_other_members_are_drawn() -> None:
    """A node in two groups is drawn in the first; the second must not look smaller than it is."""
    graph = CircuitGraph.from_edges([Edge(H01, LOGITS), Edge(H02, LOGITS), Edge(H11, LOGITS)])
    text = to_class_diff_dot(graph, graph, {"first": [H01, H02], "second": [H02, H11]})
    assert r"second\n(1 head; 1 more in first)" in declaration(text, "second")


def run_diff(*args: str):
    return CliRunner().invoke(cli, ["diff", *args], catch_exceptions=False)


def test_cli_class_diff_of_greater_than(tmp_path: Path) -> None:
    """The issue's example: ACDC's Greater-Than circuit against Hanna et al.'s, one node per group."""
    out = tmp_path / "gt.dot"
    result = run_diff(f"{GT}:acdc", f"{GT}:hanna", "--format", "svg", "--collapse", "-o", str(out))
    assert result.exit_code == 1 and "at class level" in result.stderr  # 1: the circuits differ
    text = out.read_text()
    nodes = {m for m in re.findall(r'^  "([^"]+)" \[label=', text, re.M)}
    assert nodes == {"embed", "yy_heads", "early_mlps", "end_heads", "acdc_mid", "late_mlps", "logits"}
    assert r"end_heads\n(7 heads)\nboth 5, B 2" in text  # L5.H1 and L8.H8 are Hanna et al.'s only
    assert "#d62728" in declaration(text, "acdc_mid") and "5 more in end_heads" in text  # ACDC's L6.H1


@needs_dot
def test_cli_class_diff_of_greater_than_fits_a_page(tmp_path: Path) -> None:
    out = tmp_path / "gt.png"
    assert run_diff(f"{GT}:acdc", f"{GT}:hanna", "--format", "svg", "--collapse", "--no-embed",
                    "-o", str(out)).exit_code == 1
    width, height = png_size(out.read_bytes())
    assert 300 < width <= 2000 and 200 < height <= 1400  # the node-level drawing is 8914 x 1856


def test_cli_collapse_options_need_a_drawing() -> None:
    loose = run_diff(f"{GT}:acdc", f"{GT}:hanna", "--collapse")
    assert loose.exit_code == 2 and "--format svg" in loose.stderr
    bare = run_diff(f"{GT}:acdc", f"{GT}:hanna", "--format", "svg", "--no-labels", "-o", "x.svg")
    assert bare.exit_code == 2 and "go with --collapse" in bare.stderr
    assert "--collapse" in run_diff("--help").output


def test_cli_class_diff_uses_as_group_when_b_defines_it_otherwise(tmp_path: Path) -> None:
    (tmp_path / "a.circ").write_text("model zoo:induction-2l\ngroup g = L0.H0, L0.H1\n"
                                     "circuit c { g -> L1.H0.k\n L1.H0 -> logits }\n")
    (tmp_path / "b.circ").write_text("model zoo:induction-2l\ngroup g = L0.H1, L0.H2\n"
                                     "circuit c { g -> L1.H0.k\n L1.H0 -> logits }\n")
    out = tmp_path / "d.dot"
    result = run_diff(str(tmp_path / "a.circ"), str(tmp_path / "b.circ"), "--format", "svg", "--collapse",
                      "-o", str(out))
    assert result.exit_code == 1
    assert "warning: group `g` has different members in A and B; drawn with A's (only A's has L0.H0; " \
           "only B's has L0.H2)" in result.stderr
    text = out.read_text()
    assert r"g\n(2 heads)\nboth 1, A 1" in text and '"L0.H2" [' in text  # B's extra head drawn on its own


# -- plots in the format their name says ---------------------------------------------------

def test_plot_names_are_checked_before_any_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(UsageError, match=r"use a \.svg, \.png or \.pdf file"):
        check_plot_name(tmp_path / "curve.jpg", "--plot")
    check_plot_name(tmp_path / "curve.svg", "--plot")
    monkeypatch.setenv("PATH", str(tmp_path))  # no rsvg-convert on PATH
    with pytest.raises(UsageError) as err:
        check_plot_name(tmp_path / "curve.png", "--plot")
    assert RSVG_HINT in err.value.message and "apt-get install -y librsvg2-bin" in err.value.message
    with pytest.raises(RenderError, match="librsvg2-bin"):
        plot_bytes(curve_svg([(0.1, 0.5)]), "pdf")
    check_plot_name(tmp_path / "curve.SVG", "--plot")  # SVG needs nothing


def test_cli_refuses_a_plot_it_cannot_write_before_measuring(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(ROOT)
    run = CliRunner().invoke
    discover = run(cli, ["discover", "--task", "stdlib/zoo/induction.circ:repeat_tokens", "--method", "eap",
                         "--edges", "3", "--plot", str(tmp_path / "curve.gif")], catch_exceptions=False)
    assert discover.exit_code == 2 and "use a .svg, .png or .pdf file" in discover.stderr
    monkeypatch.setenv("PATH", str(tmp_path))
    track = run(cli, ["track", "stdlib/zoo/induction_phase.circ", "--checkpoints", "stdlib/zoo/induction_phase/step-*",
                      "--plot", str(tmp_path / "t.png")], catch_exceptions=False)
    assert track.exit_code == 2 and "librsvg2-bin" in track.stderr and len(track.stderr.splitlines()) == 1
    assert not (tmp_path / "curve.gif").exists() and not (tmp_path / "t.png").exists()


@needs_rsvg
def test_write_plot_writes_png_and_pdf(tmp_path: Path) -> None:
    svg = curve_svg([(0.001, 0.1), (0.01, 0.8), (1.0, 1.0)], "eap on t", "CPR 0.9")
    write_plot(tmp_path / "c.png", svg, "--plot")
    data = (tmp_path / "c.png").read_bytes()
    width, height = png_size(data)
    assert (width, height) == (960, 600) and len(data) > 5000  # twice the SVG's 480 x 300
    write_plot(tmp_path / "c.pdf", svg, "--plot")
    assert (tmp_path / "c.pdf").read_bytes()[:5] == b"%PDF-"
    write_plot(tmp_path / "c.svg", svg, "--plot")
    assert (tmp_path / "c.svg").read_text() == svg


@needs_rsvg
def test_track_plot_converts_too() -> None:
    from circuitlang.present.track import track_svg

    result = {"file": "a.circ", "checkpoints": [
        {"name": f"s{i}", "step": i, "checks": [{"check": "c", "faithfulness": i / 4}]} for i in range(1, 5)]}
    width, height = png_size(plot_bytes(track_svg(result), "png"))
    assert width > 600 and height > 300


@needs_rsvg
def test_cli_discover_writes_a_png_curve(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(ROOT)
    result = CliRunner().invoke(cli, ["discover", "--task", "stdlib/zoo/induction.circ:repeat_tokens", "--method",
                                      "eap", "--edges", "3", "--plot", str(tmp_path / "curve.png"),
                                      "-o", str(tmp_path / "found.circ")], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert png_size((tmp_path / "curve.png").read_bytes()) == (960, 600)


# -- labels that never overlap -------------------------------------------------------------

def text_boxes(svg: str) -> list[tuple[str, float, float, float, float]]:
    """(text, x0, y0, x1, y1) of every text element: width 0.6 x font size per character,
    height the font size above the baseline; a text rotated by -90 degrees stands upright
    left of its baseline."""
    root = ET.fromstring(svg)
    default = float(root.get("font-size", "11"))
    boxes = []
    for el in root.iter("{http://www.w3.org/2000/svg}text"):
        text, size = el.text or "", float(el.get("font-size", default))
        x, y, length = float(el.get("x")), float(el.get("y")), 0.6 * size * len(el.text or "")
        start = {"start": 0.0, "middle": length / 2, "end": length}[el.get("text-anchor", "start")]
        if "rotate(-90" in el.get("transform", ""):
            boxes.append((text, x - size, y - length + start, x, y + start))
        else:
            boxes.append((text, x - start, y - size, x - start + length, y))
    return boxes


AWKWARD = {
    "just below 0": [(0.001, -0.02), (0.003, 0.1), (0.01, 0.6), (0.1, 0.98), (1.0, 1.0)],
    "one point": [(0.05, 0.7)],
    "huge range": [(1e-6, -3.5), (1e-4, 40.0), (0.01, 12.0), (1.0, 1.0)],
    "nearly flat": [(0.2, 1.0001), (0.3, 1.0002)],
    "no points": [],
    "dense": [(10 ** (k / 10 - 3), min(1.0, k / 25)) for k in range(31)],
}


@pytest.mark.parametrize("points", AWKWARD.values(), ids=AWKWARD.keys())
def test_curve_labels_do_not_overlap(points) -> None:
    svg = curve_svg(points, "eap-ig on ioi", "CPR 0.912, CMD 0.041")
    boxes = text_boxes(svg)
    assert {"fraction of edges kept (log scale)", "faithfulness", "0", "1"} <= {b[0] for b in boxes}
    for i, (t1, *a) in enumerate(boxes):
        assert a[0] >= 0 and a[1] >= 0 and a[2] <= 480 and a[3] <= 300, f"{t1!r} leaves the picture: {a}"
        for t2, *b in boxes[i + 1:]:
            apart = a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1]
            assert apart, f"{t1!r} {a} overlaps {t2!r} {b}"

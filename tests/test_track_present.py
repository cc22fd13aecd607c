"""The presentation of `circ track` results (circuitlang.present.track): a rich table,
Markdown and an SVG plot, on synthetic results with missing values, a check that failed
to run at one checkpoint, repeated warnings, and the edge cases of one and no checkpoint."""

from __future__ import annotations

import io
import math
import re
import xml.etree.ElementTree as ET

import pytest
from rich.console import Console

from circuitlang.present.track import track_markdown, track_svg, track_table

SVG = "{http://www.w3.org/2000/svg}"
CHECKS = ("found on repeat_tokens", "ioi | baseline <&>")  # the second needs escaping everywhere
NODES = ("L0.H0", "L0.H1", "L1.H2", "L1.H3")
REPEATED = "the effect is small: m(model) - m(empty) is below 0.1"


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def build(steps=(0, 20, 40, 60, 80, 100, 120, 140), problem_at=60) -> dict:
    """A result like `circ track` writes: faithfulness rising around step 80, per-node
    necessity, None/NaN holes, a check that failed to run at `problem_at`, a warning at
    the early steps, discovery at some checkpoints, and a transition."""
    checkpoints = []
    for i, step in enumerate(steps):
        rise = sigmoid((step - 80) / 12)
        checks = []
        for c, name in enumerate(CHECKS):
            if name == CHECKS[0] and step == problem_at:
                checks.append({"check": name, "problem": "CUDA out of memory"})
                continue
            f = rise * (1.1 if c else 1.0) - 0.05
            entry = {"check": name, "circuit": "found", "task": "repeat_tokens", "ablation": "resample",
                     "metric": "logit_diff", "passed": f > 0.8, "faithfulness": f,
                     "interval": [f - 0.04, f + 0.04], "m_model": 1.3 + i / 10, "m_empty": -0.2,
                     "nodes": {n: rise * (k + 1) / 4 for k, n in enumerate(NODES)}, "warnings": []}
            if rise < 0.5:
                entry["warnings"] = [REPEATED]
            if c == 1 and i == 2:
                entry["faithfulness"] = float("nan")
                entry["interval"] = None
                entry["nodes"]["L0.H1"] = None
            if c == 1 and i == 5:
                entry["m_model"] = None
                del entry["nodes"]["L1.H3"]
            checks.append(entry)
        discovered = None if i % 3 else {"method": "eap", "edges": 10 + i, "faithfulness": rise,
                                           "file": f"out/{step}.circ", "nodes": list(NODES[:2]),
                                           "edge_list": ["embed -> L0.H1.q"]}
        checkpoints.append({"name": f"step-{step:05d}", "path": f"ckpt/step-{step:05d}", "step": step,
                            "checks": checks, "discovered": discovered})
    transitions = [{"from_step": a, "to_step": b, "summary": f"step {a} -> {b}: +L1.H2, faithfulness rises",
                    "added_nodes": ["L1.H2"], "removed_nodes": [], "added_edges": [], "removed_edges": []}
                   for a, b in zip(steps, steps[1:]) if 60 <= b <= 100]
    return {"schema": 1, "file": "stdlib/zoo/induction_phase.circ", "how": "local Ray, 2 workers",
            "checkpoints": checkpoints, "transitions": transitions}


def render(table) -> str:
    console = Console(record=True, width=160, file=io.StringIO())
    console.print(table)
    return console.export_text()


# -- geometry of the SVG, estimated the way the layout is meant to hold -----------------

def font_size(element, root) -> float:
    return float(element.get("font-size") or root.get("font-size") or 11)


def text_box(element, root) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) of a text element: width ~0.6 * font size per character, from the
    baseline up by the font size and down by a quarter of it."""
    size = font_size(element, root)
    width = 0.6 * size * len(element.text or "")
    x, y = float(element.get("x")), float(element.get("y"))
    anchor = element.get("text-anchor", "start")
    x0 = x - width / 2 if anchor == "middle" else x - width if anchor == "end" else x
    return x0, y - size, x0 + width, y + 0.25 * size


def overlap(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def of_class(root, tag: str, name: str) -> list:
    return [e for e in root.iter(SVG + tag) if name in (e.get("class") or "").split()]


def plot_rect(root) -> tuple[float, float, float, float]:
    (rect,) = of_class(root, "rect", "plot-area")
    x, y = float(rect.get("x")), float(rect.get("y"))
    return x, y, x + float(rect.get("width")), y + float(rect.get("height"))


def assert_layout(svg: str) -> ET.Element:
    """No x tick labels overlap each other or the axis titles; the legend stays off the
    plot; no text leaves the canvas."""
    root = ET.fromstring(svg)
    xticks = [text_box(e, root) for e in of_class(root, "text", "xtick")]
    for i, a in enumerate(xticks):
        for b in xticks[i + 1:]:
            assert not overlap(a, b), (a, b)
    titles = [text_box(e, root) for e in of_class(root, "text", "axis-title") if not e.get("transform")]
    yticks = [text_box(e, root) for e in of_class(root, "text", "ytick")]
    for tick in xticks:
        assert not any(overlap(tick, other) for other in titles + yticks), tick
    for i, a in enumerate(yticks):
        for b in yticks[i + 1:]:
            assert not overlap(a, b), (a, b)
    plot = plot_rect(root)
    for element in of_class(root, "text", "legend"):
        assert not overlap(text_box(element, root), plot), element.text
    for line in of_class(root, "line", "legend"):
        box = (float(line.get("x1")), float(line.get("y1")) - 2, float(line.get("x2")), float(line.get("y2")) + 2)
        assert not overlap(box, plot)
    width, height = float(root.get("width")), float(root.get("height"))
    for element in root.iter(SVG + "text"):
        if element.get("transform"):
            continue
        x0, y0, x1, y1 = text_box(element, root)
        assert x0 >= 0 and y0 >= 0 and x1 <= width + 1 and y1 <= height + 1, element.text
    return root


def no_nan(svg: str) -> None:
    """No NaN or infinity anywhere (text or coordinates), nor a Python None."""
    assert not re.search(r"\b(nan|inf|infinity)\b", svg, re.IGNORECASE)
    assert "None" not in svg


# -- SVG --------------------------------------------------------------------------------

def test_svg_draws_one_series_per_check_and_per_node_and_no_nan() -> None:
    svg = track_svg(build(), title="induction <phase> & co")
    root = assert_layout(svg)
    no_nan(svg)
    faith = of_class(root, "path", "faithfulness")
    nodes = of_class(root, "path", "node")
    assert sorted(p.get("data-check") for p in faith) == sorted(CHECKS)
    assert sorted((p.get("data-check"), p.get("data-node")) for p in nodes) == sorted(
        (c, n) for c in CHECKS for n in NODES)
    assert "".join(root.find(SVG + "text").itertext()) == "induction <phase> & co"
    # the check that failed to run at step 60 and the NaN at step 40 break their lines
    by_check = {p.get("data-check"): p.get("d") for p in faith}
    assert by_check[CHECKS[0]].count("M") == 2 and by_check[CHECKS[1]].count("M") == 2
    broken = {(CHECKS[1], "L0.H1"), (CHECKS[1], "L1.H3"), *((CHECKS[0], n) for n in NODES)}
    runs = {(p.get("data-check"), p.get("data-node")): p.get("d").count("M") for p in nodes}
    assert runs == {key: 2 if key in broken else 1 for key in runs}
    # 7 measured faithfulness points per check (8 checkpoints, one hole each)
    assert by_check[CHECKS[0]].count(",") == 7 and by_check[CHECKS[1]].count(",") == 7


def test_svg_y_range_covers_every_value_with_gridlines_at_0_and_1() -> None:
    result = build()
    result["checkpoints"][3]["checks"][1]["faithfulness"] = -0.6
    result["checkpoints"][7]["checks"][1]["nodes"]["L0.H0"] = 1.8
    root = assert_layout(track_svg(result))
    top, bottom = plot_rect(root)[1], plot_rect(root)[3]
    ys = [float(v) for p in of_class(root, "path", "series") for v in re.findall(r"[\d.]+,([\d.]+)", p.get("d"))]
    assert ys and all(top <= y <= bottom for y in ys)
    ticks = {e.text: float(e.get("y")) for e in of_class(root, "text", "ytick")}
    assert "0" in ticks and "1" in ticks
    grid = [float(line.get("y1")) for line in of_class(root, "line", "grid") if line.get("stroke") == "#999"]
    assert len(grid) == 2


def test_svg_ticks_stay_apart_on_a_long_log_range() -> None:
    steps = (0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000, 2000, 4000, 8000, 16000, 33000, 66000, 143000)
    svg = track_svg(build(steps=steps, problem_at=512))
    root = assert_layout(svg)
    no_nan(svg)
    titles = [e.text for e in of_class(root, "text", "axis-title")]
    assert any("symlog" in t for t in titles)
    labels = [e.text for e in of_class(root, "text", "xtick")]
    assert "0" in labels and len(labels) >= 4 and "100k" in labels


def test_svg_log_axis_without_step_zero_and_linear_otherwise() -> None:
    logged = ET.fromstring(track_svg(build(steps=(10, 100, 1000, 10000, 100000), problem_at=-1)))
    assert any("(log scale)" in e.text for e in of_class(logged, "text", "axis-title"))
    linear = ET.fromstring(track_svg(build()))
    assert [e.text for e in of_class(linear, "text", "axis-title")][0] == "training step"


def test_svg_many_nodes_share_a_grey_and_one_legend_entry() -> None:
    result = build()
    for cp in result["checkpoints"]:
        for entry in cp["checks"]:
            if "nodes" in entry:
                entry["nodes"].update({f"L2.H{k}": 0.01 * k for k in range(30)})
    root = assert_layout(track_svg(result))
    nodes = of_class(root, "path", "node")
    assert len(nodes) == 2 * (4 + 30)
    assert len({p.get("stroke") for p in nodes}) == 11  # the palette, plus one grey
    legend = [e.text for e in of_class(root, "text", "legend")]
    assert sum("other nodes" in t for t in legend) == 2 and len(legend) < 30


def test_svg_with_a_narrow_range_of_wide_step_labels() -> None:
    steps = tuple(range(1_000_001, 1_000_001 + 40 * 997, 997))
    root = assert_layout(track_svg(build(steps=steps, problem_at=steps[3])))
    assert len(of_class(root, "text", "xtick")) >= 2


# -- Markdown ---------------------------------------------------------------------------

def test_markdown_lists_steps_transitions_and_each_warning_once() -> None:
    result = build()
    text = track_markdown(result)
    for cp in result["checkpoints"]:
        assert f"| {cp['step']} | {cp['name']} |" in text
    for t in result["transitions"]:
        assert f"- {t['summary']}" in text
    assert text.count(REPEATED) == 1
    (line,) = [line for line in text.splitlines() if REPEATED in line]
    assert "at steps 0, 20, 40, 60 (" in line and "80" not in line
    assert "CUDA out of memory — at step 60 (found on repeat_tokens)" in text
    assert "## Per-node necessity: found on repeat_tokens" in text
    assert "| step | L0.H0 | L0.H1 | L1.H2 | L1.H3 |" in text
    assert "| 60 | error | error | error | error |" in text
    assert "nan" not in text.lower()


def test_markdown_cells_show_missing_values_and_escape_pipes() -> None:
    text = track_markdown(build())
    assert "ioi \\| baseline <&>: faithfulness [95%]" in text
    row40 = next(line for line in text.splitlines() if line.startswith("| 40 | step-00040 |"))
    cells = [c.strip() for c in re.split(r"(?<!\\)\|", row40)[1:-1]]
    assert cells[5] == "—"  # NaN faithfulness of the second check
    assert re.fullmatch(r"-?\d\.\d\d \[-?\d\.\d\d, -?\d\.\d\d\]", cells[2])  # value [interval]
    assert cells[-1] == "—"  # no discovery at this step
    assert "| 20 | step-00020 | -0.04 [-0.08, 0.00] |" in text and "-0.00" not in text
    assert "| 60 | step-00060 | error | — | error | 0.12 [0.08, 0.16] |" in text
    row0 = next(line for line in text.splitlines() if line.startswith("| 0 | step-00000 |"))
    assert row0.endswith("| 10 edges, f 0.00 |")


# -- terminal ---------------------------------------------------------------------------

def test_table_renders_each_step_and_error_for_the_problem() -> None:
    result = build()
    out = render(track_table(result))
    rows = {line.split()[1]: line for line in out.splitlines() if re.match(r"^\W*\d+ \W*step-", line)}
    assert sorted(rows, key=int) == [str(cp["step"]) for cp in result["checkpoints"]] or \
        sorted(int(k) for k in rows) == [cp["step"] for cp in result["checkpoints"]]
    assert out.count("error") == 2 and "error" in next(line for line in out.splitlines() if "step-00060" in line)
    assert "discovered" in out and "nan" not in out.lower()


def test_table_rows_by_step() -> None:
    out = render(track_table(build()))
    for step in (0, 20, 40, 60, 80, 100, 120, 140):
        line = next(line for line in out.splitlines() if f"step-{step:05d}" in line)
        assert re.search(rf"\b{step}\b", line)
    late = next(line for line in out.splitlines() if "step-00140" in line)
    assert "pass" in late and "FAIL" not in late
    early = next(line for line in out.splitlines() if "step-00000" in line)
    assert early.count("FAIL") == 2


# -- edge cases -------------------------------------------------------------------------

def test_one_checkpoint() -> None:
    result = build(steps=(500,), problem_at=-1)
    svg = track_svg(result)
    root = assert_layout(svg)
    no_nan(svg)
    assert len(of_class(root, "path", "faithfulness")) == 2
    assert "500" in [e.text for e in of_class(root, "text", "xtick")]
    assert "| 500 | step-00500 |" in track_markdown(result)
    assert "step-00500" in render(track_table(result))


@pytest.mark.parametrize("result", [{"schema": 1, "file": "x.circ", "how": "local", "checkpoints": [],
                                     "transitions": []}, {}])
def test_no_checkpoint(result: dict) -> None:
    svg = track_svg(result)
    root = assert_layout(svg)
    no_nan(svg)
    assert not of_class(root, "path", "series")
    assert "no checkpoints to plot" in svg
    assert "No checkpoints in this result" in track_markdown(result)
    assert "no checkpoints" in render(track_table(result))


def test_checkpoints_without_checks() -> None:
    result = {"file": "x.circ", "checkpoints": [{"name": "a", "step": 1, "checks": []},
                                                {"name": "b", "step": 2, "problem": "could not load"}]}
    assert "no measured values to plot" in track_svg(result)
    text = track_markdown(result)
    assert "No checks were run" in text and "could not load — at step 2" in text
    assert "no checks were run" in render(track_table(result))


def test_training_numbers_are_shown_beside_the_checks() -> None:
    """What the training run recorded (trainer_state.json: a loss) gets a column in the
    table and the Markdown, so the circuit's rise can be read against the loss's fall."""
    from rich.console import Console

    result = {"file": "a.circ", "checkpoints": [
        {"name": "s1", "step": 1, "training": {"repeat_loss": 2.2811}, "checks": [
            {"check": "c", "faithfulness": 0.05, "passed": False}]},
        {"name": "s2", "step": 2, "training": {"repeat_loss": 0.0005}, "checks": [
            {"check": "c", "faithfulness": 0.9, "passed": True}]},
        {"name": "s3", "step": 3, "checks": [{"check": "c", "faithfulness": 0.91, "passed": True}]}]}
    md = track_markdown(result)
    assert "| step | checkpoint | repeat_loss |" in md
    assert "| 1 | s1 | 2.2811 | 0.05 |" in md and "| 3 | s3 | — | 0.91 |" in md
    console = Console(record=True, width=160)
    console.print(track_table(result))
    text = console.export_text()
    assert "repeat_loss" in text and "0.0005" in text

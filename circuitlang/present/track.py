"""How a circuit forms over training, for people: the result of `circ track` as a
terminal table (`track_table`), Markdown (`track_markdown`) and a standalone SVG plot
against training step (`track_svg`).

`circ track` applies a circuit file's checks to a sequence of training checkpoints (for
example the induction phase change, where the induction circuit's faithfulness rises
from ~0 to ~1 around the step where loss on repeated tokens drops). These functions only
show what it measured, so they take the JSON-able result dict and never torch:

    {"schema": 1, "file": ..., "how": ...,
     "checkpoints": [{"name", "path", "step",
                      "checks": [{"check", "passed", "faithfulness", "interval",
                                  "m_model", "m_empty", "nodes": {node: necessity},
                                  "warnings": [...]}  or  {"check", "problem"}],
                      "discovered": None or {"method", "edges", "faithfulness", ...}}],
     "transitions": [{"from_step", "to_step", "summary", ...}]}

A value that was not measured (None, NaN, a missing key) is shown as "—" and left out of
the plot (its line breaks there); a check that failed to run at a checkpoint (it has
"problem" instead of numbers) is shown as "error"; everything else is still shown.

>>> result = {"file": "a.circ", "checkpoints": [{"name": "s1", "step": 1, "checks": [
...     {"check": "c", "faithfulness": 0.5, "interval": [0.4, 0.6], "passed": False}]}]}
>>> "| 1 | s1 | 0.50 [0.40, 0.60] |" in track_markdown(result)
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterable, Sequence
from xml.sax.saxutils import escape

from .axes import FONT, faithfulness_ticks, nice_ticks, text_width, thin

if TYPE_CHECKING:
    from rich.table import Table

MISSING = "—"
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
           "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#393b79")
OTHER = "#c7c7c7"  # nodes beyond the palette: one grey, one legend entry per check
DASHES = ("", "7,3", "2,2", "9,3,2,3")  # one per check, for its thick and its thin lines
MARKERS = ("circle", "square", "diamond", "triangle")


# -- reading the result (tolerant: every key may be missing or not a number) ------------

def _num(value: object) -> float | None:
    """A finite float, or None for None, NaN, infinities, booleans and non-numbers."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _checkpoints(result: dict) -> list[dict]:
    return [cp for cp in result.get("checkpoints") or [] if isinstance(cp, dict)]


def _check_names(checkpoints: Sequence[dict]) -> list[str]:
    """Every check's name, in order of first appearance."""
    names: dict[str, None] = {}
    for cp in checkpoints:
        for entry in cp.get("checks") or []:
            names.setdefault(str(entry.get("check", "?")), None)
    return list(names)


def _entry(cp: dict, name: str) -> dict | None:
    return next((e for e in cp.get("checks") or [] if str(e.get("check", "?")) == name), None)


def _problem(cp: dict, entry: dict | None) -> str | None:
    """Why a check has no numbers at a checkpoint (the checkpoint or the check failed)."""
    for source in (cp, entry or {}):
        if source.get("problem"):
            return str(source["problem"])
    return None


def _nodes(entry: dict | None) -> dict:
    nodes = (entry or {}).get("nodes")
    return nodes if isinstance(nodes, dict) else {}


def _node_names(checkpoints: Sequence[dict], name: str) -> list[str]:
    """The nodes a check measured at any checkpoint, in order of first appearance."""
    names: dict[str, None] = {}
    for cp in checkpoints:
        for node in _nodes(_entry(cp, name)):
            names.setdefault(str(node), None)
    return list(names)


def _step_text(cp: dict) -> str:
    step = _num(cp.get("step"))
    return MISSING if step is None else f"{step:g}" if step != int(step) else str(int(step))


# -- cells shared by the terminal table and Markdown -------------------------------------

def _fixed(value: object, digits: int = 2) -> str:
    """A number with `digits` decimals ('-0.00' shown as '0.00'), or '—'."""
    number = _num(value)
    if number is None:
        return MISSING
    text = f"{number:.{digits}f}"
    return text[1:] if text.startswith("-") and text.lstrip("-0.") == "" else text


def _faithfulness_text(entry: dict) -> str:
    """'0.97 [0.95, 0.99]', or without the interval where there is none."""
    text = _fixed(entry.get("faithfulness"))
    interval = entry.get("interval")
    if text != MISSING and isinstance(interval, (list, tuple)) and len(interval) == 2:
        low, high = (_num(v) for v in interval)
        if low is not None and high is not None:
            text += f" [{_fixed(low)}, {_fixed(high)}]"
    return text


def _check_cells(cp: dict, name: str) -> tuple[str, str, str]:
    """(faithfulness [95%], m(model), result) of one check at one checkpoint; result is
    'pass', 'FAIL', 'error' (it did not run: see the problems) or '—' (not run there)."""
    entry = _entry(cp, name)
    if _problem(cp, entry):
        return "error", MISSING, "error"
    if entry is None:
        return MISSING, MISSING, MISSING
    m_model = _num(entry.get("m_model"))
    passed = entry.get("passed")
    mark = "pass" if passed is True else "FAIL" if passed is False else MISSING
    return _faithfulness_text(entry), MISSING if m_model is None else f"{m_model:.3g}", mark


def _discovered_text(cp: dict) -> str:
    found = cp.get("discovered")
    if not isinstance(found, dict):
        return MISSING
    if found.get("problem"):
        return "error"
    parts = []
    if _num(found.get("edges")) is not None:
        parts.append(f"{int(found['edges'])} edges")
    if _num(found.get("faithfulness")) is not None:
        parts.append(f"f {found['faithfulness']:.2f}")
    return ", ".join(parts) or MISSING


def _training_keys(checkpoints: Sequence[dict]) -> list[str]:
    """The numbers the training run recorded at its checkpoints (trainer_state.json: a
    loss), in first-seen order: shown beside the circuit's, since the point of tracking
    is to see the circuit form where the loss moves."""
    keys: list[str] = []
    for cp in checkpoints:
        training = cp.get("training")
        for key in training if isinstance(training, dict) else ():
            if key not in keys:
                keys.append(key)
    return keys


def _training_cells(cp: dict, keys: Sequence[str]) -> list[str]:
    training = cp.get("training") if isinstance(cp.get("training"), dict) else {}
    return [_fixed(training.get(key), 4) for key in keys]


def _has_discovered(checkpoints: Sequence[dict]) -> bool:
    return any(isinstance(cp.get("discovered"), dict) for cp in checkpoints)


def _heading(result: dict, checkpoints: Sequence[dict]) -> str:
    """The table's title (how it ran is a line of its own: it can be long)."""
    return f"{result.get('file') or 'circuit'}: {len(checkpoints)} checkpoints"


def grouped_warnings(result: dict) -> list[str]:
    """Each warning of the result once, with the steps and checks where it occurred, as
    lines for a terminal (`circ track` prints them on stderr)."""
    checkpoints = _checkpoints(result)
    names = _check_names(checkpoints)
    return [f"at step{'s' if len(steps) > 1 else ''} {_steps_list(steps)}"
            + (f" ({', '.join(checks)})" if checks else "") + f": {message}"
            for message, (steps, checks) in _grouped(checkpoints, names, "warnings").items()]


# -- terminal ----------------------------------------------------------------------------

def track_table(result: dict) -> Table:
    """A rich table with one row per checkpoint (step, name) and, per check, its
    faithfulness with the 95% interval, m(model) and pass/FAIL, plus what discovery found
    where it ran: read down a column to see when the circuit forms and when its check
    starts to pass. Unmeasured values are '—'; a check that failed to run is 'error'."""
    from rich.markup import escape as markup
    from rich.table import Table

    checkpoints = _checkpoints(result)
    names = _check_names(checkpoints)
    table = Table(title=markup(_heading(result, checkpoints)), title_justify="left",
                  min_width=None if checkpoints else 60)
    table.add_column("step", justify="right")
    table.add_column("checkpoint")
    training = _training_keys(checkpoints)
    for key in training:
        table.add_column(markup(key), justify="right")
    for name in names:
        table.add_column(f"{markup(name)}\nfaithfulness [95%]", justify="right")
        table.add_column("m(model)", justify="right")
        table.add_column("result")
    discovered = _has_discovered(checkpoints)
    if discovered:
        table.add_column("discovered", justify="right")
    style = {"pass": "[green]pass[/]", "FAIL": "[red]FAIL[/]", "error": "[red]error[/]"}
    for cp in checkpoints:
        row = [_step_text(cp), markup(str(cp.get("name", MISSING))), *_training_cells(cp, training)]
        for name in names:
            faithfulness, m_model, mark = _check_cells(cp, name)
            row += [style.get(faithfulness, markup(faithfulness)), m_model, style.get(mark, mark)]
        if discovered:
            row.append(style.get(_discovered_text(cp), _discovered_text(cp)))
        table.add_row(*row)
    if not checkpoints:
        table.caption = "no checkpoints in this result: nothing to show"
    elif not names:
        table.caption = "no checks were run on these checkpoints"
    return table


# -- Markdown ----------------------------------------------------------------------------

def _md(text: object) -> str:
    """Text safe inside a Markdown table cell (no pipe or line break ends it)."""
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _md_table(header: Sequence[str], rows: Iterable[Sequence[str]], left: Iterable[int] = ()) -> list[str]:
    """A Markdown table; numbers are right-aligned, the columns in `left` left-aligned."""
    left = set(left)
    lines = ["| " + " | ".join(_md(h) for h in header) + " |",
             "|" + "|".join("---" if i in left else "---:" for i in range(len(header))) + "|"]
    return lines + ["| " + " | ".join(_md(c) for c in row) + " |" for row in rows]


def _steps_list(steps: Sequence[str]) -> str:
    """'100, 120, 140', shortened to the first and last few when there are many."""
    if len(steps) <= 8:
        return ", ".join(steps)
    return f"{', '.join(steps[:5])}, …, {', '.join(steps[-2:])} ({len(steps)} checkpoints)"


def _grouped(checkpoints: Sequence[dict], names: Sequence[str], key: str) -> dict[str, tuple[list, list]]:
    """message -> (steps, checks) where it occurred: warnings (key 'warnings') or problems
    (key 'problem'); a message repeated at many checkpoints is listed once."""
    found: dict[str, tuple[list, list]] = {}

    def add(message: object, cp: dict, check: str) -> None:
        steps, checks = found.setdefault(str(message), ([], []))
        label = _step_text(cp) if _step_text(cp) != MISSING else str(cp.get("name", "?"))
        if label not in steps:
            steps.append(label)
        if check and check not in checks:
            checks.append(check)

    for cp in checkpoints:
        if key == "problem" and cp.get("problem"):
            add(cp["problem"], cp, "")
            continue
        for name in names:
            entry = _entry(cp, name) or {}
            messages = entry.get(key) if key == "warnings" else [entry.get(key)]
            for message in messages or []:
                if message:
                    add(message, cp, name)
    return found


def track_markdown(result: dict) -> str:
    """A Markdown report of how the circuit forms: which file and how it ran; one table row
    per checkpoint with each check's faithfulness [95%], m(model) and result (and what
    discovery found); per check, each node's necessity (faithfulness lost when the node is
    removed) by step, to see which component arrives when; the transitions between
    checkpoints; and problems and warnings, each listed once with the steps where it
    occurred (so a warning repeated at 12 checkpoints is one line, not 12)."""
    checkpoints = _checkpoints(result)
    names = _check_names(checkpoints)
    lines = [f"# How the circuit forms: {result.get('file') or 'circuit'}", ""]
    if result.get("file"):
        lines.append(f"- file: `{result['file']}`")
    if result.get("how"):
        lines.append(f"- ran: {result['how']}")
    steps = [_step_text(cp) for cp in checkpoints]
    lines.append(f"- checkpoints: {len(checkpoints)}" + (f" (steps {steps[0]} to {steps[-1]})" if steps else ""))
    if not checkpoints:
        return "\n".join([*lines, "", "No checkpoints in this result: nothing to show.", ""])

    training = _training_keys(checkpoints)
    header = ["step", "checkpoint", *training]
    for name in names:
        header += [f"{name}: faithfulness [95%]", f"{name}: m(model)", f"{name}: result"]
    discovered = _has_discovered(checkpoints)
    header += ["discovered"] if discovered else []
    rows = []
    for cp in checkpoints:
        row = [_step_text(cp), str(cp.get("name", MISSING)), *_training_cells(cp, training)]
        for name in names:
            faithfulness, m_model, mark = _check_cells(cp, name)
            row += [faithfulness, m_model, "**FAIL**" if mark == "FAIL" else mark]
        rows.append(row + ([_discovered_text(cp)] if discovered else []))
    text_columns = [1, *(4 + len(training) + 3 * i for i in range(len(names)))]
    lines += ["", "## Checks", "", *_md_table(header, rows, left=text_columns)]
    if not names:
        lines += ["", "No checks were run on these checkpoints."]

    for name in names:
        nodes = _node_names(checkpoints, name)
        if not nodes:
            continue
        rows = []
        for cp in checkpoints:
            entry = _entry(cp, name)
            values = _nodes(entry)
            failed = _problem(cp, entry) is not None
            rows.append([_step_text(cp), *("error" if failed else _fixed(values.get(n)) for n in nodes)])
        lines += ["", f"## Per-node necessity: {name}", "",
                  "Faithfulness lost when the node is removed from the circuit.", "",
                  *_md_table(["step", *nodes], rows)]

    transitions = [t for t in result.get("transitions") or [] if isinstance(t, dict)]
    if transitions:
        lines += ["", "## Transitions", ""]
        for t in transitions:
            summary = t.get("summary") or f"step {t.get('from_step')} -> {t.get('to_step')}"
            lines.append(f"- {' '.join(str(summary).split())}")
    for title, key in (("Problems", "problem"), ("Warnings", "warnings")):
        groups = _grouped(checkpoints, names, key)
        if groups:
            lines += ["", f"## {title}", ""]
            for message, (where, checks) in groups.items():
                about = f" ({', '.join(checks)})" if checks else ""
                at = f"step{'s' if len(where) > 1 else ''} {_steps_list(where)}"
                lines.append(f"- {' '.join(message.split())} — at {at}{about}")
    return "\n".join(lines) + "\n"


# -- SVG ---------------------------------------------------------------------------------

def _attr(text: object) -> str:
    return escape(str(text), {'"': "&quot;"})


def _short(text: str, limit: int = 44) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _step_label(step: float) -> str:
    """A compact tick label: 143000 -> '143k', 2000000 -> '2M'."""
    if abs(step) >= 1e6 and step % 1e5 == 0:
        return f"{step / 1e6:g}M"
    if abs(step) >= 1e4 and step % 100 == 0:
        return f"{step / 1e3:g}k"
    return f"{round(step, 10) + 0.0:g}"


@dataclass(frozen=True)
class _StepAxis:
    """Training step -> a position in [0, 1]: linear, log (steps > 0 spanning more than an
    order of magnitude: checkpoints are usually dense where things change, early) or symlog (the same with a step 0: log10(1 + step / c), c the
    smallest positive step, so 0 still shows)."""

    scale: str
    low: float
    high: float
    c: float = 1.0

    def t(self, step: float) -> float:
        return (step if self.scale == "linear" else
                math.log10(step) if self.scale == "log" else math.log10(1 + step / self.c))

    def frac(self, step: float) -> float:
        return (self.t(step) - self.low) / (self.high - self.low)

    @property
    def title(self) -> str:
        return {"linear": "training step",
                "log": "training step (log scale)",
                "symlog": f"training step (symlog scale, linear below {_step_label(self.c)})"}[self.scale]

    def candidates(self, most: int) -> list[tuple[int, float]]:
        """(priority, step) tick candidates; lower priority numbers are kept first."""
        if self.scale == "linear":
            return [(0, s) for s in nice_ticks(self.low, self.high, most, whole=self.high - self.low >= 4)]
        lo_step = 10 ** self.low if self.scale == "log" else self.c * (10 ** self.low - 1)
        hi_step = 10 ** self.high if self.scale == "log" else self.c * (10 ** self.high - 1)
        out = [(0, 0.0)] if self.scale == "symlog" else []
        smallest = self.c if self.scale == "symlog" else lo_step
        for exponent in range(math.floor(math.log10(smallest)), math.ceil(math.log10(hi_step)) + 1):
            out += [(0 if m == 1 else m, m * 10.0 ** exponent) for m in (1, 2, 5)]
        out = [(p, s) for p, s in out if lo_step - 1e-9 <= s <= hi_step + 1e-9]
        decades = [c for c in out if c[0] == 0]
        return decades if len(decades) >= 4 else out  # 2x and 5x only where decades are few


def _step_axis(steps: Sequence[float]) -> _StepAxis:
    if not steps:
        return _StepAxis("linear", 0.0, 1.0)
    low, high = min(steps), max(steps)
    positive = [s for s in steps if s > 0]
    if low >= 0 and positive and high / min(positive) > 10:
        axis = _StepAxis("log", 0, 1) if low > 0 else _StepAxis("symlog", 0, 1, min(positive))
        t_low, t_high = axis.t(low), axis.t(high)
        pad = 0.03 * (t_high - t_low)
        return _StepAxis(axis.scale, t_low - pad, t_high + pad, axis.c)
    if high == low:
        half = max(1.0, abs(low) * 0.1)
        return _StepAxis("linear", low - half, high + half)
    pad = 0.03 * (high - low)
    return _StepAxis("linear", low - pad, high + pad)


@dataclass(frozen=True)
class _Series:
    """One line of the plot: a check's faithfulness (thick, markers) or one node's
    necessity under a check (thin)."""

    kind: str
    check: str
    node: str
    points: tuple[tuple[float, float | None], ...]
    colour: str
    dash: str
    width: float
    marker: str | None


def _series(checkpoints: Sequence[dict], names: Sequence[str]) -> tuple[list[_Series], list[str]]:
    """Every line to draw, and the nodes that get their own colour: those with the largest
    necessity anywhere, as many as the palette has; the others are grey."""
    def at(cp: dict, name: str, node: str | None) -> float | None:
        entry = _entry(cp, name)
        if entry is None or _problem(cp, entry):
            return None
        return _num(entry.get("faithfulness") if node is None else _nodes(entry).get(node))

    timed = sorted(((s, cp) for cp in checkpoints if (s := _num(cp.get("step"))) is not None),
                   key=lambda pair: pair[0])
    peak: dict[str, float] = {}
    for name in names:
        for node in _node_names(checkpoints, name):
            values = [abs(v) for _, cp in timed if (v := at(cp, name, node)) is not None]
            peak[node] = max([peak.get(node, -1.0), *values])
    named = sorted(peak, key=lambda n: -peak[n])[: len(PALETTE)]
    colours = {node: PALETTE[i] for i, node in enumerate(n for n in peak if n in named)}
    out = []
    for i, name in enumerate(names):
        dash = DASHES[i % len(DASHES)]
        out.append(_Series("faithfulness", name, "", tuple((s, at(cp, name, None)) for s, cp in timed),
                           "#000000", dash, 2.5, MARKERS[i % len(MARKERS)]))
        for node in _node_names(checkpoints, name):
            out.append(_Series("node", name, node, tuple((s, at(cp, name, node)) for s, cp in timed),
                               colours.get(node, OTHER), dash, 1.2, None))
    return out, [n for n in peak if n in colours]


def _marker(shape: str, x: float, y: float, colour: str, r: float = 3.5) -> str:
    if shape == "square":
        return f'<rect x="{x - r:.1f}" y="{y - r:.1f}" width="{2 * r:.1f}" height="{2 * r:.1f}" fill="{colour}"/>'
    if shape in ("diamond", "triangle"):
        pts = ([(x, y - r - 1), (x + r + 1, y), (x, y + r + 1), (x - r - 1, y)] if shape == "diamond"
               else [(x, y - r - 1), (x + r + 1, y + r), (x - r - 1, y + r)])
        return f'<polygon points="{" ".join(f"{a:.1f},{b:.1f}" for a, b in pts)}" fill="{colour}"/>'
    return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r}" fill="{colour}"/>'


def _path(points: Sequence[tuple[float, float | None]], px: Callable, py: Callable) -> tuple[str, list]:
    """SVG path data that breaks where a value is missing, and the points that stand alone
    (no neighbour to draw a line to: they get a dot instead)."""
    runs: list[list[tuple[float, float]]] = [[]]
    for x, y in points:
        if y is None:
            runs.append([])
        else:
            runs[-1].append((px(x), py(y)))
    runs = [r for r in runs if r]
    data = " ".join("M" + " L".join(f"{x:.1f},{y:.1f}" for x, y in run) for run in runs)
    return data, [run[0] for run in runs if len(run) == 1]


def track_svg(result: dict, title: str = "") -> str:
    """A standalone SVG of how the circuit forms against training step: each check's
    faithfulness as a thick black line with markers and its 95% interval as a whisker
    (checks told apart by dash and marker), each node's necessity under that check as a
    thin coloured line (same node, same colour; nodes beyond the palette share a grey),
    and a dotted vertical line where a transition says the circuit changed. The y range
    covers every value, with gridlines at 0 and 1; missing values break a line. The legend
    sits right of the plot; tick labels are thinned so none overlap."""
    checkpoints = _checkpoints(result)
    names = _check_names(checkpoints)
    title = title or f"How the circuit forms: {result.get('file') or 'circuit'}"
    series, coloured = _series(checkpoints, names)
    steps = sorted({x for s in series for x, _ in s.points} |
                   {s for cp in checkpoints if (s := _num(cp.get("step"))) is not None})
    axis = _step_axis(steps)
    # the y range is the values' (and 0..1), not the intervals': a checkpoint where the
    # model barely does the task has an interval of several units that would flatten
    # every line; such whiskers are cut at the plot's edge (the table has them whole)
    values = [y for s in series for _, y in s.points if y is not None]
    y_low, y_high = min([0.0, *values]), max([1.0, *values])
    pad = 0.05 * (y_high - y_low)
    y_low, y_high = y_low - pad, y_high + pad

    plot_w, plot_h = 560.0, 300.0
    y_ticks_all = nice_ticks(y_low, y_high, max(2, int(plot_h // (2.2 * FONT))))
    y_left_w = max(text_width(f"{v:g}") for v in [*y_ticks_all, 0.0, 1.0])
    left = 8 + FONT + 10 + y_left_w + 8
    top = 46.0
    right, bottom = left + plot_w, top + plot_h

    def px(step: float) -> float:
        return left + axis.frac(step) * plot_w

    def py(value: float) -> float:
        return bottom - (value - y_low) / (y_high - y_low) * plot_h

    widest = max((text_width(_step_label(s)) + 0.6 * FONT for s in steps), default=30)
    x_ticks = thin(axis.candidates(max(2, int(plot_w // (widest + 14)))) if steps else [],
                    px, lambda s: text_width(_step_label(s)), 10)
    y_ticks = faithfulness_ticks(y_low, y_high, py, plot_h)

    parts: list[str] = []
    for value in sorted({*y_ticks_all, 0.0, 1.0}):
        stroke = "#999" if value in (0.0, 1.0) else "#e4e4e4"
        parts.append(f'<line class="grid" x1="{left:.1f}" x2="{right:.1f}" y1="{py(value):.1f}" '
                     f'y2="{py(value):.1f}" stroke="{stroke}"/>')
    for value in y_ticks:
        parts.append(f'<text class="ytick" x="{left - 8:.1f}" y="{py(value) + 0.35 * FONT:.1f}" '
                     f'font-size="{FONT}" text-anchor="end">{value + 0.0:g}</text>')
    for step in x_ticks:
        parts.append(f'<line x1="{px(step):.1f}" x2="{px(step):.1f}" y1="{bottom:.1f}" y2="{bottom + 4:.1f}" '
                     f'stroke="#666"/><text class="xtick" x="{px(step):.1f}" y="{bottom + 6 + FONT:.1f}" '
                     f'font-size="{FONT}" text-anchor="middle">{escape(_step_label(step))}</text>')
    parts.append(f'<rect class="plot-area" x="{left:.1f}" y="{top:.1f}" width="{plot_w:.1f}" '
                 f'height="{plot_h:.1f}" fill="none" stroke="#999"/>')

    changes = [x for t in result.get("transitions") or [] if isinstance(t, dict) and _circuit_changed(t)
               if (x := _num(t.get("to_step"))) is not None and steps and steps[0] <= x <= steps[-1]]
    for step in changes:
        parts.append(f'<line class="transition" x1="{px(step):.1f}" x2="{px(step):.1f}" y1="{top:.1f}" '
                     f'y2="{bottom:.1f}" stroke="#888" stroke-dasharray="1,3"/>')

    for s in sorted(series, key=lambda s: s.kind == "faithfulness"):  # thick lines on top
        data, alone = _path(s.points, px, py)
        if not data:
            continue
        dash = f' stroke-dasharray="{s.dash}"' if s.dash else ""
        parts.append(f'<path class="series {s.kind}" data-check="{_attr(s.check)}"'
                     + (f' data-node="{_attr(s.node)}"' if s.node else "")
                     + f' d="{data}" fill="none" stroke="{s.colour}" stroke-width="{s.width}"{dash}/>')
        if s.kind == "faithfulness":
            parts += [_marker(s.marker or "circle", px(x), py(y), s.colour) for x, y in s.points if y is not None]
            parts += _whiskers(checkpoints, s.check, px, py, (y_low, y_high))
        else:
            parts += [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="1.8" fill="{s.colour}"/>' for x, y in alone]

    legend = _legend_rows(series, names, coloured, bool(changes))
    lx = right + max(24.0, max((text_width(_step_label(s)) / 2 for s in x_ticks), default=0) + 14)
    legend_w = max((28 + text_width(text) for text, *_ in legend), default=0)
    for i, (text, colour, dash, width, marker) in enumerate(legend):
        y = top + 8 + 16 * i
        if colour is None:  # a section header
            parts.append(f'<text class="legend" x="{lx:.1f}" y="{y + 4:.1f}" font-size="{FONT}" '
                         f'font-weight="bold">{escape(text)}</text>')
            continue
        stroke = f' stroke-dasharray="{dash}"' if dash else ""
        parts.append(f'<line class="legend" x1="{lx:.1f}" x2="{lx + 22:.1f}" y1="{y:.1f}" y2="{y:.1f}" '
                     f'stroke="{colour}" stroke-width="{width}"{stroke}/>')
        if marker:
            parts.append(_marker(marker, lx + 11, y, colour, 3))
        parts.append(f'<text class="legend" x="{lx + 28:.1f}" y="{y + 4:.1f}" font-size="{FONT}">'
                     f'{escape(text)}</text>')
    if not checkpoints or not values:
        parts.append(f'<text x="{(left + right) / 2:.1f}" y="{(top + bottom) / 2:.1f}" font-size="{FONT + 2}" '
                     f'text-anchor="middle" fill="#666">'
                     f'{"no checkpoints to plot" if not checkpoints else "no measured values to plot"}</text>')

    x_title_y = bottom + 6 + FONT + 12 + FONT
    width = max(lx + legend_w + 12, text_width(title, 14) + 24)
    height = max(x_title_y + 12, top + 8 + 16 * len(legend) + 8)
    head = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
            f'viewBox="0 0 {width:.0f} {height:.0f}" font-family="sans-serif" font-size="{FONT}">',
            f'<rect width="{width:.0f}" height="{height:.0f}" fill="white"/>',
            f'<text class="title" x="{width / 2:.1f}" y="24" text-anchor="middle" font-size="14">'
            f'{escape(title)}</text>',
            f'<text class="axis-title" x="{(left + right) / 2:.1f}" y="{x_title_y:.1f}" font-size="{FONT}" '
            f'text-anchor="middle">{escape(axis.title)}</text>',
            f'<text class="axis-title" x="{8 + FONT:.1f}" y="{(top + bottom) / 2:.1f}" font-size="{FONT}" '
            f'transform="rotate(-90 {8 + FONT:.1f} {(top + bottom) / 2:.1f})" text-anchor="middle">'
            f'faithfulness / node necessity</text>']
    return "\n".join([*head, *parts, "</svg>"]) + "\n"


def _circuit_changed(transition: dict) -> bool:
    """Whether a transition's discovered circuits differ (a line in the plot marks it)."""
    return any(transition.get(key) for key in ("added_edges", "removed_edges", "added_nodes", "removed_nodes"))


def _whiskers(checkpoints: Sequence[dict], name: str, px: Callable, py: Callable,
              y_range: tuple[float, float] = (-math.inf, math.inf)) -> list[str]:
    """A vertical bar over each faithfulness marker for its 95% interval, cut to `y_range`."""
    out = []
    for cp in checkpoints:
        entry, step = _entry(cp, name), _num(cp.get("step"))
        interval = (entry or {}).get("interval")
        if step is None or _problem(cp, entry) or not isinstance(interval, (list, tuple)) or len(interval) != 2:
            continue
        low, high = (_num(v) for v in interval)
        if low is not None and high is not None:
            low, high = max(low, y_range[0]), min(high, y_range[1])
            out.append(f'<line class="interval" x1="{px(step):.1f}" x2="{px(step):.1f}" y1="{py(low):.1f}" '
                       f'y2="{py(high):.1f}" stroke="#000" stroke-opacity="0.45" stroke-width="1"/>')
    return out


def _legend_rows(series: Sequence[_Series], names: Sequence[str], coloured: Sequence[str],
                 changes: bool) -> list[tuple[str, str | None, str, float, str | None]]:
    """(text, colour, dash, width, marker) per legend row; colour None marks a header."""
    rows: list[tuple[str, str | None, str, float, str | None]] = []
    drawn = [s for s in series if any(y is not None for _, y in s.points)]
    checks = [s for s in drawn if s.kind == "faithfulness"]
    if checks:
        rows.append(("faithfulness (thick)", None, "", 0, None))
        rows += [(_short(s.check), s.colour, s.dash, s.width, s.marker) for s in checks]
    nodes = [s for s in drawn if s.kind == "node"]
    if nodes:
        rows.append(("node necessity (thin)", None, "", 0, None))
        several = len(names) > 1
        for s in nodes:
            if s.node in coloured:
                rows.append((_short(f"{s.node} · {s.check}" if several else s.node), s.colour, s.dash, s.width, None))
        for name in names:
            others = [s for s in nodes if s.check == name and s.node not in coloured]
            if others:
                label = f"{len(others)} other nodes" + (f" · {name}" if several else "")
                rows.append((_short(label), OTHER, others[0].dash, others[0].width, None))
    if changes:
        rows.append(("circuit changed (transition)", "#888", "1,3", 1, None))
    return rows

"""Evaluation reports for people and tools: a terminal table (rich), JSON, Markdown.

The JSON layout is documented in docs/evaluation.md ("The report's JSON") and versioned
by `SCHEMA_VERSION`; per-example metric values are included there.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from typing import Sequence

from .results import CheckReport, CircuitReport, Interval
from .sensitivity import flagged

SCHEMA_VERSION = 2


def _num(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else round(value, 6)


def _span(value: dict | Interval | None) -> list | None:
    """An interval as [low, high] (rounded), or null."""
    if value is None:
        return None
    low, high = (value.low, value.high) if isinstance(value, Interval) else (value["low"], value["high"])
    return [_num(low), _num(high)]


def undefined(report: CircuitReport) -> dict[str, str]:
    """Why each measure that is not a finite number has no value (shown instead of NaN)."""
    reasons = {}
    for key in ("m_model", "m_empty", "m_circuit", "faithfulness", "gap", "effect_se"):
        if not math.isfinite(getattr(report, key)):
            reasons[key] = "the metric is not a finite number on these examples"
    if not math.isfinite(report.ratio):
        reasons["ratio"] = (f"m(model) = 0 under {report.metric}" if report.m_model == 0
                            else "the metric is not a finite number on these examples")
    return reasons


def fixed(value: float | None, digits: int = 4) -> str:
    """A number with `digits` decimals, or `undefined` where it is not finite."""
    if value is None or not math.isfinite(value):
        return "undefined"
    return f"{value:.{digits}f}"


def report_json(report: CircuitReport) -> dict:
    data = asdict(report)
    data["per_example"] = {k: [_finite(v) for v in values] for k, values in data["per_example"].items()}
    for key in ("m_model", "m_empty", "m_circuit", "faithfulness", "ratio", "gap", "effect_se"):
        data[key] = _num(data[key])
    data["faithfulness_interval"] = _span(data["faithfulness_interval"])
    for key in ("edges", "nodes"):
        data[key] = [{"name": c["name"], "delta": _num(c["delta"]), "superfluous": c["superfluous"],
                      "interval": _span(c["interval"])} for c in data[key]]
    if data["completeness"] is not None:
        data["completeness"]["interval"] = _span(data["completeness"]["interval"])
    data["strong"] = [{"name": c["name"], "delta": _num(c["delta"]), "subset": list(c["subset"]),
                       "superfluous": c["superfluous"]} for c in data["strong"]]
    data["sensitivity"] = [{"name": row["name"], "role": row["role"], "flagged": row["flagged"],
                            "values": {a: _num(v) for a, v in row["values"]}} for row in data["sensitivity"]]
    if data["completeness"] is not None:
        data["completeness"]["worst_gap"] = _finite(data["completeness"]["worst_gap"])
        data["completeness"]["samples"] = _json_safe(data["completeness"]["samples"])
    data["undefined"] = undefined(report)
    data["warnings"] = list(report.warnings)
    data["notes"] = list(report.notes)
    return data


def _finite(value: float | None) -> float | None:
    """A value as measured (not rounded), or None where it is not finite."""
    return value if value is None or math.isfinite(value) else None


def _json_safe(value):
    """A value with every non-finite float replaced by null, at any depth (not rounded)."""
    if isinstance(value, float):
        return _finite(value)
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    return value


def checks_json(path: str, checks: Sequence[CheckReport], problems: Sequence = ()) -> dict:
    return {
        "schema": SCHEMA_VERSION,
        "file": path,
        "passed": all(c.passed for c in checks) and not problems,
        "checks": [{"circuit": c.circuit.circuit, "task": c.circuit.task, "passed": c.passed,
                    "expectations": [{"text": r.text, "passed": r.passed, "value": _num(r.value), "detail": r.detail,
                                      "interval": _span(r.interval), "note": r.note} for r in c.results],
                    "report": report_json(c.circuit)} for c in checks],
    }


def report_text(data: dict) -> str:
    """A report's JSON text: indented, and never NaN or Infinity (invalid JSON)."""
    return json.dumps(data, indent=2, allow_nan=False)


def value_text(value: float | None, span: Interval | None = None) -> str:
    """A measured value with its 95% interval when there is one: `0.9512 [0.93, 0.97]`."""
    if value is None:
        return ""
    if not math.isfinite(value):
        return "undefined"
    if span is None or not (math.isfinite(span.low) and math.isfinite(span.high)):
        return f"{value:.4f}"
    return f"{value:.4f} [{span.low:.2f}, {span.high:.2f}]"


def _summary_rows(report: CircuitReport) -> list[tuple[str, str]]:
    why = undefined(report)
    ratio = f"undefined ({why['ratio']})" if "ratio" in why else fixed(report.ratio)
    return [
        ("model / task", f"{report.model} / {report.task} ({report.n_examples} examples)"),
        ("ablation / metric", f"{report.ablation} / {report.metric}"),
        ("m(model), m(empty), m(circuit)",
         f"{fixed(report.m_model)}, {fixed(report.m_empty)}, {fixed(report.m_circuit)}"),
        ("m(model) - m(empty), standard error", f"{fixed(report.m_model - report.m_empty)}, {fixed(report.effect_se)}"),
        ("faithfulness [95% interval]", value_text(report.faithfulness, report.faithfulness_interval)),
        ("ratio m(C)/m(M), gap abs(m(M) - m(C))", f"{ratio}, {fixed(report.gap)}"),
    ]


def markdown(path: str, checks: Sequence[CheckReport]) -> str:
    lines = [f"# circuitlang report: {path}", ""]
    for check in checks:
        status = "PASS" if check.passed else "FAIL"
        lines += [f"## check {check.circuit.circuit} on {check.circuit.task} ({check.circuit.ablation} ablation): "
                  f"{status}", "",
                  "| expectation | result | value [95% interval] | detail |", "|---|---|---|---|"]
        for r in check.results:
            detail = r.detail + (f" ({r.note})" if r.note else "")
            lines.append(f"| `{r.text}` | {'pass' if r.passed else 'FAIL'} | {value_text(r.value, r.interval)} | "
                         f"{_cell(detail)} |")
        said = [f"> **warning:** {_cell(w)}" for w in check.circuit.warnings]
        said += [f"> note: {_cell(n)}" for n in check.circuit.notes]
        lines += [""] + said + ([""] if said else [])
        lines += _markdown_report(check.circuit)
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def _markdown_report(report: CircuitReport) -> list[str]:
    lines = ["| measure | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in _summary_rows(report)]
    if report.edges or report.nodes:
        lines += ["", "| edge or node | delta f [95% interval] | superfluous |", "|---|---|---|"]
        lines += [f"| `{c.name}` | {value_text(c.delta, c.interval)} | {'yes' if c.superfluous else ''} |"
                  for c in [*report.edges, *report.nodes]]
    if report.strong:
        lines += ["", "| node | strong minimality: widest delta f | with K removed |", "|---|---|---|"]
        lines += [f"| `{c.name}` | {fixed(c.delta)} | {_cell(', '.join(c.subset) or '(none)')} |" for c in report.strong]
    if report.completeness:
        c = report.completeness
        lines += ["", f"Completeness: worst gap {value_text(c.worst_gap, c.interval)} for "
                      f"{{{', '.join(c.worst_subset)}}} ({len(c.samples)} subsets tried)."]
    rows = flagged(report.sensitivity)
    if rows:
        names = [a for a, _ in rows[0].values]
        lines += ["", "Ablation sensitivity (outside: share of the metric lost when the node alone is ablated "
                      "from the model; inside: delta f of the circuit):", "",
                  "| component | where | " + " | ".join(names) + " |", "|---" * (len(names) + 2) + "|"]
        lines += [f"| `{r.name}` | {r.role} | " + " | ".join(fixed(v, 3) for _, v in r.values) + " |" for r in rows]
    return lines + [""]


def print_terminal(console, path: str, checks: Sequence[CheckReport], details: bool = False) -> None:
    """Rich tables: per check, each expectation with its measured value; details on request."""
    from rich.markup import escape
    from rich.table import Table

    for check in checks:
        status = "[green]PASS[/]" if check.passed else "[red]FAIL[/]"
        table = Table(title=f"{path}: check {check.circuit.circuit} on {check.circuit.task} "
                            f"({check.circuit.ablation} ablation)  {status}",
                      title_justify="left")
        table.add_column("expectation")
        table.add_column("result")
        table.add_column("value [95%]", justify="right")
        table.add_column("detail")
        for r in check.results:
            detail = escape(r.detail) + (f"\n[yellow]{escape(r.note)}[/]" if r.note else "")
            table.add_row(escape(r.text), "[green]pass[/]" if r.passed else "[red]FAIL[/]",
                          value_text(r.value, r.interval), detail)
        if check.results:
            console.print(table)
        else:
            console.print(f"{path}: circuit {check.circuit.circuit} on {check.circuit.task} "
                          f"({check.circuit.ablation} ablation)")
        report = check.circuit
        console.print(f"  faithfulness {value_text(report.faithfulness, report.faithfulness_interval)}  "
                      f"(m(model) {fixed(report.m_model)}, m(empty) {fixed(report.m_empty)}, {report.ablation} ablation, "
                      f"{report.metric}, {report.n_examples} examples)")
        for key, why in undefined(report).items():
            console.print(f"  {key} undefined: {escape(why)}")
        for warning in report.warnings:
            console.print(f"  [yellow]warning[/]: {escape(warning)}")
        for note in report.notes:
            console.print(f"  note: {escape(note)}")
        if details:
            _print_details(console, check.circuit)


def _print_details(console, report: CircuitReport) -> None:
    from rich.markup import escape
    from rich.table import Table

    if report.edges or report.nodes:
        contributions = [*report.edges, *report.nodes]
        superfluous = any(c.superfluous for c in contributions)
        table = Table()
        table.add_column("edge or node")
        table.add_column("delta f [95%]", justify="right")
        if superfluous:
            table.add_column("note")
        for c in contributions:
            note = ["[yellow]superfluous[/]" if c.superfluous else ""] if superfluous else []
            table.add_row(escape(c.name), value_text(c.delta, c.interval), *note)
        console.print("minimality: what removing each costs (delta faithfulness)")
        console.print(table)
    if report.strong:
        table = Table()
        table.add_column("node")
        table.add_column("widest delta f", justify="right")
        table.add_column("with K removed")
        for c in report.strong:
            table.add_row(escape(c.name), fixed(c.delta), escape(", ".join(c.subset) or "(none)"))
        console.print("strong minimality: for each node, the node set K that makes it matter most")
        console.print(table)
    if report.completeness:
        c = report.completeness
        console.print(f"  completeness: worst gap {value_text(c.worst_gap, c.interval)} for "
                      f"{{{', '.join(c.worst_subset)}}} over {len(c.samples)} subsets")
    rows = flagged(report.sensitivity)
    if rows:
        table = Table()
        table.add_column("component")
        table.add_column("where")
        for name, _ in rows[0].values:
            table.add_column(name, justify="right")
        for row in rows:
            table.add_row(escape(row.name), row.role, *(fixed(v, 3) for _, v in row.values))
        console.print("ablation sensitivity: outside = share of the metric lost when the node alone is ablated "
                      "from the model; inside = delta f of the circuit")
        console.print(table)


def console_for(stream):
    """A rich Console on `stream`: on a terminal it fits the window; elsewhere (a CI log,
    a pipe, a file) it never wraps, so a `... PASS` line stays one line."""
    from rich.console import Console

    if stream.isatty():
        return Console(file=stream)
    return Console(file=stream, width=100_000, soft_wrap=True)

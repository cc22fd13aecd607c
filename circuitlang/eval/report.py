"""Evaluation reports for people and tools: a terminal table (rich), JSON, Markdown.

The JSON layout is documented in docs/evaluation.md ("The report's JSON") and versioned
by `SCHEMA_VERSION`; per-example metric values are included there.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from typing import Sequence

from .results import CheckReport, CircuitReport

SCHEMA_VERSION = 1


def _num(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else round(value, 6)


def report_json(report: CircuitReport) -> dict:
    data = asdict(report)
    for key in ("m_model", "m_empty", "m_circuit", "faithfulness", "ratio", "gap"):
        data[key] = _num(data[key])
    for key in ("edges", "nodes"):
        data[key] = [{"name": c["name"], "delta": _num(c["delta"]), "superfluous": c["superfluous"]}
                     for c in data[key]]
    return data


def checks_json(path: str, checks: Sequence[CheckReport], problems: Sequence = ()) -> dict:
    return {
        "schema": SCHEMA_VERSION,
        "file": path,
        "passed": all(c.passed for c in checks) and not problems,
        "checks": [{"circuit": c.circuit.circuit, "task": c.circuit.task, "passed": c.passed,
                    "expectations": [{"text": r.text, "passed": r.passed, "value": _num(r.value), "detail": r.detail}
                                     for r in c.results],
                    "report": report_json(c.circuit)} for c in checks],
    }


def report_text(data: dict) -> str:
    """A report's JSON text: indented, and never NaN or Infinity (invalid JSON)."""
    return json.dumps(data, indent=2, allow_nan=False)


def _summary_rows(report: CircuitReport) -> list[tuple[str, str]]:
    return [
        ("model / task", f"{report.model} / {report.task} ({report.n_examples} examples)"),
        ("ablation / metric", f"{report.ablation} / {report.metric}"),
        ("m(model), m(empty), m(circuit)", f"{report.m_model:.4f}, {report.m_empty:.4f}, {report.m_circuit:.4f}"),
        ("faithfulness", f"{report.faithfulness:.4f}"),
        ("ratio m(C)/m(M), gap abs(m(M) - m(C))", f"{report.ratio:.4f}, {report.gap:.4f}"),
    ]


def markdown(path: str, checks: Sequence[CheckReport]) -> str:
    lines = [f"# circuitlang report: {path}", ""]
    for check in checks:
        status = "PASS" if check.passed else "FAIL"
        lines += [f"## check {check.circuit.circuit} on {check.circuit.task} ({check.circuit.ablation} ablation): "
                  f"{status}", "",
                  "| expectation | result | value | detail |", "|---|---|---|---|"]
        for r in check.results:
            value = "" if r.value is None else f"{r.value:.4f}"
            lines.append(f"| `{r.text}` | {'pass' if r.passed else 'FAIL'} | {value} | {_cell(r.detail)} |")
        lines += ["", *_markdown_report(check.circuit)]
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def _markdown_report(report: CircuitReport) -> list[str]:
    lines = ["| measure | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in _summary_rows(report)]
    if report.edges or report.nodes:
        lines += ["", "| edge or node | delta f | superfluous |", "|---|---|---|"]
        lines += [f"| `{c.name}` | {c.delta:.4f} | {'yes' if c.superfluous else ''} |"
                  for c in [*report.edges, *report.nodes]]
    if report.completeness:
        c = report.completeness
        lines += ["", f"Completeness: worst gap {c.worst_gap:.4f} for {{{', '.join(c.worst_subset)}}} "
                      f"({len(c.samples)} subsets tried)."]
    return lines + [""]


def print_terminal(console, path: str, checks: Sequence[CheckReport], details: bool = False) -> None:
    """Rich tables: per check, each expectation with its measured value; details on request."""
    from rich.table import Table

    for check in checks:
        status = "[green]PASS[/]" if check.passed else "[red]FAIL[/]"
        table = Table(title=f"{path}: check {check.circuit.circuit} on {check.circuit.task} "
                            f"({check.circuit.ablation} ablation)  {status}",
                      title_justify="left")
        table.add_column("expectation")
        table.add_column("result")
        table.add_column("value", justify="right")
        table.add_column("detail")
        for r in check.results:
            value = "" if r.value is None else f"{r.value:.4f}"
            table.add_row(r.text, "[green]pass[/]" if r.passed else "[red]FAIL[/]", value, r.detail)
        if check.results:
            console.print(table)
        else:
            console.print(f"{path}: circuit {check.circuit.circuit} on {check.circuit.task} "
                          f"({check.circuit.ablation} ablation)")
        console.print(f"  faithfulness {check.circuit.faithfulness:.4f}  (m(model) {check.circuit.m_model:.4f}, "
                      f"m(empty) {check.circuit.m_empty:.4f}, {check.circuit.ablation} ablation, "
                      f"{check.circuit.metric})")
        if details:
            _print_details(console, check.circuit)


def _print_details(console, report: CircuitReport) -> None:
    from rich.table import Table

    if report.edges or report.nodes:
        contributions = [*report.edges, *report.nodes]
        flagged = any(c.superfluous for c in contributions)
        table = Table()
        table.add_column("edge or node")
        table.add_column("delta f", justify="right")
        if flagged:
            table.add_column("note")
        for c in contributions:
            note = ["[yellow]superfluous[/]" if c.superfluous else ""] if flagged else []
            table.add_row(c.name, f"{c.delta:.4f}", *note)
        console.print("minimality: what removing each costs (delta faithfulness)")
        console.print(table)
    if report.completeness:
        c = report.completeness
        console.print(f"  completeness: worst gap {c.worst_gap:.4f} for {{{', '.join(c.worst_subset)}}} "
                      f"over {len(c.samples)} subsets")

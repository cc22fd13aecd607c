"""Rendering diagnostics for people and tools: `full` (rustc/ruff style), `concise`, `json`.

>>> from circuitlang.lang.syntax import Span
>>> from circuitlang.core.diagnostics import Diagnostic
>>> d = Diagnostic("E201", "layer 12 does not exist in gpt2", Span("x.circ", 2, 3, 2, 9), "no layer 12",
...                "did you mean `L11.H3`?")
>>> print(render_full([d], {"x.circ": "model gpt2\\n  L12.H3 -> logits\\n"}, color=False))
error[E201]: layer 12 does not exist in gpt2
 --> x.circ:2:3
  |
2 |   L12.H3 -> logits
  |   ^^^^^^ no layer 12
  = help: did you mean `L11.H3`?
<BLANKLINE>
>>> render_concise([d])
'x.circ:2:3: E201 layer 12 does not exist in gpt2'
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Iterable, Mapping, TextIO

from ..core.diagnostics import Diagnostic
from ..core.paths import source_lines

_RED, _YELLOW, _BLUE, _BOLD, _RESET = "\033[31m", "\033[33m", "\033[34m", "\033[1m", "\033[0m"


def use_color(stream: TextIO) -> bool:
    """Colour only on a terminal, and never when NO_COLOR is set (no-color.org)."""
    return hasattr(stream, "isatty") and stream.isatty() and "NO_COLOR" not in os.environ


class _Sources:
    """Source text by path, read from disk on first use when not supplied."""

    def __init__(self, given: Mapping[str, str] | None):
        self.cache: dict[str, list[str] | None] = {k: source_lines(v) for k, v in (given or {}).items()}

    def line(self, path: str, number: int) -> str | None:
        if path not in self.cache:
            try:
                self.cache[path] = source_lines(Path(path).read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError):
                self.cache[path] = None
        lines = self.cache[path]
        if lines is None or not 1 <= number <= len(lines):
            return None
        return lines[number - 1]


def render_full(diagnostics: Iterable[Diagnostic], sources: Mapping[str, str] | None = None,
                color: bool = False) -> str:
    """Every diagnostic with its source line, a caret underline, help and related spans."""
    src = _Sources(sources)
    blocks = [_render_one(d, src, color) for d in diagnostics]
    return "\n".join(blocks)


def _paint(text: str, code: str, color: bool) -> str:
    return f"{code}{text}{_RESET}" if color else text


def _render_one(d: Diagnostic, src: _Sources, color: bool) -> str:
    tone = _RED if d.is_error else _YELLOW
    head = _paint(f"{d.severity}[{d.code}]", _BOLD + tone, color) + _paint(f": {d.message}", _BOLD, color)
    out = [head]
    span = d.span
    gutter = len(str(span.line)) if span.line else 1
    bar = _paint(" " * gutter + " |", _BLUE, color)
    out.append(f"{' ' * gutter}{_paint('-->', _BLUE, color)} {span}" if span.line else f" --> {span.path}")
    text = src.line(span.path, span.line) if span.line else None
    if text is not None and ("\x00" in text or d.code in ("E003", "E004")):
        text = None  # a binary or huge file: no snippet
    if text is not None and len(text) > _MAX_SNIPPET:
        text, span = _window(text, span)
    if text is not None:
        start = max(span.column, 1)
        end = span.end_column if span.end_line == span.line and span.end_column > start else len(text) + 1
        width = max(1, min(end, len(text) + 1) - start)
        marker = " " * (start - 1) + "^" * width
        out += [bar, _paint(f"{span.line:>{gutter}} |", _BLUE, color) + f" {text}",
                bar + " " + _paint(marker + (f" {d.label}" if d.label else ""), tone, color)]
    for rel in d.related:
        out.append(f"{' ' * gutter} = note: {rel.message} at {rel.span}")
    if d.help:
        out.append(f"{' ' * gutter} = help: {d.help}")
    return "\n".join(out) + "\n"


_MAX_SNIPPET = 200


def _window(text: str, span):
    """A long line cut to the part around the span, so a minified file stays readable."""
    from ..core.spans import Span

    start = max(0, span.column - 1 - 60)
    piece = text[start:start + _MAX_SNIPPET]
    prefix = "..." if start else ""
    shift = start - len(prefix)
    moved = Span(span.path, span.line, span.column - shift,
                 span.end_line, span.end_column - shift if span.end_line == span.line else span.end_column)
    return prefix + piece + ("..." if start + _MAX_SNIPPET < len(text) else ""), moved


def render_concise(diagnostics: Iterable[Diagnostic]) -> str:
    """One line each: `path:line:col: CODE message` (what editors and grep want)."""
    return "\n".join(f"{d.span}: {d.code} {d.message}" for d in diagnostics)


def to_json(d: Diagnostic) -> dict:
    """A diagnostic as a JSON object (documented in docs/diagnostics.md)."""
    return {
        "code": d.code,
        "severity": d.severity,
        "message": d.message,
        "path": d.span.path,
        "line": d.span.line,
        "column": d.span.column,
        "end_line": d.span.end_line,
        "end_column": d.span.end_column,
        "label": d.label or None,
        "help": d.help,
        "related": [{"message": r.message, "path": r.span.path, "line": r.span.line, "column": r.span.column}
                    for r in d.related],
    }


def render_json(diagnostics: Iterable[Diagnostic]) -> str:
    return json.dumps([to_json(d) for d in diagnostics], indent=2)


def summary(diagnostics: list[Diagnostic], files: int) -> str:
    errors = sum(d.is_error for d in diagnostics)
    warnings = len(diagnostics) - errors
    plural = lambda n, w: f"{n} {w}{'' if n == 1 else 's'}"  # noqa: E731
    return f"{plural(files, 'file')} checked: {plural(errors, 'error')}, {plural(warnings, 'warning')}"


def write_diagnostics(diagnostics: list[Diagnostic], fmt: str, stream: TextIO = sys.stdout,
                      sources: Mapping[str, str] | None = None) -> None:
    if fmt == "json":
        stream.write(render_json(diagnostics) + "\n")
    elif fmt == "concise":
        if diagnostics:
            stream.write(render_concise(diagnostics) + "\n")
    else:
        if diagnostics:
            stream.write(render_full(diagnostics, sources, use_color(stream)) + "\n")

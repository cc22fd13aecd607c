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
import re
import sys
import unicodedata
from pathlib import Path
from typing import Iterable, Mapping, TextIO

from ..core.diagnostics import Diagnostic
from ..core.paths import not_regular_file, source_lines

_RED, _YELLOW, _BLUE, _BOLD, _RESET = "\033[31m", "\033[33m", "\033[34m", "\033[1m", "\033[0m"


def use_color(stream: TextIO) -> bool:
    """Colour only on a terminal, and never when NO_COLOR is set (no-color.org)."""
    return hasattr(stream, "isatty") and stream.isatty() and "NO_COLOR" not in os.environ


def _no_bom(text: str) -> str:
    """The text as the parser saw it: a UTF-8 byte-order mark is not part of line 1."""
    return text[1:] if text.startswith("\ufeff") else text


class _Sources:
    """Source text by path, read from disk on first use when not supplied."""

    def __init__(self, given: Mapping[str, str] | None):
        self.cache: dict[str, list[str] | None] = {k: source_lines(_no_bom(v)) for k, v in (given or {}).items()}

    def line(self, path: str, number: int) -> str | None:
        if path not in self.cache:
            try:
                # only a regular file: reading a named pipe or a device could block
                if not_regular_file(os.stat(path).st_mode) is not None:
                    raise OSError("not a regular file")
                self.cache[path] = source_lines(_no_bom(Path(path).read_text(encoding="utf-8")))
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
    head = _paint(f"{d.severity}[{d.code}]", _BOLD + tone, color) + _paint(f": {_safe(d.message)}", _BOLD, color)
    out = [head]
    span = d.span
    gutter = len(str(span.line)) if span.line else 1
    bar = _paint(" " * gutter + " |", _BLUE, color)
    out.append(f"{' ' * gutter}{_paint('-->', _BLUE, color)} {_safe(str(span))}" if span.line
               else f" --> {_safe(span.path)}")
    text = src.line(span.path, span.line) if span.line else None
    if text is not None and ("\x00" in text or d.code in ("E003", "E004")):
        text = None  # a binary or huge file: no snippet
    if text is not None and len(text) > _MAX_SNIPPET:
        text, span = _window(text, span)
    if text is not None:
        start = min(max(span.column, 1), len(text) + 1)
        end = span.end_column if span.end_line == span.line and span.end_column > start else len(text) + 1
        end = min(end, len(text) + 1)
        shown, at = _display(text)
        marker = " " * at[start - 1] + "^" * max(1, at[end - 1] - at[start - 1])
        out += [bar, _paint(f"{span.line:>{gutter}} |", _BLUE, color) + f" {shown}",
                bar + " " + _paint(marker + (f" {_safe(d.label)}" if d.label else ""), tone, color)]
    for rel in d.related:
        out.append(f"{' ' * gutter} = note: {_safe(rel.message)} at {rel.span}")
    if d.help:
        out.append(f"{' ' * gutter} = help: {_safe(d.help)}")
    return "\n".join(out) + "\n"


_MAX_SNIPPET = 200
_TAB = "    "
# Control characters and bidirectional overrides a message may quote from a hostile file
# (a string holding a terminal escape): shown as U+FFFD, never sent to the terminal.
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _safe(text: str) -> str:
    return _UNSAFE.sub("\ufffd", text)


def _display(text: str) -> tuple[str, list[int]]:
    """A source line as printed, and the display column where each character (and the
    end of the line) starts, so the caret lines up: tabs become four spaces, wide (East
    Asian) characters take two columns, and control characters (a terminal escape, a
    bidirectional override) are shown as U+FFFD rather than sent to the terminal."""
    pieces: list[str] = []
    at = [0]
    for ch in text:
        if ch == "\t":
            piece, width = _TAB, len(_TAB)
        elif not ch.isprintable():
            piece, width = "\ufffd", 1
        else:
            piece, width = ch, 2 if unicodedata.east_asian_width(ch) in "WF" else 1
        pieces.append(piece)
        at.append(at[-1] + width)
    return "".join(pieces), at


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
    return "\n".join(_safe(f"{d.span}: {d.code} {d.message}") for d in diagnostics)


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

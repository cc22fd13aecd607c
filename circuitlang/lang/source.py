"""Reading a .circ file as text: refusing binary, undecodable, oversized and endless input.

The first thing that can go wrong with a file is the file itself; each problem is a
diagnostic at the place it was found (E001-E004).
"""

from __future__ import annotations

from pathlib import Path

from ..core.diagnostics import Diagnostic
from . import syntax as S

MAX_FILE_BYTES = 16 * 1024 * 1024


def read_source(path: Path, display: str | None = None) -> tuple[str | None, list[Diagnostic]]:
    """Read a file as UTF-8 text, refusing binary, undecodable and oversized files."""
    shown = display or str(path)
    here = S.Span(shown, 1, 1, 1, 1)
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            return None, [_too_large(here, f"{size / 2**20:.1f} MiB")]
        with path.open("rb") as handle:  # devices and pipes report size 0: read at most the limit
            data = handle.read(MAX_FILE_BYTES + 1)
        if len(data) > MAX_FILE_BYTES:
            return None, [_too_large(here, "more than that")]
    except OSError as err:
        return None, [Diagnostic("E001", f"cannot read file: {err.strerror or err}", here)]
    if b"\x00" in data:
        offset = data.index(b"\x00")
        line = data.count(b"\n", 0, offset) + 1
        column = offset - (data.rfind(b"\n", 0, offset) + 1) + 1
        return None, [Diagnostic("E003", "file is binary (it contains NUL bytes)",
                                 S.Span(shown, line, column, line, column + 1), "NUL byte",
                                 "a .circ file is UTF-8 text")]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        line_start = data.rfind(b"\n", 0, err.start) + 1
        column = len(data[line_start:err.start].decode("utf-8", errors="replace")) + 1
        return None, [Diagnostic("E002", f"byte 0x{data[err.start]:02x} is not valid UTF-8",
                                 S.Span(shown, line, column, line, column + 1), "invalid byte",
                                 "save the file as UTF-8")]
    if text.startswith("\ufeff"):
        text = text[1:]
    return text, []


def _too_large(here: S.Span, size: str) -> Diagnostic:
    return Diagnostic("E004", f"file is {size}; the limit is {MAX_FILE_BYTES // 2**20} MiB", here, "too large",
                      "split it into files that import each other")



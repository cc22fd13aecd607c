"""Reading a .circ file as text: refusing binary, undecodable, oversized and endless input.

The first thing that can go wrong with a file is the file itself; each problem is a
diagnostic at the place it was found (E001-E004).
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

from ..core.diagnostics import Diagnostic
from ..core.paths import not_regular_file
from . import syntax as S

MAX_FILE_BYTES = 16 * 1024 * 1024


def read_source(path: Path, display: str | None = None) -> tuple[str | None, list[Diagnostic]]:
    """Read a file as UTF-8 text, refusing binary, undecodable and oversized files, and
    anything that is not a regular file (a named pipe would block the reader forever,
    a device never ends): those are refused from their metadata, never opened."""
    shown = display or str(path)
    here = S.Span(shown, 1, 1, 1, 1)
    try:
        info = path.stat()
        kind = not_regular_file(info.st_mode)
        if kind is not None:
            return None, [Diagnostic("E001", f"cannot read file: it is {kind}, not a regular file", here,
                                     help="a .circ file is a regular file; save the text to one")]
        size = info.st_size
        if size > MAX_FILE_BYTES:
            return None, [_too_large(here, f"{size / 2**20:.1f} MiB")]
        with path.open("rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as err:
        return None, [Diagnostic("E001", f"cannot read file: {err.strerror or err}", here)]
    return decode_source(data, shown)


def read_stream(stream: BinaryIO, display: str = "<stdin>") -> tuple[str | None, list[Diagnostic]]:
    """Read standard input (or any byte stream) by the rules of `read_source`: at most the
    size limit, then the same checks for NUL bytes, UTF-8 and a byte-order mark."""
    here = S.Span(display, 1, 1, 1, 1)
    try:
        data = stream.read(MAX_FILE_BYTES + 1)
    except OSError as err:
        return None, [Diagnostic("E001", f"cannot read {display}: {err.strerror or err}", here)]
    if len(data) > MAX_FILE_BYTES:
        return None, [_too_large(here, "more than that")]
    return decode_source(data, display)


def decode_source(data: bytes, shown: str) -> tuple[str | None, list[Diagnostic]]:
    """The bytes of a .circ file as text: NUL bytes are E003, bytes that are not UTF-8 are
    E002, and a UTF-8 byte-order mark is dropped."""
    if len(data) > MAX_FILE_BYTES:
        return None, [_too_large(S.Span(shown, 1, 1, 1, 1), "more than that")]
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



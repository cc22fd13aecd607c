"""Where something is in a source file: `Span`, carried by syntax trees and diagnostics.

>>> str(Span("a.circ", 3, 5, 3, 9))
'a.circ:3:5'
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Span:
    """A region of a source file: 1-based line and column, end exclusive."""

    path: str
    line: int
    column: int
    end_line: int
    end_column: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}"


NO_SPAN = Span("<generated>", 0, 0, 0, 0)

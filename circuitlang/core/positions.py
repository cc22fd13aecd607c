"""A token position on an edge, as a value: `Position(anchor, offset)`.

`@END` is `Position("END")`, `@S1+1` is `Position("S1", 1)`, `@3` is `Position(3)` (the
absolute position 3) and `@-1` is `Position(-1)` (counted back from END: END itself).
The parser makes these once; everything after it (lowering, checks, the engines,
writing .circ text back) reads the fields instead of re-parsing text. Positions compare
as written: `@END` and `@-1` are different positions even where a task puts END last,
because a circuit does not know its task.

>>> Position.parse("S1+1"), str(Position("S1", 1)), str(Position(-1)), str(Position("S2", -3))
(Position(anchor='S1', offset=1), 'S1+1', '-1', 'S2-3')
>>> Position.parse("END").is_named, Position.parse("-2").is_named
(True, False)
"""

from __future__ import annotations

import re
from typing import NamedTuple

_TEXT = re.compile(r"(?P<anchor>[A-Za-z_]\w*|-?\d+)(?P<offset>[+-]\d+)?")


class Position(NamedTuple):
    """A named anchor (`"END"`, `"S1"`) or an integer index, plus an offset."""

    anchor: str | int
    offset: int = 0

    @property
    def is_named(self) -> bool:
        """Whether the anchor is a name the task defines (else an index)."""
        return isinstance(self.anchor, str)

    def __str__(self) -> str:
        """As written after `@`: `END`, `S1+1`, `S2-3`, `3`, `-1`."""
        if self.offset > 0:
            return f"{self.anchor}+{self.offset}"
        if self.offset < 0:
            return f"{self.anchor}{self.offset}"
        return str(self.anchor)

    @staticmethod
    def parse(text: str) -> "Position":
        """The position written `@TEXT` (without the `@`); ValueError if it is not one."""
        match = _TEXT.fullmatch(text)
        if match is None:
            raise ValueError(f"not a position: @{text}")
        anchor: str | int = match["anchor"]
        if anchor[0] in "-0123456789":
            anchor = int(anchor)
        return Position(anchor, int(match["offset"] or 0))

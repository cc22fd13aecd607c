"""The one error root: every error circuitlang raises on purpose is a `CircuitlangError`.

It carries a one-line `message` (what is wrong) and an optional `help` (what to do).
The command line prints both and exits 1 (2 for a usage error); anything that is not a
`CircuitlangError` is an internal error (exit 2, one line; the traceback with --debug).

>>> err = CircuitlangError("no zoo model `zoo:x`", "the zoo has: induction-2l")
>>> str(err), err.help
('no zoo model `zoo:x`', 'the zoo has: induction-2l')
"""

from __future__ import annotations


class CircuitlangError(Exception):
    """A problem circuitlang explains: `message` says what, `help` (optional) what to do."""

    def __init__(self, message: str, help: str | None = None):
        super().__init__(message)
        self.message = message
        self.help = help

    def __str__(self) -> str:
        return self.message

"""How core values show themselves in a notebook, without core importing the layers that
draw: the drawing layer (present.notebook) registers a function per kind of value here,
and `_repr_svg_` / `_repr_html_` of core values ask this registry. Nothing registered
(present not imported): Jupyter falls back to the short `__repr__`.
"""

from __future__ import annotations

from typing import Callable

_SHOW: dict[tuple[type, str], Callable[[object], str | None]] = {}


def register(kind: type, mime: str, show: Callable[[object], str | None]) -> None:
    """Show values of `kind` as `mime` ("svg" or "html") with `show` (None: cannot)."""
    _SHOW[(kind, mime)] = show


def shown(value: object, mime: str) -> str | None:
    """`value` as `mime` by the registered function, or None."""
    show = _SHOW.get((type(value), mime))
    return show(value) if show is not None else None

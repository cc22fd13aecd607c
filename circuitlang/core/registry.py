"""One registry per extensible thing: a name -> entry table that explains a wrong name.

The ablations (`core/ablations`), the metrics (`core/metrics`), the discovery methods
(`discovery/methods`) and the task-data generators (`eval/tasks`) are each one
`Registry`. Packages of entries fill theirs with `collect`, which imports every module
of the package and takes its `ENTRY`: adding an entry is adding one file.

>>> r = Registry("colour", [("red", 1), ("green", 2)])
>>> r.names(), r["green"]
(('red', 'green'), 2)
>>> r["gren"]
Traceback (most recent call last):
...
circuitlang.core.registry.UnknownName: unknown colour `gren`; did you mean `green`?
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
from typing import Generic, Iterable, Iterator, TypeVar

from .errors import CircuitlangError

T = TypeVar("T")


class UnknownName(CircuitlangError, KeyError):
    """A name no entry of a registry has; the message suggests the closest one."""

    def __str__(self) -> str:
        return self.message


class Registry(Generic[T]):
    """Entries by name, in the order they were given (the order help texts list them)."""

    def __init__(self, what: str, entries: Iterable[tuple[str, T]]):
        self.what = what
        self._entries: dict[str, T] = {}
        for name, entry in entries:
            if name in self._entries:
                raise ValueError(f"two {what}s are named `{name}`")
            self._entries[name] = entry

    def names(self) -> tuple[str, ...]:
        return tuple(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __getitem__(self, name: str) -> T:
        if name not in self._entries:
            close = difflib.get_close_matches(name, self._entries, n=1, cutoff=0.6)
            hint = f"; did you mean `{close[0]}`?" if close else ""
            raise UnknownName(f"unknown {self.what} `{name}`{hint}",
                              f"{self.what}s: {', '.join(self._entries)}")
        return self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def values(self) -> list[T]:
        return list(self._entries.values())

    def items(self) -> list[tuple[str, T]]:
        return list(self._entries.items())


def collect(package: str, what: str) -> Registry:
    """A registry of the `ENTRY` of every module in `package`, ordered by the entries'
    `rank` (then name). Each entry has `name` and `rank` attributes."""
    root = importlib.import_module(package)
    entries = []
    for info in pkgutil.iter_modules(root.__path__):
        module = importlib.import_module(f"{package}.{info.name}")
        entry = getattr(module, "ENTRY", None)
        if entry is not None:
            entries.append(entry)
    entries.sort(key=lambda e: (e.rank, e.name))
    return Registry(what, [(e.name, e) for e in entries])

"""The task-data generators a task can call (`data induction(seq_len = 16)`), and
`task_data`, which turns a task of a compiled file into examples.

>>> GENERATORS.names()
('induction', 'mod_sum', 'random_tokens', 'ioi', 'greater_than')
"""

from __future__ import annotations

import os
from pathlib import Path

from ...core.registry import Registry
from ...lang.check import TaskSpec
from ..backends.base import Backend
from . import stdlib, zoo
from .base import Generator, TaskData, TaskError
from .jsonl import load_jsonl

GENERATORS: Registry[Generator] = Registry("data generator", [*zoo.GENERATORS.items(), *stdlib.GENERATORS.items()])


def task_data(spec: TaskSpec, backend: Backend, seed: int | None = None) -> TaskData:
    """The examples a TaskSpec names: a generator call or a JSONL file.

    `seed`, when given, overrides every seed (the task's and the generator call's).
    A problem without a JSONL line of its own is located at the `task` block.
    """
    try:
        return _task_data(spec, backend, seed)
    except TaskError as err:
        if err.path is not None or not spec.span.line:
            raise
        raise TaskError(err.message, str(spec.span), None, err.help) from None


def _task_data(spec: TaskSpec, backend: Backend, seed: int | None) -> TaskData:
    if isinstance(spec.data, str):
        return load_jsonl(shown_path(spec.base_dir / spec.data), backend, spec.name)
    if spec.data is None:
        raise TaskError(f"task `{spec.name}` has no data")
    name, kwargs = spec.data
    if name not in GENERATORS:
        raise TaskError(f"no data generator `{name}`", help=f"generators: {', '.join(sorted(GENERATORS))}")
    kwargs = {"seed": spec.seed, **kwargs}
    if seed is not None:
        kwargs["seed"] = seed
    _check_count(kwargs.get("n"))
    try:
        data = GENERATORS[name](backend, **kwargs)
    except TypeError as err:
        raise TaskError(f"generator `{name}` rejected its arguments: {err}") from None
    except (RuntimeError, ValueError, IndexError, OverflowError) as err:
        raise TaskError(f"generator `{name}` cannot make these examples: {err}",
                        help="check the generator's arguments (docs/evaluation.md, \"Generators\")") from None
    return TaskData(data.clean, data.corrupt, data.answer, data.wrong, data.positions, spec.name, data.lengths)


def _check_count(n: object) -> None:
    """A generator's `n` (when given) is a whole number of examples, at least 1: a task
    with no examples has no metric to average."""
    if n is None:
        return
    whole = not isinstance(n, bool) and isinstance(n, (int, float)) and float(n).is_integer()
    if not whole or n < 1:
        raise TaskError(f"`n` must be a whole number of examples, at least 1, not {n!r}",
                        help="e.g. `data induction(seq_len = 16, n = 64)`")


def shown_path(path: Path) -> Path:
    """A data file's path as people read it: relative to the working folder when it lies
    below it (`data/bad.jsonl`), else as it is."""
    try:
        relative = os.path.relpath(path)
    except ValueError:  # another drive (Windows)
        return path
    return Path(relative) if not relative.startswith("..") else path

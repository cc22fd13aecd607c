"""The task-data generators a task can call (`data induction(seq_len = 16)`), and
`task_data`, which turns a task of a compiled file into examples.

>>> GENERATORS.names()
('induction', 'mod_sum', 'random_tokens', 'ioi', 'greater_than')
"""

from __future__ import annotations

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
    """
    if isinstance(spec.data, str):
        return load_jsonl(spec.base_dir / spec.data, backend, spec.name)
    if spec.data is None:
        raise TaskError(f"task `{spec.name}` has no data")
    name, kwargs = spec.data
    if name not in GENERATORS:
        raise TaskError(f"no data generator `{name}`", help=f"generators: {', '.join(sorted(GENERATORS))}")
    kwargs = {"seed": spec.seed, **kwargs}
    if seed is not None:
        kwargs["seed"] = seed
    try:
        data = GENERATORS[name](backend, **kwargs)
    except TypeError as err:
        raise TaskError(f"generator `{name}` rejected its arguments: {err}") from None
    return TaskData(data.clean, data.corrupt, data.answer, data.wrong, data.positions, spec.name)

"""The metrics a task can name (`metric logit_diff`): one file each, collected into `METRICS`.

A metric reads the next-token logits at each example's END position and gives one
number per circuit variant and example. Each file defines `ENTRY`, a `Metric`: its name,
what it computes (the docs' table is generated from these), what it assumes, and the
formula. The formulas take tensors and use only tensor methods, so this package (and
the static checks that validate `metric` settings) imports no torch.

Adding a metric: a file here with an `ENTRY` and a test; `circ`'s choices, the checks'
validation, discovery's refusals and docs/evaluation.md's table follow.
"""

from __future__ import annotations

from ..registry import Registry, collect
from .base import Metric

METRICS: Registry[Metric] = collect(__name__, "metric")
DEFAULT = "logit_diff"

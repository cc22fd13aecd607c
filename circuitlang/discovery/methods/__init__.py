"""The discovery methods: one file each (the algorithm and its `ENTRY`), collected into `METHODS`.

`exact` patches every edge alone; `eap` and `eap-ig` estimate the same with gradients;
`acdc` prunes the model receiver by receiver. Adding a method: a file here with an
`ENTRY` (a `base.Method`) and a test; `circ discover --method`, the refusals of metrics
and docs/discovery.md's table follow.
"""

from __future__ import annotations

from ...core.registry import Registry, collect
from .base import Method

METHODS: Registry[Method] = collect(__name__, "discovery method")
DEFAULT = "eap-ig"

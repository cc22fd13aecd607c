"""The ablations a task can name (`ablation resample`): one file each, collected into `ABLATIONS`.

An ablation says what a sender S sends along an edge that is cut: its ablated value
`abl_S`. Each file defines `ENTRY`, an `Ablation`: its name, what `abl_S` is (the docs'
table is generated from these) and how to compute the values for a task's batches from
the senders' outputs. Like the metrics, the code uses only tensor methods, so the static
checks can list and validate ablations without importing torch.

Adding an ablation: a file here with an `ENTRY` and a test.
"""

from __future__ import annotations

from ..registry import Registry, collect
from .base import Ablation

ABLATIONS: Registry[Ablation] = collect(__name__, "ablation")
DEFAULT = "resample"

"""docs/python.md runs: every ```python block, in order, in one namespace, from the
repository's root (its `assert`s are the checks)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest.importorskip("transformer_lens")

ROOT = Path(__file__).resolve().parent.parent
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def test_the_python_page_runs(monkeypatch) -> None:
    monkeypatch.chdir(ROOT)
    blocks = BLOCK.findall((ROOT / "docs" / "python.md").read_text(encoding="utf-8"))
    assert len(blocks) >= 6
    namespace: dict = {}
    for number, block in enumerate(blocks, 1):
        exec(compile(block, f"docs/python.md block {number}", "exec"), namespace)  # noqa: S102

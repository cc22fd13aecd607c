"""Shared test setup: offline model hubs, the repository root, golden-file comparison."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from hypothesis import settings

# Under CI the property tests run the same examples every time (a red build can be
# reproduced); locally they explore. CIRCUITLANG_EXPLORE=1 explores under CI too.
settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI") and not os.environ.get("CIRCUITLANG_EXPLORE"):
    settings.load_profile("ci")

# The test models are tiny: one thread beats two threads contending on a 2-core machine.
torch.set_num_threads(1)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def assert_golden(expected_path: Path, actual: str) -> None:
    """Compare `actual` with a golden file; `UPDATE_GOLDEN=1 pytest` rewrites the file instead.

    A missing golden file fails (and is written when updating), so a new fixture is
    always looked at once by a person before it guards anything.
    """
    if os.environ.get("UPDATE_GOLDEN") == "1":
        expected_path.write_text(actual, encoding="utf-8")
        return
    assert expected_path.exists(), f"missing golden file {expected_path}; run UPDATE_GOLDEN=1 pytest"
    expected = expected_path.read_text(encoding="utf-8")
    assert actual == expected, f"{expected_path.name} differs from the golden file (UPDATE_GOLDEN=1 to accept)"


@pytest.fixture
def root() -> Path:
    return ROOT

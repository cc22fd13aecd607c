"""Shared test setup: offline model hubs, the repository root, golden-file comparison."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, settings

# Hypothesis, configured here for every test. By default the property tests run the same
# examples every time (a red build can be reproduced, locally and in CI);
# CIRCUITLANG_EXPLORE=1 draws new ones (and keeps failures in .hypothesis/), and
# CIRCUITLANG_FUZZ_EXAMPLES=N runs N examples per property instead of each test's own count.
_QUIET = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture]
settings.register_profile("repeatable", derandomize=True, database=None, suppress_health_check=_QUIET)
settings.register_profile("explore", suppress_health_check=_QUIET)
settings.load_profile("explore" if os.environ.get("CIRCUITLANG_EXPLORE") == "1" else "repeatable")
_EXAMPLES = int(os.environ.get("CIRCUITLANG_FUZZ_EXAMPLES", "0")) or None


def examples(count: int, deadline_ms: int | None = 200) -> settings:
    """A property test's settings: `count` examples (or CIRCUITLANG_FUZZ_EXAMPLES), each
    within `deadline_ms` (None: no deadline), on top of the profile loaded above."""
    return settings(max_examples=_EXAMPLES or count, deadline=deadline_ms)

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


def load_script(name: str):
    """A script of scripts/ as a module (scripts are run by hand, not installed)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def root() -> Path:
    return ROOT

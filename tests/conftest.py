"""Shared test configuration.

Fixture vectors: read in place from the leanSpec fixtures directory. Where it is absent
the vector tests skip with one line saying how to get them, except under CI (``CI=true``)
where absence fails, so a skip can never hide a regression.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from lean_p2p.tools.spectest.locate import HOW_TO_GET, default_fixtures_root


def _running_in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@pytest.fixture(scope="session")
def leanspec_root() -> Path:
    """The leanSpec fixtures root; skips (or fails under CI) when absent."""
    root = default_fixtures_root()
    if not root.is_dir():
        if _running_in_ci():
            pytest.fail(f"CI=true and {root} is missing. {HOW_TO_GET}")
        pytest.skip(HOW_TO_GET)
    return root


@pytest.fixture(autouse=True)
def _heap_unfrozen_after_each_test() -> Iterator[None]:
    """A started node freezes the heap (its runtime policy): for a node's process that
    is the point, but a frozen object is invisible to ``gc.get_referrers``, which other
    tools in this test process rely on (hypothesis warns, and warnings are errors
    here). So every test leaves the heap as it found it."""
    yield
    if gc.get_freeze_count():
        gc.unfreeze()

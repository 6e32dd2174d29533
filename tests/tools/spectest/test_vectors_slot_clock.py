"""Every leanSpec ``slot_clock`` vector through the slot_clock plug-in: none may fail or skip."""

from __future__ import annotations

from pathlib import Path

import pytest

from lean_p2p.tools.spectest.formats import slot_clock
from lean_p2p.tools.spectest.runner import Outcome, run_file
from tests.leanspec import leanspec_params


@pytest.mark.parametrize("path", leanspec_params("slot_clock"))
def test_slot_clock_vector(leanspec_root: Path, path: Path | None) -> None:
    assert path is not None, f"{leanspec_root}/slot_clock holds no vector files"
    results = list(run_file(slot_clock.FORMAT, slot_clock.run_vector, path))
    assert results, f"{path} holds no fixtures"
    for result in results:
        assert result.outcome is Outcome.PASSED, f"{result.test_id}: {result.detail}"

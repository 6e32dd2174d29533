"""Every leanSpec ``state_transition`` vector through its plug-in: none may fail or skip."""

from __future__ import annotations

from pathlib import Path

import pytest

from lean_p2p.tools.spectest.formats import state_transition
from lean_p2p.tools.spectest.runner import Outcome, run_file
from tests.leanspec import leanspec_params


@pytest.mark.parametrize("path", leanspec_params("state_transition"))
def test_state_transition_vector(leanspec_root: Path, path: Path | None) -> None:
    assert path is not None, f"{leanspec_root}/state_transition holds no vector files"
    results = list(run_file(state_transition.FORMAT, state_transition.run_vector, path))
    assert results, f"{path} holds no fixtures"
    for result in results:
        assert result.outcome is Outcome.PASSED, f"{result.test_id}: {result.detail}"

"""Every leanSpec ``fork_choice`` vector through the fork_choice plug-in: none may fail or skip."""

from __future__ import annotations

from pathlib import Path

import pytest

from lean_p2p.spectest.formats import fork_choice
from lean_p2p.spectest.runner import Outcome, run_file
from tests.leanspec import leanspec_params


@pytest.mark.parametrize("path", leanspec_params("fork_choice"))
def test_fork_choice_vector(leanspec_root: Path, path: Path | None) -> None:
    assert path is not None, f"{leanspec_root}/fork_choice holds no vector files"
    results = list(run_file(fork_choice.FORMAT, fork_choice.run_vector, path))
    assert results, f"{path} holds no fixtures"
    for result in results:
        assert result.outcome is Outcome.PASSED, f"{result.test_id}: {result.detail}"

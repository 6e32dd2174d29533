"""Every leanSpec ``justifiability`` vector through its plug-in: none may fail or skip."""

from __future__ import annotations

from pathlib import Path

import pytest

from lean_p2p.tools.spectest.formats import justifiability
from lean_p2p.tools.spectest.runner import Outcome, run_file
from tests.leanspec import leanspec_params


@pytest.mark.parametrize("path", leanspec_params("justifiability"))
def test_justifiability_vector(leanspec_root: Path, path: Path | None) -> None:
    assert path is not None, f"{leanspec_root}/justifiability holds no vector files"
    results = list(run_file(justifiability.FORMAT, justifiability.run_vector, path))
    assert results, f"{path} holds no fixtures"
    for result in results:
        assert result.outcome is Outcome.PASSED, f"{result.test_id}: {result.detail}"

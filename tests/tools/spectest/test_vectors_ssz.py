"""Every leanSpec ``ssz`` vector through the ssz plug-in."""

from __future__ import annotations

from pathlib import Path

import pytest

from lean_p2p.tools.spectest.formats import ssz
from lean_p2p.tools.spectest.runner import Outcome, run_file
from tests.leanspec import leanspec_params


@pytest.mark.parametrize("path", leanspec_params("ssz"))
def test_ssz_vector(leanspec_root: Path, path: Path | None) -> None:
    assert path is not None, f"{leanspec_root}/ssz holds no vector files"
    results = list(run_file(ssz.FORMAT, ssz.run_vector, path))
    assert results, f"{path} holds no fixtures"
    for result in results:
        assert result.outcome is Outcome.PASSED, f"{result.test_id}: {result.detail}"

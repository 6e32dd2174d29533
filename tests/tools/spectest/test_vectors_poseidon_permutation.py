"""Every leanSpec ``poseidon_permutation`` vector through our C Poseidon: none may fail
or skip."""

from __future__ import annotations

from pathlib import Path

import pytest

from lean_p2p.tools.spectest.formats import poseidon_permutation
from lean_p2p.tools.spectest.runner import Outcome, run_file
from tests.leanspec import leanspec_params


@pytest.mark.parametrize("path", leanspec_params("poseidon_permutation"))
def test_poseidon_permutation_vector(leanspec_root: Path, path: Path | None) -> None:
    assert path is not None, f"{leanspec_root}/poseidon_permutation holds no vector files"
    results = list(run_file(poseidon_permutation.FORMAT, poseidon_permutation.run_vector, path))
    assert results, f"{path} holds no fixtures"
    for result in results:
        assert result.outcome is Outcome.PASSED, f"{result.test_id}: {result.detail}"

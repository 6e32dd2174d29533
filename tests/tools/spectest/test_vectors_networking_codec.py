"""Every leanSpec ``networking_codec`` vector through the networking_codec plug-in."""

from __future__ import annotations

from pathlib import Path

import pytest

from lean_p2p.tools.spectest.formats import networking_codec
from lean_p2p.tools.spectest.runner import Outcome, run_file
from tests.leanspec import leanspec_params


@pytest.mark.parametrize("path", leanspec_params("networking_codec"))
def test_networking_codec_vector(leanspec_root: Path, path: Path | None) -> None:
    assert path is not None, f"{leanspec_root}/networking_codec holds no vector files"
    results = list(run_file(networking_codec.FORMAT, networking_codec.run_vector, path))
    assert results, f"{path} holds no fixtures"
    for result in results:
        assert result.outcome is Outcome.PASSED, f"{result.test_id}: {result.detail}"

"""Collection-time helpers for tests parametrised over leanSpec vector files."""

from __future__ import annotations

from pathlib import Path

import pytest

from lean_p2p.tools.spectest.locate import default_fixtures_root

__all__ = ["leanspec_files", "leanspec_params"]


def leanspec_files(fmt: str) -> list[Path]:
    """All vector files of one format, for parametrising at collection time.

    Returns an empty list when the directory is absent; tests parametrised on it must
    also depend on ``leanspec_root`` (or use ``leanspec_params``) so absence is reported.
    """
    root = default_fixtures_root() / fmt
    return sorted(root.rglob("*.json")) if root.is_dir() else []


def leanspec_params(fmt: str) -> list[object]:
    """pytest params for every vector file of ``fmt``.

    When there are none, one ``None`` param stands in: the test must request the
    ``leanspec_root`` fixture (which skips, or fails under CI, when the fixtures are
    absent) and then fail on ``None`` (the fixtures exist but this format has no files).
    """
    files = leanspec_files(fmt)
    if files:
        return [
            pytest.param(path, id=str(path.relative_to(default_fixtures_root() / fmt)))
            for path in files
        ]
    return [pytest.param(None, id=f"{fmt}-missing")]

"""Where the tests find the XMSS vectors that scripts/gen_xmss_vectors.py makes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lean_p2p.tools.spectest.locate import HOW_TO_GET_XMSS, default_xmss_vectors_root


def generated_vector_files(format_name: str) -> list[Path]:
    """The JSON files of ``format_name``; skips with how to make them when there are none,
    and fails instead under CI, which always makes them."""
    root = default_xmss_vectors_root() / format_name
    files = sorted(root.rglob("*.json")) if root.is_dir() else []
    if not files:
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(f"CI=true and {root} holds no vectors. {HOW_TO_GET_XMSS}")
        pytest.skip(HOW_TO_GET_XMSS)
    return files

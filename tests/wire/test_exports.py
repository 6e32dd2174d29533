"""The curated public API of the codec packages: every name exported exists."""

from __future__ import annotations

import importlib

import pytest

from lean_p2p.containers import SSZError
from lean_p2p.wire import WireError


@pytest.mark.parametrize("package", ["lean_p2p.wire", "lean_p2p.containers"])
def test_all_names_resolve(package: str) -> None:
    module = importlib.import_module(package)
    missing = [name for name in module.__all__ if not hasattr(module, name)]
    assert missing == []
    assert len(set(module.__all__)) == len(module.__all__)


def test_one_error_hierarchy() -> None:
    assert issubclass(SSZError, WireError)

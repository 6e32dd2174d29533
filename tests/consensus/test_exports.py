"""The curated public API of lean_p2p.consensus: every name exists and is exported."""

from __future__ import annotations

from lean_p2p import consensus


def test_every_exported_name_exists() -> None:
    for name in consensus.__all__:
        assert hasattr(consensus, name), name
    assert len(set(consensus.__all__)) == len(consensus.__all__)
    assert consensus.__all__ == sorted(consensus.__all__, key=lambda n: (not n.isupper(), n))

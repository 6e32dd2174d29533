"""RootHistory: incremental root equals a full merkleization; forks do not interfere."""

from __future__ import annotations

import hashlib

import pytest

from lean_p2p.consensus.history import RootHistory
from lean_p2p.containers import HISTORICAL_ROOTS_LIMIT, merkleize_chunks, mix_in_length


def _roots(count: int, salt: bytes = b"") -> list[bytes]:
    return [hashlib.sha256(salt + i.to_bytes(4, "little")).digest() for i in range(count)]


def _full_root(roots: list[bytes]) -> bytes:
    return mix_in_length(merkleize_chunks(roots, HISTORICAL_ROOTS_LIMIT), len(roots))


@pytest.mark.parametrize("count", [0, 1, 2, 3, 4, 5, 31, 32, 33, 255, 256, 257, 1000])
def test_incremental_root_matches_full_merkleization(count: int) -> None:
    roots = _roots(count)
    one_by_one = RootHistory.empty()
    for root in roots:
        one_by_one = one_by_one.appended([root])
    assert one_by_one.hash_tree_root() == _full_root(roots)
    assert RootHistory.of(roots).hash_tree_root() == _full_root(roots)
    assert list(one_by_one) == roots


def test_forks_sharing_a_prefix_stay_independent() -> None:
    base = RootHistory.of(_roots(10))
    left = base.appended(_roots(3, b"left"))
    right = base.appended(_roots(5, b"right"))  # base is no longer the tip: copies
    longer_left = left.appended(_roots(1, b"more"))
    assert len(base) == 10 and len(left) == 13 and len(right) == 15
    assert base.hash_tree_root() == _full_root(_roots(10))
    assert left.hash_tree_root() == _full_root(_roots(10) + _roots(3, b"left"))
    assert right.hash_tree_root() == _full_root(_roots(10) + _roots(5, b"right"))
    assert longer_left[13] == _roots(1, b"more")[0]
    assert right[12] == _roots(5, b"right")[2]
    with pytest.raises(IndexError):
        base[10]


def test_rejects_bad_roots() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        RootHistory.empty().appended([b"short"])


def test_appending_the_same_roots_twice_shares_storage() -> None:
    base = RootHistory.of(_roots(10))
    first = base.appended(_roots(2, b"block"))
    again = base.appended(_roots(2, b"block"))  # same block processed twice
    assert again._items is first._items
    assert again.hash_tree_root() == first.hash_tree_root()
    fork = base.appended(_roots(2, b"other"))
    assert fork._items is not first._items
    assert first.hash_tree_root() == _full_root(_roots(10) + _roots(2, b"block"))
    assert fork.hash_tree_root() == _full_root(_roots(10) + _roots(2, b"other"))

"""Merkleization helpers against independently computed roots."""

from __future__ import annotations

import hashlib

import pytest

from lean_p2p.containers import ZERO_HASHES, merkleize, merkleize_chunks, mix_in_length, pack_bytes


def _sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _reference_root(chunks: list[bytes], limit: int) -> bytes:
    """Pad to a power of two with zero chunks, then hash level by level (slow, obvious)."""
    width = 1
    while width < max(limit, 1):
        width *= 2
    layer = chunks + [b"\x00" * 32] * (width - len(chunks))
    while len(layer) > 1:
        layer = [_sha(layer[i] + layer[i + 1]) for i in range(0, len(layer), 2)]
    return layer[0]


@pytest.mark.parametrize("count", [0, 1, 2, 3, 5, 8, 9])
@pytest.mark.parametrize("limit", [9, 16, 33])
def test_matches_reference(count: int, limit: int) -> None:
    chunks = [bytes([index + 1]) * 32 for index in range(count)]
    assert merkleize_chunks(chunks, limit) == _reference_root(chunks, limit)


def test_zero_hashes_chain() -> None:
    assert ZERO_HASHES[0] == b"\x00" * 32
    assert ZERO_HASHES[3] == _sha(ZERO_HASHES[2] + ZERO_HASHES[2])


def test_too_many_chunks_raise() -> None:
    with pytest.raises(ValueError):
        merkleize_chunks([b"\x00" * 32] * 3, 2)


def test_pack_and_mix_in_length() -> None:
    assert pack_bytes(b"") == []
    assert pack_bytes(b"\x01" * 33) == [b"\x01" * 32, b"\x01" + b"\x00" * 31]
    root = b"\x07" * 32
    assert mix_in_length(root, 5) == _sha(root + (5).to_bytes(32, "little"))


@pytest.mark.parametrize("size", [0, 1, 31, 32, 33, 63, 64, 65, 100, 1000])
@pytest.mark.parametrize("limit", [None, 64])
def test_merkleize_of_bytes_equals_merkleize_of_packed_chunks(size: int, limit: int | None) -> None:
    data = bytes(range(256)) * 4
    data = data[:size]
    assert merkleize(data, limit) == merkleize_chunks(pack_bytes(data), limit)


def test_merkleize_over_the_limit_raises() -> None:
    with pytest.raises(ValueError):
        merkleize(b"\x01" * 65, 2)

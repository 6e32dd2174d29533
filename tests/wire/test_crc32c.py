"""CRC-32C against a slow bit-by-bit reference and the RFC 3720 check values."""

from __future__ import annotations

import os

import pytest

from lean_p2p.wire.crc32c import crc32c, masked_crc32c


def _reference(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF


@pytest.mark.parametrize(
    ("data", "expected"),
    [(b"", 0), (b"123456789", 0xE3069283), (bytes(32), 0x8A9136AA), (b"\xff" * 32, 0x62A8AB43)],
)
def test_check_values(data: bytes, expected: int) -> None:
    assert crc32c(data) == expected


def test_matches_reference_on_random_data() -> None:
    data = os.urandom(1000)
    assert crc32c(data) == _reference(data)
    assert crc32c(memoryview(data)) == _reference(data)


def test_mask() -> None:
    crc = _reference(b"abc")
    rotated = ((crc >> 15) | (crc << 17)) & 0xFFFFFFFF
    assert masked_crc32c(b"abc") == (rotated + 0xA282EAD8) & 0xFFFFFFFF

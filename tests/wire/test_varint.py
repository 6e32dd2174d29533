"""Unsigned varints: boundaries and every way a varint can be bad."""

from __future__ import annotations

import pytest

from lean_p2p.wire.errors import VarintError
from lean_p2p.wire.varint import MAX_VARINT_VALUE, decode_varint, encode_varint, try_varint


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        (0, "00"),
        (1, "01"),
        (127, "7f"),
        (128, "8001"),
        (300, "ac02"),
        (MAX_VARINT_VALUE, "ffffffffffffffffff01"),
    ],
)
def test_known_encodings(value: int, encoded: str) -> None:
    assert encode_varint(value).hex() == encoded
    assert decode_varint(bytes.fromhex(encoded)) == (value, len(encoded) // 2)


def test_decode_at_an_offset_stops_at_the_varint_end() -> None:
    assert decode_varint(b"\xff\xac\x02\x99", 1) == (300, 3)


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x80",
        b"\x80\x80",
        b"\x80" * 11,  # longer than ten bytes
        b"\xff" * 9 + b"\x02",  # ten bytes but 2**64
    ],
    ids=["empty", "truncated", "truncated-2", "eleven-bytes", "overflow"],
)
def test_bad_varints_raise(raw: bytes) -> None:
    with pytest.raises(VarintError):
        decode_varint(raw)


def test_try_varint_waits_only_while_the_prefix_could_still_be_valid() -> None:
    assert try_varint(b"\x80" * 9) is None
    with pytest.raises(VarintError):
        try_varint(b"\x80" * 10)


@pytest.mark.parametrize("value", [-1, MAX_VARINT_VALUE + 1])
def test_encode_out_of_range_raises(value: int) -> None:
    with pytest.raises(ValueError):
        encode_varint(value)

"""Unsigned LEB128 varints (protobuf style) as req/resp and snappy use them. Any thread.

At most ten bytes, values below 2**64; anything longer, larger or cut short raises
:class:`~lean_p2p.wire.errors.VarintError`.
"""

from __future__ import annotations

from typing import Final

from lean_p2p.wire.errors import VarintError

__all__ = ["MAX_VARINT_BYTES", "MAX_VARINT_VALUE", "decode_varint", "encode_varint", "try_varint"]

MAX_VARINT_BYTES: Final = 10
MAX_VARINT_VALUE: Final = 2**64 - 1


def encode_varint(value: int) -> bytes:
    if not 0 <= value <= MAX_VARINT_VALUE:
        raise ValueError(f"{value} is not an unsigned 64-bit integer")
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def try_varint(data: bytes | bytearray, offset: int = 0) -> tuple[int, int] | None:
    """``(value, end)`` of the varint at ``offset``, or ``None`` if more bytes are needed.

    Raises :class:`VarintError` as soon as the bytes present cannot start a valid varint
    (over ten bytes, or a value of 2**64 or more), so a stream never waits on garbage.
    """
    value = 0
    shift = 0
    position = offset
    end = len(data)
    while position < end:
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            if value > MAX_VARINT_VALUE:
                raise VarintError(f"varint value {value} does not fit in 64 bits")
            return value, position
        shift += 7
        if position - offset >= MAX_VARINT_BYTES:
            raise VarintError(f"varint longer than {MAX_VARINT_BYTES} bytes")
    return None


def decode_varint(data: bytes | bytearray, offset: int = 0) -> tuple[int, int]:
    """``(value, end)`` of the complete varint at ``offset``; truncation is an error."""
    decoded = try_varint(data, offset)
    if decoded is None:
        raise VarintError("truncated varint")
    return decoded

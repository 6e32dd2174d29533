"""Snappy: raw blocks (gossip) and the framing format (req/resp). Any thread.

Compression of one block is done by cramjam's native snappy; the framing format (chunk
headers, masked CRC-32C, limits) is implemented here so that every length is checked
*before* the bytes are decompressed:

- a raw block's preamble (its uncompressed length) is compared with the limit first;
- in a frame stream, each compressed chunk's preamble is compared with what may still
  be produced (the declared length, or the limit) before that chunk is decompressed,
  so a stream that would expand past its declared length fails mid-way, and no
  decoder ever holds more than the limit plus one 64 KiB chunk.

Compressed output is valid snappy but not necessarily byte-identical to another
implementation's: snappy compression is not canonical (leanSpec's pure-Python
compressor picks different back-references for the same input).
"""

from __future__ import annotations

from typing import Final

import cramjam

from lean_p2p.wire.crc32c import masked_crc32c
from lean_p2p.wire.errors import SnappyError, VarintError
from lean_p2p.wire.varint import try_varint

__all__ = [
    "MAX_CHUNK_DATA",
    "MAX_PAYLOAD_SIZE",
    "STREAM_IDENTIFIER",
    "FrameReader",
    "compress_block",
    "compress_frames",
    "decompress_block",
    "decompress_frames",
]

#: The protocol's cap on an uncompressed payload (gossip and req/resp): 10 MiB.
MAX_PAYLOAD_SIZE: Final = 10 * 1024 * 1024
#: A frame chunk carries at most 64 KiB of uncompressed data.
MAX_CHUNK_DATA: Final = 65536
STREAM_IDENTIFIER: Final = b"\xff\x06\x00\x00sNaPpY"

_COMPRESSED: Final = 0x00
_UNCOMPRESSED: Final = 0x01
_PADDING: Final = 0xFE
_IDENTIFIER: Final = 0xFF
_CRC_BYTES: Final = 4
_HEADER_BYTES: Final = 4
# Snappy's worst-case expansion of n input bytes is 32 + n + n / 6.
_MAX_COMPRESSED_CHUNK: Final = _CRC_BYTES + 32 + MAX_CHUNK_DATA + MAX_CHUNK_DATA // 6
# Skippable chunks may in principle be 16 MiB long; we never buffer more than the
# largest data chunk, so larger ones are refused rather than held in memory.
_MAX_SKIPPABLE_CHUNK: Final = _MAX_COMPRESSED_CHUNK


def compress_block(data: bytes) -> bytes:
    """Raw snappy block (the gossip payload format)."""
    return bytes(cramjam.snappy.compress_raw(data))


def _block_length(block: bytes | bytearray) -> int:
    try:
        preamble = try_varint(block)
    except VarintError as error:
        raise SnappyError(f"bad snappy length preamble: {error.detail}") from None
    if preamble is None:
        raise SnappyError("snappy block too short for its length preamble")
    return preamble[0]


def _decompress_raw(block: bytes | bytearray, length: int) -> bytes:
    try:
        out = bytes(cramjam.snappy.decompress_raw(block))
    except Exception as error:  # cramjam raises its own DecompressionError
        raise SnappyError(f"corrupt snappy block: {error}") from None
    if len(out) != length:
        raise SnappyError(f"snappy block produced {len(out)} bytes, preamble said {length}")
    return out


def decompress_block(block: bytes, max_length: int = MAX_PAYLOAD_SIZE) -> bytes:
    """Decompress a raw block; its declared length is checked against ``max_length`` first."""
    length = _block_length(block)
    if length > max_length:
        raise SnappyError(f"snappy block declares {length} bytes, over the limit {max_length}")
    return _decompress_raw(block, length)


def compress_frames(data: bytes) -> bytes:
    """The snappy framing format: stream identifier, then chunks of at most 64 KiB.

    A chunk is stored compressed only when that is smaller than the raw data.
    """
    out = bytearray(STREAM_IDENTIFIER)
    view = memoryview(data)
    for start in range(0, len(data), MAX_CHUNK_DATA):
        piece = view[start : start + MAX_CHUNK_DATA]
        crc = masked_crc32c(piece).to_bytes(_CRC_BYTES, "little")
        compressed = bytes(cramjam.snappy.compress_raw(piece))
        if len(compressed) < len(piece):
            chunk_type, body = _COMPRESSED, compressed
        else:
            chunk_type, body = _UNCOMPRESSED, bytes(piece)
        out.append(chunk_type)
        out += (_CRC_BYTES + len(body)).to_bytes(3, "little")
        out += crc
        out += body
    return bytes(out)


class FrameReader:
    """Incremental decoder of one snappy frame stream (sans-IO).

    ``consume(buffer, position)`` reads as many whole chunks as the buffer holds and
    returns the position after them; call it again when more bytes arrived. With an
    ``expected_length`` the reader stops at the chunk that completes it
    (``complete``); without one it reads until the caller's input ends, up to ``limit``.
    """

    __slots__ = ("_expected", "_limit", "_parts", "_produced", "_started")

    def __init__(self, expected_length: int | None = None, limit: int = MAX_PAYLOAD_SIZE) -> None:
        if expected_length is not None and expected_length > limit:
            raise SnappyError(f"declared length {expected_length} is over the limit {limit}")
        self._expected = expected_length
        self._limit = limit if expected_length is None else expected_length
        self._parts: list[bytes] = []
        self._produced = 0
        self._started = False

    @property
    def started(self) -> bool:
        """Whether the stream identifier has been read."""
        return self._started

    @property
    def produced(self) -> int:
        return self._produced

    @property
    def complete(self) -> bool:
        return self._started and self._expected is not None and self._produced == self._expected

    def payload(self) -> bytes:
        return b"".join(self._parts)

    def consume(self, data: bytes | bytearray, position: int) -> int:
        end = len(data)
        while not self.complete:
            if end - position < _HEADER_BYTES:
                return position
            chunk_type = data[position]
            length = data[position + 1] | data[position + 2] << 8 | data[position + 3] << 16
            self._check_header(chunk_type, length)
            body_start = position + _HEADER_BYTES
            if end - body_start < length:
                return position
            body = data[body_start : body_start + length]
            position = body_start + length
            if chunk_type == _IDENTIFIER:
                if body != STREAM_IDENTIFIER[_HEADER_BYTES:]:
                    raise SnappyError("bad snappy stream identifier")
                self._started = True
            elif chunk_type == _COMPRESSED:
                self._read_compressed(body)
            elif chunk_type == _UNCOMPRESSED:
                self._read_uncompressed(body)
            # Padding and other skippable chunks carry nothing: skipped.
        return position

    def _check_header(self, chunk_type: int, length: int) -> None:
        """Refuse a chunk from its header alone, before waiting for its body."""
        if not self._started and chunk_type != _IDENTIFIER:
            raise SnappyError(f"stream starts with chunk type {chunk_type:#04x}, not an identifier")
        if chunk_type == _IDENTIFIER:
            if length != len(STREAM_IDENTIFIER) - _HEADER_BYTES:
                raise SnappyError(f"stream identifier chunk of length {length}")
        elif chunk_type == _COMPRESSED:
            if not _CRC_BYTES < length <= _MAX_COMPRESSED_CHUNK:
                raise SnappyError(f"compressed chunk length {length} out of range")
        elif chunk_type == _UNCOMPRESSED:
            if not _CRC_BYTES <= length <= _CRC_BYTES + MAX_CHUNK_DATA:
                raise SnappyError(f"uncompressed chunk length {length} out of range")
        elif chunk_type < 0x80:
            raise SnappyError(f"reserved unskippable chunk type {chunk_type:#04x}")
        elif length > _MAX_SKIPPABLE_CHUNK:
            raise SnappyError(f"skippable chunk of {length} bytes is larger than we buffer")

    def _room(self, length: int) -> None:
        if length > MAX_CHUNK_DATA:
            raise SnappyError(f"chunk expands to {length} bytes, over the 64 KiB chunk limit")
        if self._produced + length > self._limit:
            what = "declared length" if self._expected is not None else "limit"
            raise SnappyError(
                f"frame would expand to {self._produced + length} bytes, past the {what} "
                f"{self._limit}"
            )

    def _accept(self, stored_crc: bytes | bytearray, out: bytes) -> None:
        if int.from_bytes(stored_crc, "little") != masked_crc32c(out):
            raise SnappyError("CRC-32C mismatch in snappy frame chunk")
        self._parts.append(out)
        self._produced += len(out)

    def _read_compressed(self, body: bytes | bytearray) -> None:
        block = body[_CRC_BYTES:]
        length = _block_length(block)
        self._room(length)
        self._accept(body[:_CRC_BYTES], _decompress_raw(block, length))

    def _read_uncompressed(self, body: bytes | bytearray) -> None:
        self._room(len(body) - _CRC_BYTES)
        self._accept(body[:_CRC_BYTES], bytes(body[_CRC_BYTES:]))


def decompress_frames(
    data: bytes, max_length: int = MAX_PAYLOAD_SIZE, expected_length: int | None = None
) -> bytes:
    """Decode a whole frame stream (every byte of ``data`` must belong to it)."""
    if len(data) < len(STREAM_IDENTIFIER):
        raise SnappyError("input is shorter than the snappy stream identifier")
    reader = FrameReader(expected_length, max_length)
    position = reader.consume(data, 0)
    if position != len(data):
        if reader.complete:
            raise SnappyError(f"{len(data) - position} bytes after the declared length")
        raise SnappyError("snappy frame stream ends inside a chunk")
    if expected_length is not None and not reader.complete:
        raise SnappyError(f"frames hold {reader.produced} bytes, declared {expected_length}")
    return reader.payload()

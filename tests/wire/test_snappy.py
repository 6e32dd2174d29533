"""Snappy blocks and frames: round trips, limits before work, and corrupt input."""

from __future__ import annotations

import os

import cramjam
import pytest

from lean_p2p.wire.crc32c import masked_crc32c
from lean_p2p.wire.errors import SnappyError
from lean_p2p.wire.snappy import (
    MAX_CHUNK_DATA,
    MAX_PAYLOAD_SIZE,
    STREAM_IDENTIFIER,
    FrameReader,
    compress_block,
    compress_frames,
    decompress_block,
    decompress_frames,
)
from lean_p2p.wire.varint import encode_varint

SIZES = [0, 1, 100, MAX_CHUNK_DATA - 1, MAX_CHUNK_DATA, MAX_CHUNK_DATA + 1, 3 * MAX_CHUNK_DATA + 7]


def _payload(size: int) -> bytes:
    """Half random, half repetitive: exercises both chunk types."""
    return (os.urandom(size // 2) + b"lean" * size)[:size]


def _chunk(chunk_type: int, body: bytes) -> bytes:
    return bytes((chunk_type,)) + len(body).to_bytes(3, "little") + body


def _uncompressed_chunk(data: bytes) -> bytes:
    return _chunk(0x01, masked_crc32c(data).to_bytes(4, "little") + data)


def _compressed_chunk(data: bytes) -> bytes:
    crc = masked_crc32c(data).to_bytes(4, "little")
    return _chunk(0x00, crc + bytes(cramjam.snappy.compress_raw(data)))


@pytest.fixture
def no_decompression(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if anything reaches the native decompressor."""

    def refuse(*_args: object) -> bytes:
        raise AssertionError("decompression ran before the length check")

    monkeypatch.setattr(cramjam.snappy, "decompress_raw", refuse)


@pytest.mark.parametrize("size", SIZES)
def test_block_round_trip(size: int) -> None:
    data = _payload(size)
    assert decompress_block(compress_block(data)) == data


@pytest.mark.parametrize("size", SIZES)
def test_frames_round_trip_and_interoperate(size: int) -> None:
    data = _payload(size)
    framed = compress_frames(data)
    assert framed.startswith(STREAM_IDENTIFIER)
    assert decompress_frames(framed) == data
    assert bytes(cramjam.snappy.decompress(framed)) == data
    assert decompress_frames(bytes(cramjam.snappy.compress(data)) or STREAM_IDENTIFIER) == data


@pytest.mark.usefixtures("no_decompression")
def test_block_over_the_limit_is_refused_before_decompression() -> None:
    claim = encode_varint(MAX_PAYLOAD_SIZE + 1) + b"\x00" * 8
    with pytest.raises(SnappyError, match="over the limit"):
        decompress_block(claim)
    with pytest.raises(SnappyError, match="over the limit"):
        decompress_block(encode_varint(101) + b"\x00", max_length=100)


@pytest.mark.parametrize(
    "block",
    [b"", b"\x80", b"\x05\x00", b"\x0a\x08abcd", b"\x04" + b"\xff" * 4],
    ids=["empty", "truncated-preamble", "short-literal", "bad-length", "garbage"],
)
def test_corrupt_blocks_raise(block: bytes) -> None:
    with pytest.raises(SnappyError):
        decompress_block(block)


def test_frame_expanding_past_the_declared_length_fails_mid_way(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first, second = b"a" * 1000, b"b" * 1000
    stream = STREAM_IDENTIFIER + _compressed_chunk(first) + _compressed_chunk(second)
    decompressed: list[int] = []
    real = cramjam.snappy.decompress_raw

    def counting(block: bytes) -> object:
        decompressed.append(len(block))
        return real(block)

    monkeypatch.setattr(cramjam.snappy, "decompress_raw", counting)
    reader = FrameReader(expected_length=1500)
    with pytest.raises(SnappyError, match="past the declared length"):
        reader.consume(stream, 0)
    # The first chunk fit and was decompressed; the second was refused from its preamble.
    assert len(decompressed) == 1
    assert reader.produced == 1000


def test_frames_over_the_limit_without_declared_length_are_refused() -> None:
    stream = STREAM_IDENTIFIER + _uncompressed_chunk(b"x" * 200)
    with pytest.raises(SnappyError, match="past the limit"):
        decompress_frames(stream, max_length=100)


def test_declared_length_over_the_limit_is_refused_up_front() -> None:
    with pytest.raises(SnappyError):
        FrameReader(expected_length=MAX_PAYLOAD_SIZE + 1)


def test_crc_mismatch_is_rejected() -> None:
    chunk = bytearray(_uncompressed_chunk(b"hello"))
    chunk[4] ^= 1
    with pytest.raises(SnappyError, match="CRC"):
        decompress_frames(STREAM_IDENTIFIER + bytes(chunk))


def test_padding_and_skippable_chunks_are_skipped() -> None:
    stream = (
        STREAM_IDENTIFIER
        + _chunk(0xFE, b"\x00" * 10)
        + _uncompressed_chunk(b"abc")
        + _chunk(0x80, b"meta")
        + STREAM_IDENTIFIER  # a repeated identifier is allowed
        + _compressed_chunk(b"def" * 30)
    )
    assert decompress_frames(stream) == b"abc" + b"def" * 30


@pytest.mark.parametrize(
    ("stream", "message"),
    [
        (b"", "shorter than"),
        (b"\x00" * 10, "not an identifier"),
        (b"\xff\x06\x00\x00sNaPpX", "identifier"),
        (b"\xff\x07\x00\x00sNaPpY\x00", "identifier chunk"),
        (STREAM_IDENTIFIER + _chunk(0x03, b""), "unskippable"),
        (STREAM_IDENTIFIER + _chunk(0x00, b"\x00\x00\x00\x00"), "out of range"),
        (STREAM_IDENTIFIER + b"\x01\xff\xff\xff", "out of range"),
        (STREAM_IDENTIFIER + b"\x80\xff\xff\xff", "larger than we buffer"),
        (STREAM_IDENTIFIER + _uncompressed_chunk(b"abc")[:-1], "ends inside a chunk"),
        (STREAM_IDENTIFIER + _chunk(0x00, b"\x00" * 4 + b"\x80\x80\x80\x80\x80"), "preamble"),
        (
            STREAM_IDENTIFIER + _chunk(0x00, b"\x00" * 4 + encode_varint(MAX_CHUNK_DATA + 1)),
            "64 KiB",
        ),
        (STREAM_IDENTIFIER + _uncompressed_chunk(b"x" * (MAX_CHUNK_DATA + 1)), "out of range"),
    ],
    ids=[
        "empty",
        "no-identifier",
        "wrong-magic",
        "identifier-length",
        "reserved-type",
        "empty-compressed",
        "huge-uncompressed",
        "huge-skippable",
        "truncated",
        "bad-preamble",
        "chunk-over-64k",
        "uncompressed-over-64k",
    ],
)
def test_malformed_frames_raise(stream: bytes, message: str) -> None:
    with pytest.raises(SnappyError, match=message):
        decompress_frames(stream)


def test_expected_length_must_be_met_exactly() -> None:
    stream = STREAM_IDENTIFIER + _uncompressed_chunk(b"abc")
    assert decompress_frames(stream, expected_length=3) == b"abc"
    with pytest.raises(SnappyError, match="declared 4"):
        decompress_frames(stream, expected_length=4)
    with pytest.raises(SnappyError, match="after the declared length"):
        decompress_frames(stream + _uncompressed_chunk(b"d"), expected_length=3)

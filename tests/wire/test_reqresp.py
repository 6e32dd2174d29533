"""Req/resp framing: incremental decoding under every split, limits and bad streams."""

from __future__ import annotations

import pytest

from lean_p2p.net.protocol import ResultCode
from lean_p2p.wire.errors import ReqRespError
from lean_p2p.wire.reqresp import (
    MAX_ERROR_MESSAGE_BYTES,
    MAX_PAYLOAD_SIZE,
    RequestDecoder,
    ResponseChunk,
    ResponseDecoder,
    decode_request,
    decode_response,
    encode_error_chunk,
    encode_request,
    encode_response_chunk,
    truncate_error_message,
)
from lean_p2p.wire.snappy import STREAM_IDENTIFIER
from lean_p2p.wire.varint import encode_varint

CHUNKS = [
    ResponseChunk(0, b"\x11" * 40),
    ResponseChunk(0, b""),
    ResponseChunk(3, b"not found"),
    ResponseChunk(0, bytes(range(256)) * 300),
]


def _stream() -> bytes:
    return b"".join(encode_response_chunk(c.raw_code, c.payload) for c in CHUNKS)


def test_request_round_trip() -> None:
    assert decode_request(encode_request(b"status-bytes" * 5)) == b"status-bytes" * 5
    assert decode_request(encode_request(b"")) == b""


def test_request_fed_one_byte_at_a_time() -> None:
    encoded = encode_request(b"\x07" * 1000)
    decoder = RequestDecoder()
    results = [decoder.feed(encoded[i : i + 1]) for i in range(len(encoded))]
    assert all(result is None for result in results[:-1])
    assert results[-1] == b"\x07" * 1000
    assert decoder.finish() == b"\x07" * 1000


def test_every_two_way_split_of_a_response_gives_the_same_chunks() -> None:
    stream = _stream()
    step = max(1, len(stream) // 300)  # a few hundred split points, spread over the stream
    for split in [*range(0, len(stream), step), len(stream)]:
        decoder = ResponseDecoder()
        chunks = decoder.feed(stream[:split]) + decoder.feed(stream[split:])
        decoder.finish()
        assert chunks == CHUNKS, split


def test_response_fed_one_byte_at_a_time() -> None:
    stream = _stream()
    decoder = ResponseDecoder()
    chunks: list[ResponseChunk] = []
    for index in range(len(stream)):
        chunks += decoder.feed(stream[index : index + 1])
        # Never more buffered than one frame chunk's worth of unfinished bytes.
        assert decoder.buffered <= 70_000
    decoder.finish()
    assert chunks == CHUNKS


def test_result_codes_and_error_text() -> None:
    stream = encode_error_chunk(ResultCode.SERVER_ERROR, "ünïcode ✓") + encode_response_chunk(
        200, b"\xff\xfe"
    )
    error, weird = decode_response(stream)
    assert error.code is ResultCode.SERVER_ERROR and not error.is_success
    assert error.error_message() == "ünïcode ✓"
    assert weird.code is ResultCode.INVALID_REQUEST
    assert weird.error_message() == "\ufffd\ufffd"


def test_error_messages_are_truncated_on_a_character_boundary() -> None:
    text = "é" * 200  # 400 bytes of UTF-8
    truncated = truncate_error_message(text)
    assert len(truncated) <= MAX_ERROR_MESSAGE_BYTES
    assert truncated.decode("utf-8") == "é" * 128
    with pytest.raises(ValueError):
        encode_error_chunk(ResultCode.SUCCESS, "no")


def test_declared_length_over_the_limit_fails_as_soon_as_the_varint_is_read() -> None:
    decoder = RequestDecoder()
    with pytest.raises(ReqRespError, match="over the limit"):
        decoder.feed(encode_varint(MAX_PAYLOAD_SIZE + 1))
    with pytest.raises(ReqRespError, match="already failed"):
        decoder.feed(b"\x00")


def test_error_chunk_longer_than_256_bytes_is_refused() -> None:
    stream = bytes((ResultCode.SERVER_ERROR,)) + encode_varint(MAX_ERROR_MESSAGE_BYTES + 1)
    with pytest.raises(ReqRespError, match="over the limit"):
        ResponseDecoder().feed(stream)


def test_payload_over_the_callers_limit_is_refused() -> None:
    with pytest.raises(ReqRespError):
        decode_request(encode_request(b"x" * 101), max_length=100)
    with pytest.raises(ReqRespError):
        encode_request(b"x" * 101, max_length=100)


def test_frames_larger_than_the_declared_length_fail() -> None:
    # Declares 3 bytes but the frames carry 5.
    body = encode_request(b"hello")
    with pytest.raises(ReqRespError, match="past the declared length"):
        decode_request(encode_varint(3) + body[1:])


@pytest.mark.parametrize(
    "stream",
    [b"", b"\x80\x80", encode_request(b"abc")[:-1], encode_varint(5) + STREAM_IDENTIFIER],
    ids=["empty", "bad-varint", "truncated", "frames-missing"],
)
def test_incomplete_requests_fail_at_the_end_of_the_stream(stream: bytes) -> None:
    with pytest.raises(ReqRespError):
        decode_request(stream)


def test_bytes_after_the_request_are_refused() -> None:
    with pytest.raises(ReqRespError, match="after the complete request"):
        decode_request(encode_request(b"abc") + b"\x00")
    decoder = RequestDecoder()
    decoder.feed(encode_request(b"abc"))
    with pytest.raises(ReqRespError, match="after the complete request"):
        decoder.feed(b"\x00")


def test_response_cut_inside_a_chunk_fails_at_finish() -> None:
    decoder = ResponseDecoder()
    assert decoder.feed(encode_response_chunk(0, b"abc")[:-2]) == []
    with pytest.raises(ReqRespError, match="inside a response chunk"):
        decoder.finish()
    only_code = ResponseDecoder()
    only_code.feed(b"\x00")
    with pytest.raises(ReqRespError):
        only_code.finish()


def test_more_chunks_than_allowed_are_refused() -> None:
    stream = encode_response_chunk(0, b"a") * 3
    assert len(decode_response(stream, max_chunks=3)) == 3
    with pytest.raises(ReqRespError, match="more response chunks"):
        decode_response(stream, max_chunks=2)


def test_corrupt_frames_inside_a_chunk_raise_reqresp_error() -> None:
    encoded = bytearray(encode_response_chunk(0, b"payload bytes"))
    encoded[-1] ^= 0xFF
    with pytest.raises(ReqRespError, match="snappy"):
        decode_response(bytes(encoded))


def test_empty_response_is_zero_chunks() -> None:
    assert decode_response(b"") == []


def test_statistics_count_bytes_messages_and_failure() -> None:
    stream = _stream()
    decoder = ResponseDecoder()
    decoder.feed(stream[:-3])
    partial = decoder.statistics()
    assert partial["bytes_fed"] == len(stream) - 3
    assert partial["messages"] == len(CHUNKS) - 1
    assert 0 < int(partial["buffered"]) <= 70_000
    decoder.feed(stream[-3:])
    assert decoder.statistics() == {
        "bytes_fed": len(stream),
        "messages": len(CHUNKS),
        "buffered": 0,
        "failed": False,
    }
    request = RequestDecoder()
    with pytest.raises(ReqRespError):
        request.feed(b"\xff" * 11)
    assert request.statistics()["failed"] is True


def test_a_maximum_size_payload_in_small_pieces() -> None:
    payload = bytes(range(256)) * (MAX_PAYLOAD_SIZE // 256)
    stream = encode_response_chunk(0, payload)
    decoder = ResponseDecoder()
    chunks: list[ResponseChunk] = []
    for start in range(0, len(stream), 4096):
        chunks += decoder.feed(stream[start : start + 4096])
        assert decoder.buffered <= 70_000
    decoder.finish()
    assert chunks == [ResponseChunk(0, payload)]

"""Req/resp framing: requests and response chunks, decoded incrementally. Any thread.

- request: ``varint(ssz length) ‖ snappy-frames(ssz)``; the requester then half-closes.
- response chunk: ``result code ‖ varint(payload length) ‖ snappy-frames(payload)``;
  a response is zero or more chunks followed by the end of the stream.

The decoders are sans-IO: ``feed(bytes)`` with whatever the stream delivered (any split
works, one byte at a time included) returns what became complete; ``finish()`` at the
end of the stream raises if it ended inside a message. A declared length is checked
against the limit as soon as its varint is complete, before any decompression; a frame
that would expand past the declared length is refused mid-way. The unread buffer never
holds more than one frame chunk beyond what the caller passed in.

The functions are pure and safe on any thread; a decoder object holds one stream's
state and belongs to whichever single thread reads that stream. After a decoder raises,
it refuses further input (the stream is to be reset, not resumed).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from lean_p2p.net.protocol import ResultCode
from lean_p2p.wire.errors import ReqRespError, SnappyError, VarintError
from lean_p2p.wire.snappy import MAX_PAYLOAD_SIZE, FrameReader, compress_frames
from lean_p2p.wire.varint import encode_varint, try_varint

__all__ = [
    "MAX_ERROR_MESSAGE_BYTES",
    "MAX_PAYLOAD_SIZE",
    "RequestDecoder",
    "ResponseChunk",
    "ResponseDecoder",
    "decode_request",
    "decode_response",
    "encode_error_chunk",
    "encode_request",
    "encode_response_chunk",
    "truncate_error_message",
]

#: Error payloads are UTF-8 text of at most this many bytes.
MAX_ERROR_MESSAGE_BYTES: Final = 256


def _encode_payload(payload: bytes, limit: int) -> bytes:
    if len(payload) > limit:
        raise ReqRespError(f"payload of {len(payload)} bytes is over the limit {limit}")
    return encode_varint(len(payload)) + compress_frames(payload)


def encode_request(ssz: bytes, max_length: int = MAX_PAYLOAD_SIZE) -> bytes:
    return _encode_payload(ssz, max_length)


def encode_response_chunk(
    code: ResultCode | int, payload: bytes, max_length: int = MAX_PAYLOAD_SIZE
) -> bytes:
    if not 0 <= int(code) <= 255:
        raise ValueError(f"result code {code} is not a byte")
    return bytes((int(code),)) + _encode_payload(payload, max_length)


def truncate_error_message(message: str) -> bytes:
    """UTF-8 of ``message`` cut to 256 bytes without splitting a character."""
    encoded = message.encode("utf-8")[:MAX_ERROR_MESSAGE_BYTES]
    return encoded.decode("utf-8", errors="ignore").encode("utf-8")


def encode_error_chunk(code: ResultCode, message: str) -> bytes:
    if code is ResultCode.SUCCESS:
        raise ValueError("an error chunk needs an error code")
    return encode_response_chunk(code, truncate_error_message(message))


@dataclass(frozen=True, slots=True)
class ResponseChunk:
    """One decoded response chunk: its result byte and uncompressed payload."""

    raw_code: int
    payload: bytes

    @property
    def code(self) -> ResultCode:
        return ResultCode.from_byte(self.raw_code)

    @property
    def is_success(self) -> bool:
        return self.raw_code == ResultCode.SUCCESS

    def error_message(self) -> str:
        """The payload of an error chunk as text (invalid UTF-8 is replaced, not fatal)."""
        return self.payload.decode("utf-8", errors="replace")


class _PayloadState:
    """``varint(length) ‖ frames`` of one payload, read from a shared buffer."""

    __slots__ = ("_limit", "_reader")

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._reader: FrameReader | None = None

    @property
    def started(self) -> bool:
        return self._reader is not None

    def advance(self, data: bytearray, position: int) -> tuple[int, bytes | None]:
        """New position, and the payload once complete."""
        if self._reader is None:
            try:
                decoded = try_varint(data, position)
            except VarintError as error:
                raise ReqRespError(f"bad length prefix: {error.detail}") from None
            if decoded is None:
                return position, None
            length, position = decoded
            if length > self._limit:
                raise ReqRespError(f"declared length {length} is over the limit {self._limit}")
            self._reader = FrameReader(length, self._limit)
        try:
            position = self._reader.consume(data, position)
        except SnappyError as error:
            raise ReqRespError(f"bad snappy frames: {error.detail}") from None
        if self._reader.complete:
            return position, self._reader.payload()
        return position, None


class _StreamDecoder:
    __slots__ = ("_buffer", "_bytes_fed", "_failed", "_messages")

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._failed = False
        self._bytes_fed = 0
        self._messages = 0

    def _take(self, data: bytes) -> None:
        if self._failed:
            raise ReqRespError("the stream already failed to decode")
        self._bytes_fed += len(data)
        self._buffer += data

    def statistics(self) -> dict[str, int | bool]:
        """Bytes fed, messages completed, bytes buffered, and whether decoding failed."""
        return {
            "bytes_fed": self._bytes_fed,
            "messages": self._messages,
            "buffered": len(self._buffer),
            "failed": self._failed,
        }

    def _consumed(self, position: int) -> None:
        # Drop what was read so the buffer holds only an unfinished message's bytes.
        del self._buffer[:position]

    @property
    def buffered(self) -> int:
        """Bytes received but not yet part of a complete message."""
        return len(self._buffer)


class RequestDecoder(_StreamDecoder):
    """Incremental decoder of the one request on a stream."""

    __slots__ = ("_payload", "_request")

    def __init__(self, max_length: int = MAX_PAYLOAD_SIZE) -> None:
        super().__init__()
        self._payload = _PayloadState(max_length)
        self._request: bytes | None = None

    def feed(self, data: bytes) -> bytes | None:
        """Add received bytes; returns the request's SSZ bytes once complete."""
        self._take(data)
        try:
            if self._request is not None:
                if self._buffer:
                    raise ReqRespError("bytes after the complete request")
                return self._request
            position, self._request = self._payload.advance(self._buffer, 0)
            self._consumed(position)
            if self._request is not None:
                self._messages = 1
            if self._request is not None and self._buffer:
                raise ReqRespError(f"{len(self._buffer)} bytes after the complete request")
        except ReqRespError:
            self._failed = True
            raise
        return self._request

    def finish(self) -> bytes:
        """The request at the end of the stream; raises if it is missing or cut short."""
        if self._failed:
            raise ReqRespError("the stream already failed to decode")
        if self._request is None:
            what = "inside the request" if self._buffer else "before any request"
            raise ReqRespError(f"stream ended {what}")
        return self._request


class ResponseDecoder(_StreamDecoder):
    """Incremental decoder of a response: a sequence of chunks until the stream ends."""

    __slots__ = ("_chunks_left", "_code", "_max_length", "_payload")

    def __init__(self, max_length: int = MAX_PAYLOAD_SIZE, max_chunks: int | None = None) -> None:
        super().__init__()
        self._max_length = max_length
        self._chunks_left = max_chunks
        self._code: int | None = None
        self._payload: _PayloadState | None = None

    def feed(self, data: bytes) -> list[ResponseChunk]:
        """Add received bytes; returns the chunks they completed (possibly none)."""
        self._take(data)
        chunks: list[ResponseChunk] = []
        try:
            position = self._advance(chunks)
        except ReqRespError:
            self._failed = True
            raise
        self._consumed(position)
        return chunks

    def _advance(self, chunks: list[ResponseChunk]) -> int:
        position = 0
        buffer = self._buffer
        while position < len(buffer):
            if self._code is None:
                if self._chunks_left is not None and self._chunks_left <= 0:
                    raise ReqRespError("more response chunks than the request allows")
                self._code = buffer[position]
                position += 1
                limit = self._max_length
                if self._code != ResultCode.SUCCESS:
                    limit = min(limit, MAX_ERROR_MESSAGE_BYTES)
                self._payload = _PayloadState(limit)
            assert self._payload is not None
            position, payload = self._payload.advance(buffer, position)
            if payload is None:
                break
            chunks.append(ResponseChunk(self._code, payload))
            self._messages += 1
            self._code = None
            self._payload = None
            if self._chunks_left is not None:
                self._chunks_left -= 1
        return position

    def finish(self) -> None:
        """The stream ended: fine between chunks, an error inside one."""
        if self._failed:
            raise ReqRespError("the stream already failed to decode")
        if self._code is not None or self._buffer:
            raise ReqRespError("stream ended inside a response chunk")


def decode_request(data: bytes, max_length: int = MAX_PAYLOAD_SIZE) -> bytes:
    """The SSZ bytes of a whole request stream."""
    decoder = RequestDecoder(max_length)
    decoder.feed(data)
    return decoder.finish()


def decode_response(
    data: bytes, max_length: int = MAX_PAYLOAD_SIZE, max_chunks: int | None = None
) -> list[ResponseChunk]:
    """Every chunk of a whole response stream."""
    decoder = ResponseDecoder(max_length, max_chunks)
    chunks = decoder.feed(data)
    decoder.finish()
    return chunks

"""Lean payload codecs as the driver uses them. Pure functions; run on the driver thread.

Gossip: SSZ then raw snappy, message id ``SHA256(domain ‖ u64le(len(topic)) ‖ topic ‖
data)[:20]``. Req/resp: ``varint(ssz length) ‖ snappy-framed(ssz)`` requests and
``result ‖ varint(length) ‖ snappy-framed(payload)`` response chunks.

Every declared length is checked against the limit *before* anything is decompressed
(decompression bombs). All errors are :class:`lean_p2p.wire.errors.WireError`
subclasses carrying a ``reason``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any, Final

import cramjam

from lean_p2p.containers import (
    BlocksByRangeRequest,
    BlocksByRootRequest,
    SignedAggregatedAttestation,
    SignedAttestation,
    SignedBlock,
    Status,
)
from lean_p2p.net.protocol import GossipTopic, ReqRespProtocol, ResultCode
from lean_p2p.wire.errors import ReqRespError, SnappyError, VarintError, WireError

__all__ = [
    "MAX_ERROR_MESSAGE_BYTES",
    "MAX_PAYLOAD_SIZE",
    "GossipMessage",
    "Request",
    "ResponseChunkDecoder",
    "ResponsePayload",
    "decode_error_message",
    "decode_gossip",
    "decode_request",
    "encode_error_chunk",
    "encode_gossip",
    "encode_request",
    "encode_success_chunk",
    "gossip_message_id",
    "gossip_type",
    "request_protocol",
]

MAX_PAYLOAD_SIZE: Final = 10 * 1024 * 1024
MAX_ERROR_MESSAGE_BYTES: Final = 256
_VALID_SNAPPY_DOMAIN: Final = bytes.fromhex("01000000")
_INVALID_SNAPPY_DOMAIN: Final = bytes.fromhex("00000000")
_STREAM_IDENTIFIER: Final = b"\xff\x06\x00\x00sNaPpY"
# A frame chunk holds at most 64 KiB of data: its CRC plus a worst-case compression.
_MAX_FRAME_CHUNK: Final = 4 + 32 + 65536 + 65536 // 6

GossipMessage = SignedBlock | SignedAttestation | SignedAggregatedAttestation
Request = Status | BlocksByRootRequest | BlocksByRangeRequest
ResponsePayload = Status | SignedBlock

_GOSSIP_TYPES: dict[GossipTopic, Any] = {
    GossipTopic.BLOCK: SignedBlock,
    GossipTopic.ATTESTATION: SignedAttestation,
    GossipTopic.AGGREGATION: SignedAggregatedAttestation,
}
_REQUEST_TYPES: dict[ReqRespProtocol, Any] = {
    ReqRespProtocol.STATUS: Status,
    ReqRespProtocol.BLOCKS_BY_ROOT: BlocksByRootRequest,
    ReqRespProtocol.BLOCKS_BY_RANGE: BlocksByRangeRequest,
}
_RESPONSE_TYPES: dict[ReqRespProtocol, Any] = {
    ReqRespProtocol.STATUS: Status,
    ReqRespProtocol.BLOCKS_BY_ROOT: SignedBlock,
    ReqRespProtocol.BLOCKS_BY_RANGE: SignedBlock,
}


def gossip_type(topic: GossipTopic) -> Any:
    return _GOSSIP_TYPES[topic]


def request_protocol(request: Request) -> ReqRespProtocol:
    for protocol, request_type in _REQUEST_TYPES.items():
        if type(request) is request_type:
            return protocol
    raise TypeError(f"not a lean request: {type(request).__name__}")


# --------------------------------------------------------------------- varints


def encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def decode_varint(data: bytes | bytearray | memoryview, offset: int = 0) -> tuple[int, int] | None:
    """(value, offset after it), or None when ``data`` ends inside the varint."""
    value = 0
    for index in range(10):
        if offset + index >= len(data):
            return None
        byte = data[offset + index]
        value |= (byte & 0x7F) << (7 * index)
        if not byte & 0x80:
            if index > 0 and byte == 0:
                raise VarintError("non-minimal varint encoding")
            return value, offset + index + 1
    raise VarintError("varint longer than 10 bytes")


# ---------------------------------------------------------------------- gossip


def _raw_declared_length(data: bytes) -> int:
    decoded = decode_varint(data)
    if decoded is None:
        raise SnappyError("truncated raw snappy length preamble")
    return decoded[0]


def decompress_gossip(data: bytes) -> bytes:
    """Raw-snappy decompress with the 10 MiB limit checked on the declared length."""
    declared = _raw_declared_length(data)
    if declared > MAX_PAYLOAD_SIZE:
        raise SnappyError(f"declared length {declared} over the {MAX_PAYLOAD_SIZE} limit")
    try:
        return bytes(cramjam.snappy.decompress_raw(data))
    except Exception as error:  # cramjam.DecompressionError
        raise SnappyError(f"corrupt raw snappy: {error}") from None


def gossip_message_id(topic: str, data: bytes) -> tuple[bytes, bytes | None]:
    """The spec's 20-byte message id, and the decompressed payload when valid."""
    try:
        payload: bytes | None = decompress_gossip(data)
    except WireError:
        payload = None
    topic_bytes = topic.encode()
    digest = hashlib.sha256(_VALID_SNAPPY_DOMAIN if payload is not None else _INVALID_SNAPPY_DOMAIN)
    digest.update(len(topic_bytes).to_bytes(8, "little"))
    digest.update(topic_bytes)
    digest.update(payload if payload is not None else data)
    return digest.digest()[:20], payload


def encode_gossip(message: GossipMessage) -> bytes:
    return bytes(cramjam.snappy.compress_raw(message.encode()))


def decode_gossip(topic: GossipTopic, payload: bytes) -> GossipMessage:
    """Decode an already decompressed gossip payload into the topic's container."""
    message: GossipMessage = _GOSSIP_TYPES[topic].decode(payload)
    return message


# -------------------------------------------------------------------- req/resp


def _frame(ssz: bytes) -> bytes:
    return encode_varint(len(ssz)) + bytes(cramjam.snappy.compress(ssz))


def encode_request(request: Request) -> bytes:
    return _frame(request.encode())


def decode_request(protocol: ReqRespProtocol, data: bytes) -> Request:
    """Decode a whole request stream (the requester half-closed after it)."""
    decoded = decode_varint(data)
    if decoded is None:
        raise ReqRespError("request ends inside its length prefix")
    length, offset = decoded
    if length > MAX_PAYLOAD_SIZE:
        raise ReqRespError(f"request length {length} over the limit")
    framed = _FramedSnappyReader(length)
    end = framed.feed(data, offset)
    if end is None:
        raise ReqRespError("request ends inside its snappy frames")
    if end != len(data):
        raise ReqRespError("trailing bytes after the request")
    request: Request = _REQUEST_TYPES[protocol].decode(framed.payload())
    return request


def encode_success_chunk(payload: ResponsePayload) -> bytes:
    return bytes([ResultCode.SUCCESS]) + _frame(payload.encode())


def encode_error_chunk(code: ResultCode, message: str) -> bytes:
    text = message.encode("utf-8")[:MAX_ERROR_MESSAGE_BYTES]
    return bytes([code]) + _frame(text)


def decode_error_message(payload: bytes) -> str:
    return payload[:MAX_ERROR_MESSAGE_BYTES].decode("utf-8", errors="replace")


class _FramedSnappyReader:
    """Finds where one snappy-framed payload of a known uncompressed length ends.

    Walks chunk headers (type, 24-bit length) and the raw-snappy length preamble of
    compressed chunks, so a stream carrying several response chunks back to back can
    be split without decompressing; then decompresses (checking CRCs) in one call.
    """

    __slots__ = ("_chunks", "_expected", "_seen_identifier", "_total")

    def __init__(self, expected: int) -> None:
        self._expected = expected
        self._total = 0
        self._chunks = bytearray()
        self._seen_identifier = False

    def feed(self, data: bytes | bytearray, offset: int) -> int | None:
        """Consume complete chunks from ``data[offset:]``; returns the end offset once
        the payload is complete, None if more bytes are needed."""
        while self._total < self._expected or not self._seen_identifier:
            if len(data) - offset < 4:
                return None
            kind = data[offset]
            size = int.from_bytes(data[offset + 1 : offset + 4], "little")
            if size > _MAX_FRAME_CHUNK:
                raise SnappyError(f"frame chunk of {size} bytes over the limit")
            if len(data) - offset - 4 < size:
                return None
            body = data[offset + 4 : offset + 4 + size]
            self._take(kind, bytes(body))
            self._chunks += data[offset : offset + 4 + size]
            offset += 4 + size
        return offset

    def _take(self, kind: int, body: bytes) -> None:
        if kind == 0xFF:
            if body != _STREAM_IDENTIFIER[4:]:
                raise SnappyError("bad snappy stream identifier")
            self._seen_identifier = True
            return
        if not self._seen_identifier:
            raise SnappyError("snappy frames without a stream identifier")
        if kind == 0x00:
            if len(body) < 5:
                raise SnappyError("short compressed frame chunk")
            self._total += _raw_declared_length(body[4:])
        elif kind == 0x01:
            self._total += len(body) - 4
        elif 0x02 <= kind <= 0x7F:
            raise SnappyError(f"reserved unskippable frame chunk type {kind:#x}")
        # 0x80-0xfe: skippable or padding
        if self._total > self._expected:
            raise SnappyError("frames hold more data than the declared length")

    def payload(self) -> bytes:
        try:
            data = bytes(cramjam.snappy.decompress(bytes(self._chunks)))
        except Exception as error:
            raise SnappyError(f"corrupt snappy frames: {error}") from None
        if len(data) != self._expected:
            raise SnappyError("frames do not hold the declared length")
        return data


class ResponseChunkDecoder:
    """Incremental decoder of a response stream: ``feed`` bytes, get whole chunks.

    Each chunk is ``(result code, payload)``: a decoded container for success, the
    error text (``str``) otherwise. ``finish`` at end of stream raises when the stream
    stopped inside a chunk.
    """

    __slots__ = ("_buffer", "_decode_payload", "_framed", "_result")

    def __init__(self, protocol: ReqRespProtocol) -> None:
        self._buffer = bytearray()
        self._result: ResultCode | None = None
        self._framed: _FramedSnappyReader | None = None
        decoder: Callable[[bytes], ResponsePayload] = _RESPONSE_TYPES[protocol].decode
        self._decode_payload = decoder

    def feed(self, data: bytes) -> list[tuple[ResultCode, ResponsePayload | str]]:
        self._buffer += data
        chunks: list[tuple[ResultCode, ResponsePayload | str]] = []
        while self._buffer:
            if self._result is None:
                decoded = decode_varint(self._buffer, 1)
                if decoded is None:
                    return chunks
                length, offset = decoded
                result = ResultCode.from_byte(self._buffer[0])
                limit = MAX_PAYLOAD_SIZE if result is ResultCode.SUCCESS else 4096
                if length > limit:
                    raise ReqRespError(f"response chunk length {length} over the limit")
                self._result = result
                self._framed = _FramedSnappyReader(length)
                del self._buffer[:offset]
            assert self._framed is not None
            end = self._framed.feed(self._buffer, 0)
            if end is None:
                return chunks
            del self._buffer[:end]
            payload = self._framed.payload()
            if self._result is ResultCode.SUCCESS:
                chunks.append((self._result, self._decode_payload(payload)))
            else:
                chunks.append((self._result, decode_error_message(payload)))
            self._result = None
            self._framed = None
        return chunks

    def finish(self) -> None:
        if self._buffer or self._result is not None:
            raise ReqRespError("response stream ended inside a chunk")

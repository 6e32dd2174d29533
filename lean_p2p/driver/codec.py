"""Lean payloads as the driver sends and receives them. Pure; runs on the driver thread.

A thin adapter from the byte codecs of :mod:`lean_p2p.wire` (snappy, varints, req/resp
framing, message ids) to the containers of :mod:`lean_p2p.containers`: the driver
deals in containers, the wire in bytes. Gossip is SSZ then raw snappy; requests are
``varint ‖ snappy-frames`` and response chunks ``result ‖ varint ‖ snappy-frames``.
Declared lengths are checked against the limits before anything is decompressed, and
every error is a :class:`lean_p2p.wire.errors.WireError` carrying a ``reason``.
"""

from __future__ import annotations

from typing import Any

from lean_p2p.containers import (
    BlocksByRangeRequest,
    BlocksByRootRequest,
    SignedAggregatedAttestation,
    SignedAttestation,
    SignedBlock,
    Status,
)
from lean_p2p.net.protocol import GossipTopic, ReqRespProtocol, ResultCode
from lean_p2p.wire import gossip as wire_gossip
from lean_p2p.wire import reqresp as wire_reqresp
from lean_p2p.wire.errors import WireError
from lean_p2p.wire.snappy import MAX_PAYLOAD_SIZE, compress_block, decompress_block

__all__ = [
    "MAX_PAYLOAD_SIZE",
    "GossipMessage",
    "Request",
    "ResponseChunkDecoder",
    "ResponsePayload",
    "decode_gossip",
    "decode_request",
    "encode_error_chunk",
    "encode_gossip",
    "encode_request",
    "encode_success_chunk",
    "gossip_message_id",
    "request_protocol",
]

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


def request_protocol(request: Request) -> ReqRespProtocol:
    for protocol, request_type in _REQUEST_TYPES.items():
        if type(request) is request_type:
            return protocol
    raise TypeError(f"not a lean request: {type(request).__name__}")


# ---------------------------------------------------------------------- gossip


def gossip_message_id(topic: str, data: bytes) -> tuple[bytes, bytes | None]:
    """The spec's 20-byte message id, and the decompressed payload when it is valid
    snappy within the size limit (so the validator does not decompress again)."""
    topic_bytes = topic.encode()
    try:
        payload = decompress_block(data, MAX_PAYLOAD_SIZE)
    except WireError:
        domain = wire_gossip.INVALID_SNAPPY_DOMAIN
        return wire_gossip.compute_message_id(domain, topic_bytes, data), None
    domain = wire_gossip.VALID_SNAPPY_DOMAIN
    return wire_gossip.compute_message_id(domain, topic_bytes, payload), payload


def encode_gossip(message: GossipMessage) -> bytes:
    return compress_block(message.encode())


def decode_gossip(topic: GossipTopic, payload: bytes) -> GossipMessage:
    """Decode an already decompressed gossip payload into the topic's container."""
    message: GossipMessage = _GOSSIP_TYPES[topic].decode(payload)
    return message


# -------------------------------------------------------------------- req/resp


def encode_request(request: Request) -> bytes:
    return wire_reqresp.encode_request(request.encode())


def decode_request(protocol: ReqRespProtocol, data: bytes) -> Request:
    """Decode a whole request stream (the requester half-closed after it)."""
    request: Request = _REQUEST_TYPES[protocol].decode(wire_reqresp.decode_request(data))
    return request


def encode_success_chunk(payload: ResponsePayload) -> bytes:
    """Raises :class:`~lean_p2p.wire.errors.ReqRespError` over the 10 MiB limit."""
    return wire_reqresp.encode_response_chunk(ResultCode.SUCCESS, payload.encode())


def encode_error_chunk(code: ResultCode, message: str) -> bytes:
    return wire_reqresp.encode_error_chunk(code, message)


class ResponseChunkDecoder:
    """Incremental decoder of a response stream: ``feed`` bytes, get whole chunks.

    Each chunk is ``(result code, payload)``: the decoded container for success, the
    error text otherwise. ``max_chunks`` bounds how many chunks the request allows;
    ``finish`` at end of stream raises when the stream stopped inside a chunk.
    """

    __slots__ = ("_decoder", "_payload_type")

    def __init__(self, protocol: ReqRespProtocol, max_chunks: int | None = None) -> None:
        self._decoder = wire_reqresp.ResponseDecoder(MAX_PAYLOAD_SIZE, max_chunks)
        self._payload_type: Any = _RESPONSE_TYPES[protocol]

    def feed(self, data: bytes) -> list[tuple[ResultCode, ResponsePayload | str]]:
        decoded: list[tuple[ResultCode, ResponsePayload | str]] = []
        for chunk in self._decoder.feed(data):
            if chunk.is_success:
                decoded.append((ResultCode.SUCCESS, self._payload_type.decode(chunk.payload)))
            else:
                decoded.append((chunk.code, chunk.error_message()))
        return decoded

    def finish(self) -> None:
        self._decoder.finish()

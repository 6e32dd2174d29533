"""Byte-level codecs of the lean protocol. Any thread: pure functions, no I/O.

Every decoder raises only :class:`WireError` subclasses on bad input, each carrying
a ``reason`` (the leanSpec vectors' ``rejectionReason``) and a ``detail``.
"""

from lean_p2p.wire.errors import (
    RejectionReason,
    ReqRespError,
    SnappyError,
    VarintError,
    WireError,
)
from lean_p2p.wire.gossip import (
    GossipTopicError,
    Topic,
    TopicKind,
    compute_message_id,
    gossip_message_id,
)
from lean_p2p.wire.reqresp import (
    MAX_ERROR_MESSAGE_BYTES,
    RequestDecoder,
    ResponseChunk,
    ResponseDecoder,
    decode_request,
    decode_response,
    encode_error_chunk,
    encode_request,
    encode_response_chunk,
)
from lean_p2p.wire.snappy import (
    MAX_PAYLOAD_SIZE,
    FrameReader,
    compress_block,
    compress_frames,
    decompress_block,
    decompress_frames,
)
from lean_p2p.wire.varint import decode_varint, encode_varint, try_varint

__all__ = [
    "MAX_ERROR_MESSAGE_BYTES",
    "MAX_PAYLOAD_SIZE",
    "FrameReader",
    "GossipTopicError",
    "RejectionReason",
    "ReqRespError",
    "RequestDecoder",
    "ResponseChunk",
    "ResponseDecoder",
    "SnappyError",
    "Topic",
    "TopicKind",
    "VarintError",
    "WireError",
    "compress_block",
    "compress_frames",
    "compute_message_id",
    "decode_request",
    "decode_response",
    "decode_varint",
    "decompress_block",
    "decompress_frames",
    "encode_error_chunk",
    "encode_request",
    "encode_response_chunk",
    "encode_varint",
    "gossip_message_id",
    "try_varint",
]

"""Python values for what native producers push, and the mapping to mailbox lanes.

Any thread (pure values and functions). The numbers mirror the enums of
``bindings/lean_p2p.h``; a test checks that they agree with the header.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterator
from dataclasses import dataclass

from lean_p2p.net.protocol import GossipTopic, ReqRespProtocol
from lean_p2p.runtime.lanes import (
    AGGREGATES,
    ATTESTATIONS,
    BLOCKS,
    CONTROL,
    PEER_REQUESTS,
    RESPONSES,
)

__all__ = [
    "MAX_PEER_ID_LEN",
    "PROTOCOL_CODES",
    "RECORD_HEADER",
    "TOPIC_CODES",
    "EventKind",
    "NativeEvent",
    "PushResult",
    "UnroutableEvent",
    "iter_records",
    "lean_lane_for",
]

MAX_PEER_ID_LEN = 128

#: ``lean_p2p_record_header``: kind, channel, request_id, peer_id_len, payload_len.
RECORD_HEADER = struct.Struct("<IIQII")


class EventKind(enum.IntEnum):
    """``enum lean_p2p_event_kind``."""

    PEER_CONNECTED = 1
    PEER_DISCONNECTED = 2
    GOSSIP = 3
    REQUEST = 4
    RESPONSE_CHUNK = 5
    RESPONSE_END = 6
    REQUEST_FAILED = 7
    CUSTOM = 8


class PushResult(enum.IntEnum):
    """``enum lean_p2p_result``: what a push returned."""

    OK = 0
    FULL = 1
    ERR_INVALID = -1
    ERR_TOO_LARGE = -2
    ERR_NO_MEMORY = -3
    ERR_CLOSED = -4


#: ``enum lean_p2p_topic`` -> topic.
TOPIC_CODES: dict[int, GossipTopic] = {
    1: GossipTopic.BLOCK,
    2: GossipTopic.ATTESTATION,
    3: GossipTopic.AGGREGATION,
}

#: ``enum lean_p2p_protocol`` -> protocol.
PROTOCOL_CODES: dict[int, ReqRespProtocol] = {
    1: ReqRespProtocol.STATUS,
    2: ReqRespProtocol.BLOCKS_BY_ROOT,
    3: ReqRespProtocol.BLOCKS_BY_RANGE,
}

_KINDS = {kind.value: kind for kind in EventKind}


@dataclass(frozen=True, slots=True)
class NativeEvent:
    """One event as a native producer pushed it; the payload is still encoded.

    ``channel`` is a topic code for gossip and a protocol code for requests and
    responses (see :data:`TOPIC_CODES`, :data:`PROTOCOL_CODES`); decoding the payload is
    the consumer's business, exactly as for events from the Python driver.
    """

    kind: EventKind
    channel: int
    request_id: int
    peer_id: bytes
    payload: bytes

    @property
    def topic(self) -> GossipTopic | None:
        return TOPIC_CODES.get(self.channel) if self.kind is EventKind.GOSSIP else None

    @property
    def protocol(self) -> ReqRespProtocol | None:
        if self.kind in (EventKind.GOSSIP, EventKind.CUSTOM):
            return None
        return PROTOCOL_CODES.get(self.channel)


class UnroutableEvent(ValueError):
    """An event names a kind or channel no lane is meant for."""


def iter_records(data: bytes, count: int) -> Iterator[NativeEvent]:
    """Decode ``count`` packed records written by ``lean_p2p_ring_drain``.

    The ring validated every field at push time, so a bad record here means a broken
    build; it raises rather than guessing.
    """
    unpack = RECORD_HEADER.unpack_from
    header_size = RECORD_HEADER.size
    kinds = _KINDS
    offset = 0
    for _ in range(count):
        kind, channel, request_id, peer_id_len, payload_len = unpack(data, offset)
        offset += header_size
        peer_end = offset + peer_id_len
        payload_end = peer_end + payload_len
        if payload_end > len(data):
            raise ValueError(f"truncated native record at offset {offset - header_size}")
        yield NativeEvent(
            kinds[kind], channel, request_id, data[offset:peer_end], data[peer_end:payload_end]
        )
        offset = payload_end


_GOSSIP_LANES = {
    GossipTopic.BLOCK: BLOCKS,
    GossipTopic.AGGREGATION: AGGREGATES,
    GossipTopic.ATTESTATION: ATTESTATIONS,
}


def lean_lane_for(event: NativeEvent) -> str:
    """The lane of :data:`lean_p2p.runtime.lanes.LEAN_LANES` an event belongs to.

    Peer connections go to ``control`` (rare, and losing one desynchronises the peer
    table); embedder-defined events go to ``peer_requests``, a bounded lane that rejects
    and counts when full, so a chatty embedder cannot starve the node.
    """
    kind = event.kind
    if kind is EventKind.GOSSIP:
        topic = TOPIC_CODES.get(event.channel)
        if topic is None:
            raise UnroutableEvent(f"gossip event with unknown topic code {event.channel}")
        return _GOSSIP_LANES[topic]
    if kind in (EventKind.PEER_CONNECTED, EventKind.PEER_DISCONNECTED):
        return CONTROL
    if kind is EventKind.CUSTOM:
        return PEER_REQUESTS
    if event.channel not in PROTOCOL_CODES:
        raise UnroutableEvent(f"{kind.name} event with unknown protocol code {event.channel}")
    return PEER_REQUESTS if kind is EventKind.REQUEST else RESPONSES

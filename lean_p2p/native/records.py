"""Python values for what native producers push, and the mapping to mailbox lanes.

Any thread (pure values and functions). The numbers mirror the enums of
``bindings/lean_p2p.h``; a test checks that they agree with the header.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

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
    "decode_records",
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


class _EventDraft:
    """NativeEvent's slot layout without the frozen ``__setattr__`` (decoder only).

    A frozen dataclass's generated ``__init__`` sets each field through
    ``object.__setattr__``, about 0.5 us for five fields: with the ring it was the
    largest single cost of the loop thread's drain. The decoder fills this twin with
    plain slot stores and then assigns ``__class__``, which CPython permits between
    classes with the same slot layout: the result is an ordinary, frozen NativeEvent.
    """

    __slots__ = ("channel", "kind", "payload", "peer_id", "request_id")


def decode_records(data: bytes, count: int) -> list[NativeEvent]:
    """Decode ``count`` packed records written by ``lean_p2p_ring_drain``, in order.

    The ring validated every field at push time, so a bad record here means a broken
    build; it raises ``ValueError`` rather than guessing.
    """
    unpack = RECORD_HEADER.unpack_from
    header_size = RECORD_HEADER.size
    kinds = _KINDS
    new = object.__new__
    draft = _EventDraft
    frozen = NativeEvent
    events: list[NativeEvent] = []
    append = events.append
    offset = 0
    try:
        for _ in range(count):
            kind, channel, request_id, peer_id_len, payload_len = unpack(data, offset)
            offset += header_size
            peer_end = offset + peer_id_len
            payload_end = peer_end + payload_len
            # Plain slot stores, then the class switch (see _EventDraft): no call per
            # field, and no __init__ frame either.
            event: Any = new(draft)
            event.kind = kinds[kind]
            event.channel = channel
            event.request_id = request_id
            event.peer_id = data[offset:peer_end]
            event.payload = data[peer_end:payload_end]
            event.__class__ = frozen
            append(event)
            offset = payload_end
    except struct.error as error:  # a header cut short
        raise ValueError(f"truncated native record at offset {offset}: {error}") from None
    # Offsets only grow, so one check after the loop finds a record whose bytes were
    # cut short (its slices came out shorter) without a comparison per event.
    if offset > len(data):
        raise ValueError(f"truncated native record: {offset} bytes needed, {len(data)} given")
    return events


def iter_records(data: bytes, count: int) -> Iterator[NativeEvent]:
    """:func:`decode_records`, as an iterator."""
    return iter(decode_records(data, count))


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

"""Python values for what native producers push, their decoding, and the mapping to
mailbox lanes.

Any thread (pure values and functions); the decoders run on whichever thread drains
the ring, the loop thread. Drained records are decoded in C, one call per batch, by
the extension module ``lean_p2p.native._records`` where it is built
(:func:`record_decoder` says), else by the Python decoder here; both give the same
events. The numbers mirror the enums of
``bindings/lean_p2p.h``; a test checks that they agree with the header.
"""

from __future__ import annotations

import enum
import logging
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from lean_p2p.net.protocol import GossipTopic, ReqRespProtocol
from lean_p2p.runtime.lanes import (
    AGGREGATES,
    ATTESTATIONS,
    BLOCKS,
    CONTROL,
    PEER_REQUESTS,
    RESPONSES,
)

if TYPE_CHECKING:
    from typing_extensions import Buffer  # collections.abc.Buffer from Python 3.12

__all__ = [
    "MAX_PEER_ID_LEN",
    "PROTOCOL_CODES",
    "RECORD_HEADER",
    "TOPIC_CODES",
    "EventKind",
    "NativeEvent",
    "PushResult",
    "RouteTable",
    "UnroutableEvent",
    "decode_records",
    "decode_records_from",
    "iter_records",
    "lean_lane_for",
    "record_decoder",
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
    """NativeEvent's slot layout without the frozen ``__setattr__`` (Python decoder only).

    A frozen dataclass's generated ``__init__`` sets each field through
    ``object.__setattr__``, about 0.5 us for five fields. The Python decoder fills this
    twin with plain slot stores and then assigns ``__class__``, which CPython permits
    between classes with the same slot layout: the result is an ordinary, frozen
    NativeEvent. (The C decoder stores into the slots directly.)
    """

    __slots__ = ("channel", "kind", "payload", "peer_id", "request_id")


def _load_c_decoder() -> Any:
    """``lean_p2p.native._records`` bound to :class:`NativeEvent`, or None (not built,
    or the class's layout is not the one it writes: it refuses rather than guess)."""
    try:
        # The module itself, not the package: lean_p2p.native imports this module.
        import lean_p2p.native._records as c_records
    except ImportError:
        return None
    try:
        c_records.configure(NativeEvent, (None, *EventKind))
    except (TypeError, ValueError) as error:
        logging.getLogger(__name__).warning("C record decoder not used: %s", error)
        return None
    return c_records


_C_DECODER = _load_c_decoder()


def c_records() -> Any:
    """The C extension module ``lean_p2p.native._records``, configured for
    :class:`NativeEvent`, or None where it is not built or refused the class."""
    return _C_DECODER


def record_decoder() -> str:
    """Which decoder drains records here: ``"C"`` or ``"Python"`` (the extension module
    ``lean_p2p.native._records`` is not built)."""
    return "C" if _C_DECODER is not None else "Python"


def decode_records(data: bytes, count: int) -> list[NativeEvent]:
    """Decode ``count`` packed records written by ``lean_p2p_ring_drain``, in order.

    The ring validated every field at push time, so a bad record here means a broken
    build; it raises ``ValueError`` rather than guessing.
    """
    return decode_records_from(data, len(data), count)


def decode_records_from(buffer: Buffer, used: int, count: int) -> list[NativeEvent]:
    """:func:`decode_records` on the first ``used`` bytes of ``buffer`` (any bytes-like
    object, such as the ring's drain buffer: no copy of it is made)."""
    if _C_DECODER is not None:  # it checks the extent itself
        events: list[NativeEvent] = _C_DECODER.decode(buffer, used, count)
        return events
    view = memoryview(buffer)
    if not 0 <= used <= view.nbytes or count < 0:
        raise ValueError(f"bad extent: {used} bytes used of {view.nbytes}, {count} records")
    return _decode_in_python(bytes(view[:used]), count)


def _decode_in_python(data: bytes, count: int) -> list[NativeEvent]:
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
    except KeyError as error:
        raise ValueError(f"native record at offset {offset} has unknown kind {error}") from None
    # Offsets only grow, so one check after the loop finds a record whose bytes were
    # cut short (its slices came out shorter) without a comparison per event.
    if offset > len(data):
        raise ValueError(f"truncated native record: {offset} bytes needed, {len(data)} given")
    return events


def iter_records(data: bytes, count: int) -> Iterator[NativeEvent]:
    """:func:`decode_records`, as an iterator."""
    return iter(decode_records(data, count))


#: Columns of a :class:`RouteTable`: channels 0..6, then one for every larger channel.
_ROUTE_COLUMNS = 8
_UNROUTABLE = 0xFF


@dataclass(frozen=True, slots=True)
class RouteTable:
    """A route that reads only an event's kind and channel, as a table: the decoder
    then puts each event in its lane's list as it decodes it (in C where built), and
    no Python runs per event.

    Built once from the route function (:meth:`from_route`) by asking it about every
    kind and channel column; exact for any route that decides on kind and channel alone
    and treats every channel past 6 alike (:func:`lean_lane_for` does).
    """

    #: one byte per (kind, column): an index into ``lanes``, or 255 for unroutable
    cells: bytes
    lanes: tuple[str, ...]
    #: columns per kind in ``cells``: channels 0..6, then one for every larger channel
    WIDTH: ClassVar[int] = _ROUTE_COLUMNS

    @classmethod
    def from_route(cls, route: Callable[[NativeEvent], str]) -> RouteTable:
        lanes: list[str] = []
        cells = bytearray()
        for kind in range(len(EventKind) + 1):
            for column in range(_ROUTE_COLUMNS):
                channel = column if column < _ROUTE_COLUMNS - 1 else 0xFFFFFFFF
                if kind not in _KINDS:
                    cells.append(_UNROUTABLE)
                    continue
                try:
                    lane = route(NativeEvent(_KINDS[kind], channel, 0, b"", b""))
                except UnroutableEvent:
                    cells.append(_UNROUTABLE)
                    continue
                if lane not in lanes:
                    lanes.append(lane)
                cells.append(lanes.index(lane))
        # At most one lane per cell, 72 in all: every index fits below _UNROUTABLE.
        return cls(bytes(cells), tuple(lanes))

    def lane_index(self, event: NativeEvent) -> int:
        """The index in ``lanes`` of ``event``'s lane, or 255 if it has none."""
        column = min(event.channel, _ROUTE_COLUMNS - 1)
        return self.cells[event.kind * _ROUTE_COLUMNS + column]

    def decode(
        self, buffer: Buffer, used: int, count: int
    ) -> tuple[list[list[NativeEvent]], list[NativeEvent]]:
        """Decode records as :func:`decode_records_from` does, split by lane: returns
        one list per entry of ``lanes`` and one of unroutable events, each in drain
        order."""
        lanes = len(self.lanes)
        if _C_DECODER is not None:
            split: tuple[list[list[NativeEvent]], list[NativeEvent]] = _C_DECODER.decode_routed(
                buffer, used, count, self.cells, _ROUTE_COLUMNS, lanes
            )
            return split
        by_lane: list[list[NativeEvent]] = [[] for _ in range(lanes)]
        unroutable: list[NativeEvent] = []
        for event in decode_records_from(buffer, used, count):
            index = self.lane_index(event)
            (by_lane[index] if index < lanes else unroutable).append(event)
        return by_lane, unroutable


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

"""Record decoding and lane routing of native events (any thread)."""

from __future__ import annotations

import dataclasses

import pytest

from lean_p2p.native.records import (
    RECORD_HEADER,
    EventKind,
    NativeEvent,
    UnroutableEvent,
    _EventDraft,
    decode_records,
    iter_records,
    lean_lane_for,
)
from lean_p2p.net.protocol import GossipTopic, ReqRespProtocol


def _record(kind: int, channel: int, request_id: int, peer_id: bytes, payload: bytes) -> bytes:
    header = RECORD_HEADER.pack(kind, channel, request_id, len(peer_id), len(payload))
    return header + peer_id + payload


def test_packed_records_decode_in_order() -> None:
    data = _record(3, 1, 0, b"peer-a", b"\x00" * 10) + _record(4, 2, 99, b"", b"")
    assert list(iter_records(data, 2)) == [
        NativeEvent(EventKind.GOSSIP, 1, 0, b"peer-a", b"\x00" * 10),
        NativeEvent(EventKind.REQUEST, 2, 99, b"", b""),
    ]


def test_decoded_events_are_ordinary_frozen_native_events() -> None:
    """The decoder's fast construction (a slot twin, then a class switch) yields values
    indistinguishable from the constructor's: type, equality, hash, frozenness."""
    data = _record(3, 2, 7, b"peer", b"payload") + _record(8, 0, 0, b"", b"")
    decoded = decode_records(data, 2)
    built = [
        NativeEvent(EventKind.GOSSIP, 2, 7, b"peer", b"payload"),
        NativeEvent(EventKind.CUSTOM, 0, 0, b"", b""),
    ]
    assert decoded == built
    assert [hash(event) for event in decoded] == [hash(event) for event in built]
    for event in decoded:
        assert type(event) is NativeEvent
        with pytest.raises(dataclasses.FrozenInstanceError):
            event.request_id = 1  # type: ignore[misc]
    assert decoded[0].topic is not None  # the class's properties work too
    assert dataclasses.replace(decoded[0], request_id=8).request_id == 8


def test_the_draft_has_exactly_the_native_event_slots() -> None:
    # A field added to NativeEvent but not to the draft would break the class switch.
    assert set(_EventDraft.__slots__) == {field.name for field in dataclasses.fields(NativeEvent)}
    assert set(_EventDraft.__slots__) == set(NativeEvent.__slots__)


@pytest.mark.parametrize("cut", [1, 8, 15, 20])
def test_truncated_record_raises(cut: int) -> None:
    # Cut into the last record's payload, its peer id, and its header.
    data = _record(4, 2, 1, b"", b"x") + _record(3, 1, 0, b"peer", b"payload")
    with pytest.raises(ValueError, match="truncated"):
        list(iter_records(data[:-cut], 2))
    assert len(decode_records(data, 2)) == 2


@pytest.mark.parametrize(
    ("kind", "channel", "lane"),
    [
        (EventKind.GOSSIP, 1, "blocks"),
        (EventKind.GOSSIP, 2, "attestations"),
        (EventKind.GOSSIP, 3, "aggregates"),
        (EventKind.REQUEST, 1, "peer_requests"),
        (EventKind.RESPONSE_CHUNK, 2, "responses"),
        (EventKind.RESPONSE_END, 3, "responses"),
        (EventKind.REQUEST_FAILED, 1, "responses"),
        (EventKind.PEER_CONNECTED, 0, "control"),
        (EventKind.PEER_DISCONNECTED, 0, "control"),
        (EventKind.CUSTOM, 1234, "peer_requests"),
    ],
)
def test_events_route_to_their_lean_lane(kind: EventKind, channel: int, lane: str) -> None:
    assert lean_lane_for(NativeEvent(kind, channel, 0, b"", b"")) == lane


@pytest.mark.parametrize(
    ("kind", "channel"), [(EventKind.GOSSIP, 0), (EventKind.GOSSIP, 4), (EventKind.REQUEST, 9)]
)
def test_unknown_channels_are_unroutable(kind: EventKind, channel: int) -> None:
    with pytest.raises(UnroutableEvent):
        lean_lane_for(NativeEvent(kind, channel, 0, b"", b""))


def test_topic_and_protocol_views() -> None:
    gossip = NativeEvent(EventKind.GOSSIP, 3, 0, b"", b"")
    request = NativeEvent(EventKind.REQUEST, 2, 5, b"", b"")
    assert (gossip.topic, gossip.protocol) == (GossipTopic.AGGREGATION, None)
    assert (request.topic, request.protocol) == (None, ReqRespProtocol.BLOCKS_BY_ROOT)

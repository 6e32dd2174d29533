"""Record decoding and lane routing of native events (any thread)."""

from __future__ import annotations

import ctypes
import dataclasses
import gc

import pytest

from lean_p2p.native import records
from lean_p2p.native.records import (
    RECORD_HEADER,
    EventKind,
    NativeEvent,
    RouteTable,
    UnroutableEvent,
    _EventDraft,
    decode_records,
    decode_records_from,
    iter_records,
    lean_lane_for,
    record_decoder,
)
from lean_p2p.net.protocol import GossipTopic, ReqRespProtocol
from tests.native.conftest import native_build_hint


def _record(kind: int, channel: int, request_id: int, peer_id: bytes, payload: bytes) -> bytes:
    header = RECORD_HEADER.pack(kind, channel, request_id, len(peer_id), len(payload))
    return header + peer_id + payload


@pytest.fixture(params=["C", "Python"])
def decoder(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each decoding test runs on the C decoder and on the Python one (the fallback
    where the extension module is not built): they must give the same events."""
    if request.param == "Python":
        monkeypatch.setattr(records, "_C_DECODER", None)
    elif records._C_DECODER is None:
        pytest.fail(f"the C record decoder is not built: {native_build_hint()}")
    assert record_decoder() == request.param
    return str(request.param)


@pytest.mark.usefixtures("decoder")
def test_packed_records_decode_in_order() -> None:
    data = _record(3, 1, 0, b"peer-a", b"\x00" * 10) + _record(4, 2, 99, b"", b"")
    assert list(iter_records(data, 2)) == [
        NativeEvent(EventKind.GOSSIP, 1, 0, b"peer-a", b"\x00" * 10),
        NativeEvent(EventKind.REQUEST, 2, 99, b"", b""),
    ]


@pytest.mark.usefixtures("decoder")
def test_decoded_events_are_ordinary_frozen_native_events() -> None:
    """The decoders' fast construction (C: slot stores; Python: a slot twin, then a
    class switch) yields values indistinguishable from the constructor's: type,
    equality, hash, frozenness."""
    data = _record(3, 2, 2**64 - 1, b"peer", b"payload") + _record(8, 2**32 - 1, 0, b"", b"")
    decoded = decode_records(data, 2)
    built = [
        NativeEvent(EventKind.GOSSIP, 2, 2**64 - 1, b"peer", b"payload"),
        NativeEvent(EventKind.CUSTOM, 2**32 - 1, 0, b"", b""),
    ]
    assert decoded == built
    assert [hash(event) for event in decoded] == [hash(event) for event in built]
    for event in decoded:
        assert type(event) is NativeEvent
        assert type(event.kind) is EventKind
        with pytest.raises(dataclasses.FrozenInstanceError):
            event.request_id = 1  # type: ignore[misc]
    assert decoded[0].topic is not None  # the class's properties work too
    assert dataclasses.replace(decoded[0], request_id=8).request_id == 8


def test_decoding_reads_only_the_used_part_of_a_larger_buffer(decoder: str) -> None:
    data = _record(3, 1, 5, b"peer", b"payload")
    buffer = ctypes.create_string_buffer(data + b"\xff" * 100)  # the ring's drain buffer
    assert decode_records_from(buffer, len(data), 1) == decode_records(data, 1)
    del decoder


def test_the_c_decoder_leaves_events_to_reference_counting() -> None:
    """An event refers only to ints, bytes and an EventKind, so it cannot be in a
    cycle: the C decoder untracks it, and events queued in lanes cost the collector
    nothing. A repeated peer id is shared, not copied."""
    if records._C_DECODER is None:
        pytest.fail(f"the C record decoder is not built: {native_build_hint()}")
    data = _record(3, 1, 0, b"peer", b"a") + _record(3, 1, 1, b"peer", b"b")
    first, second = decode_records(data, 2)
    assert not gc.is_tracked(first)
    assert first.peer_id is second.peer_id
    assert first.payload == b"a" and second.payload == b"b"


def test_the_draft_has_exactly_the_native_event_slots() -> None:
    # A field added to NativeEvent but not to the draft would break the class switch.
    assert set(_EventDraft.__slots__) == {field.name for field in dataclasses.fields(NativeEvent)}
    assert set(_EventDraft.__slots__) == set(NativeEvent.__slots__)


def test_the_c_decoder_refuses_a_class_whose_layout_it_does_not_write() -> None:
    if records._C_DECODER is None:
        pytest.fail(f"the C record decoder is not built: {native_build_hint()}")
    from lean_p2p.native import _records

    @dataclasses.dataclass(frozen=True)
    class WithoutSlots:
        kind: int
        channel: int
        request_id: int
        peer_id: bytes
        payload: bytes

    try:
        with pytest.raises(TypeError, match="not a __slots__ field"):
            _records.configure(WithoutSlots, (None, *EventKind))
        # Still bound to NativeEvent: a refused configure changes nothing.
        assert type(decode_records(_record(3, 1, 0, b"", b""), 1)[0]) is NativeEvent
    finally:
        _records.configure(NativeEvent, (None, *EventKind))


@pytest.mark.usefixtures("decoder")
@pytest.mark.parametrize("cut", [1, 8, 15, 20])
def test_truncated_record_raises(cut: int) -> None:
    # Cut into the last record's payload, its peer id, and its header.
    data = _record(4, 2, 1, b"", b"x") + _record(3, 1, 0, b"peer", b"payload")
    with pytest.raises(ValueError, match="truncated"):
        list(iter_records(data[:-cut], 2))
    assert len(decode_records(data, 2)) == 2


@pytest.mark.usefixtures("decoder")
@pytest.mark.parametrize("kind", [0, 9, 2**32 - 1])
def test_a_record_of_unknown_kind_raises(kind: int) -> None:
    with pytest.raises(ValueError, match="unknown kind"):
        decode_records(_record(3, 1, 0, b"", b"") + _record(kind, 1, 0, b"", b""), 2)


_EVERY_HEADER = [
    (kind, channel) for kind in EventKind for channel in [*range(12), 1234, 2**31, 2**32 - 1]
]


def test_the_lean_route_table_agrees_with_lean_lane_for_on_every_header() -> None:
    table = RouteTable.from_route(lean_lane_for)
    for kind, channel in _EVERY_HEADER:
        event = NativeEvent(kind, channel, 0, b"", b"")
        index = table.lane_index(event)
        try:
            lane = lean_lane_for(event)
        except UnroutableEvent:
            assert index == 255, (kind, channel)
        else:
            assert table.lanes[index] == lane, (kind, channel)


@pytest.mark.usefixtures("decoder")
def test_a_route_table_splits_a_batch_by_lane_in_drain_order() -> None:
    table = RouteTable.from_route(lean_lane_for)
    headers = _EVERY_HEADER * 2
    data = b"".join(
        _record(kind, channel, number, b"peer", number.to_bytes(4, "little"))
        for number, (kind, channel) in enumerate(headers)
    )
    by_lane, unroutable = table.decode(data, len(data), len(headers))
    expected: dict[str, list[NativeEvent]] = {lane: [] for lane in table.lanes}
    expected_unroutable = []
    for event in decode_records(data, len(headers)):
        try:
            expected[lean_lane_for(event)].append(event)
        except UnroutableEvent:
            expected_unroutable.append(event)
    assert dict(zip(table.lanes, by_lane, strict=True)) == expected
    assert unroutable == expected_unroutable


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


@pytest.mark.parametrize(("used", "count"), [(-1, 1), (10_000, 1), (0, -1)])
@pytest.mark.usefixtures("decoder")
def test_an_extent_outside_the_buffer_is_refused(used: int, count: int) -> None:
    data = _record(3, 1, 0, b"", b"x")
    with pytest.raises(ValueError, match="bad extent"):
        decode_records_from(data, used, count)

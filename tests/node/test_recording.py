"""Recording files: every value kind round-trips; corrupt files fail with a typed error."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from lean_p2p.consensus.validator import PlaceholderSigner
from lean_p2p.containers import (
    AttestationData,
    Checkpoint,
    SignedAttestation,
    Status,
)
from lean_p2p.net.events import (
    Direction,
    GossipAttestation,
    InboundRequest,
    PeerConnected,
    RequestFailed,
    RequestFailure,
)
from lean_p2p.net.protocol import ReqRespProtocol, ResultCode
from lean_p2p.node.control import IntervalTick, SetAggregator
from lean_p2p.node.recording import (
    MAGIC,
    Recorder,
    RecordingError,
    decode_value,
    encode_value,
    iter_records,
    read_recording,
)


def _checkpoint(slot: int) -> Checkpoint:
    return Checkpoint(root=bytes([slot]) * 32, slot=slot)


def _attestation() -> SignedAttestation:
    data = AttestationData(
        slot=3, head=_checkpoint(3), target=_checkpoint(2), source=_checkpoint(1)
    )
    signature = PlaceholderSigner().sign_attestation(2, data)
    return SignedAttestation(validator_index=2, data=data, signature=signature)


EVENTS: list[object] = [
    PeerConnected("peer-a", Direction.INBOUND, "/ip4/127.0.0.1/udp/1/quic-v1"),
    GossipAttestation("peer-b", b"\x01" * 20, _attestation()),
    InboundRequest(
        "peer-c", 7, ReqRespProtocol.STATUS, Status(finalized=_checkpoint(0), head=_checkpoint(4))
    ),
    RequestFailed(
        "peer-d",
        9,
        ReqRespProtocol.BLOCKS_BY_ROOT,
        RequestFailure.ERROR_RESPONSE,
        ResultCode.RESOURCE_UNAVAILABLE,
        "gone",
    ),
    IntervalTick(time=1234.5, interval=17),
    SetAggregator(enabled=True),
]


@pytest.mark.parametrize(
    "value",
    [None, True, False, 0, -1, 2**70, 1.5, "", "text ✓", b"", b"\x00\xff", (1, "a", (b"x",))],
)
def test_plain_values_round_trip(value: object) -> None:
    out = bytearray()
    encode_value(value, out)
    assert decode_value(bytes(out)) == value


@pytest.mark.parametrize("event", EVENTS, ids=lambda event: type(event).__name__)
def test_events_round_trip(event: object) -> None:
    out = bytearray()
    encode_value(event, out)
    assert decode_value(bytes(out)) == event


def test_unrecordable_value_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        encode_value(object(), bytearray())


def test_recorder_writes_a_readable_file(tmp_path: Path) -> None:
    path = tmp_path / "events.rec"
    recorder = Recorder(path, {"node": "n0"})
    for index, event in enumerate(EVENTS):
        recorder.record(100.0 + index, "control", event)
    recorder.close()
    recording = read_recording(path)
    assert recording.header == {"node": "n0"}
    assert [item.item for item in recording.items] == EVENTS
    assert recording.duration == len(EVENTS) - 1
    assert not recording.truncated
    with pytest.raises(RecordingError):
        recorder.record(0.0, "control", EVENTS[0])


def test_truncated_last_record_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "events.rec"
    recorder = Recorder(path, {})
    for event in EVENTS:
        recorder.record(1.0, "control", event)
    recorder.close()
    path.write_bytes(path.read_bytes()[:-3])
    recording = read_recording(path)
    assert recording.truncated
    assert [item.item for item in recording.items] == EVENTS[:-1]


def _file_with_record(tmp_path: Path, payload: bytes) -> Path:
    path = tmp_path / "bad.rec"
    path.write_bytes(
        MAGIC + struct.pack(">I", 2) + b"{}" + struct.pack(">I", len(payload)) + payload
    )
    return path


def test_bad_magic(tmp_path: Path) -> None:
    path = tmp_path / "bad.rec"
    path.write_bytes(b"NOTAREC!" + b"\x00" * 8)
    with pytest.raises(RecordingError, match="magic"):
        read_recording(path)


def test_bad_header(tmp_path: Path) -> None:
    path = tmp_path / "bad.rec"
    path.write_bytes(MAGIC + struct.pack(">I", 3) + b"{{{")
    with pytest.raises(RecordingError, match="header"):
        read_recording(path)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (
            struct.pack(">d", 0.0) + b"S\x00\x00\x00\x01c" + b"O\x00\x00\x00\x04Nope\x00\x00",
            "unknown type",
        ),
        (struct.pack(">d", 0.0) + b"S\x00\x00\x00\x01c" + b"?", "tag"),
        (
            struct.pack(">d", 0.0)
            + b"S\x00\x00\x00\x01c"
            + b"C\x00\x00\x00\x06Status\x00\x00\x00\x01\x00",
            "decode",
        ),
        (
            struct.pack(">d", 0.0)
            + b"S\x00\x00\x00\x01c"
            + b"E\x00\x00\x00\x09Direction"
            + b"S\x00\x00\x00\x01?",
            "Direction",
        ),
        (struct.pack(">d", 0.0) + b"S\x00\x00\x00\x01c", "mid-value"),
        (struct.pack(">d", 0.0) + b"I\x01\x05" + b"N", "malformed"),
    ],
    ids=["unknown-type", "unknown-tag", "bad-ssz", "bad-enum", "missing-item", "lane-not-text"],
)
def test_corrupt_records_fail_with_a_typed_error(
    tmp_path: Path, payload: bytes, message: str
) -> None:
    with pytest.raises(RecordingError, match=message):
        list(iter_records(_file_with_record(tmp_path, payload)))


def test_corrupt_length_does_not_allocate(tmp_path: Path) -> None:
    path = tmp_path / "bad.rec"
    path.write_bytes(MAGIC + struct.pack(">I", 2) + b"{}" + struct.pack(">I", 2**31))
    with pytest.raises(RecordingError, match="corrupt length"):
        read_recording(path)


def test_replay_needs_the_node_configuration_in_the_header(tmp_path: Path) -> None:
    import asyncio

    from lean_p2p.node.replay import replay_recording

    path = tmp_path / "headless.rec"
    recorder = Recorder(path, {"node": "n0"})  # no genesis, no duties
    recorder.record(1.0, "control", EVENTS[0])
    recorder.close()
    with pytest.raises(RecordingError, match="configuration"):
        asyncio.run(replay_recording(path))

"""The type check of events at the boundary: every event passes, each kind of mistake
is named."""

from __future__ import annotations

import pytest

from lean_p2p.containers import BlocksByRangeRequest, Status
from lean_p2p.driver.samples import sample_attestation, sample_block
from lean_p2p.net.checks import EVENT_TYPES, check_event
from lean_p2p.net.events import (
    DialFailed,
    Direction,
    DriverStarted,
    DriverStopped,
    GossipAttestation,
    GossipBlock,
    InboundRequest,
    PeerConnected,
    PeerDisconnected,
    PublishFailed,
    RequestCompleted,
    RequestFailed,
    RequestFailure,
    ResponseChunk,
)
from lean_p2p.net.protocol import GossipTopic, ReqRespProtocol, ResultCode

CHECKPOINT_STATUS = Status.decode(bytes(80))

WELL_TYPED = [
    DriverStarted("p", ("/ip4/127.0.0.1/udp/1/quic-v1",)),
    DriverStopped("stopped"),
    DriverStopped("crashed", "boom"),
    PeerConnected("p", Direction.INBOUND, "/ip4/1"),
    PeerDisconnected("p", "gone"),
    DialFailed("/ip4/1", None, "refused"),
    DialFailed("/ip4/1", "p", "refused"),
    GossipBlock("p", b"\x01" * 20, sample_block(1)),
    GossipAttestation("p", b"\x01" * 20, sample_attestation()),
    InboundRequest("p", 1, ReqRespProtocol.BLOCKS_BY_RANGE, BlocksByRangeRequest(1, 2)),
    ResponseChunk("p", 1, ReqRespProtocol.STATUS, CHECKPOINT_STATUS),
    RequestCompleted("p", 1, ReqRespProtocol.STATUS, 1),
    RequestFailed("p", 1, ReqRespProtocol.STATUS, RequestFailure.TIMEOUT),
    RequestFailed(
        "p", 1, ReqRespProtocol.STATUS, RequestFailure.ERROR_RESPONSE, ResultCode(2), "x"
    ),
    PublishFailed(GossipTopic.BLOCK, b"\x01" * 20, "no peers"),
]


@pytest.mark.parametrize("event", WELL_TYPED, ids=lambda event: type(event).__name__)
def test_well_typed_events_pass(event: object) -> None:
    check_event(event)


def test_every_event_type_has_a_well_typed_example_here() -> None:
    # GossipAggregate has no sample builder; the rest must all be exercised above.
    covered = {type(event) for event in WELL_TYPED}
    assert {cls.__name__ for cls in EVENT_TYPES} - {c.__name__ for c in covered} == {
        "GossipAggregate"
    }


@pytest.mark.parametrize(
    ("event", "message"),
    [
        (
            PeerConnected("p", "inbound", "a"),  # type: ignore[arg-type]
            "PeerConnected.direction must be Direction, got str 'inbound'",
        ),
        (
            RequestCompleted("p", True, ReqRespProtocol.STATUS, 1),
            "RequestCompleted.request_id must be int, got bool True",
        ),
        (
            DriverStarted("p", ("ok", 7)),  # type: ignore[arg-type]
            "DriverStarted.listen_addresses must be tuple of str",
        ),
        (
            DialFailed("/ip4/1", b"p", "x"),  # type: ignore[arg-type]
            "DialFailed.peer_id must be str or None, got bytes",
        ),
        (
            GossipBlock("p", b"\x01", b"not a block"),  # type: ignore[arg-type]
            "GossipBlock.block must be SignedBlock, got bytes",
        ),
        (
            ResponseChunk("p", 1, ReqRespProtocol.STATUS, BlocksByRangeRequest(1, 1)),  # type: ignore[arg-type]
            "ResponseChunk.payload must be Status or SignedBlock",
        ),
    ],
)
def test_an_ill_typed_field_is_named(event: object, message: str) -> None:
    with pytest.raises(TypeError) as caught:
        check_event(event)
    assert message in str(caught.value)


def test_something_that_is_not_an_event_is_refused() -> None:
    with pytest.raises(TypeError, match="not a network event: str"):
        check_event("PeerConnected")

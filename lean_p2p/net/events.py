"""Events the network driver reports to the loop. Created on the driver's trio thread,
handled on the loop thread; immutable so the hand-off shares nothing mutable.

Request ids: ``request_id`` of :class:`InboundRequest` is allocated by the driver and
names the response stream the loop answers with ``SendResponse*`` commands; the
``request_id`` of :class:`ResponseChunk`, :class:`RequestCompleted` and
:class:`RequestFailed` is the one the loop chose in its ``SendRequest`` command.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lean_p2p.net.protocol import GossipTopic, ReqRespProtocol, ResultCode

if TYPE_CHECKING:
    from lean_p2p.containers import (
        BlocksByRangeRequest,
        BlocksByRootRequest,
        SignedAggregatedAttestation,
        SignedAttestation,
        SignedBlock,
        Status,
    )

__all__ = [
    "DialFailed",
    "Direction",
    "DriverStarted",
    "DriverStopped",
    "Event",
    "GossipAggregate",
    "GossipAttestation",
    "GossipBlock",
    "InboundRequest",
    "PeerConnected",
    "PeerDisconnected",
    "PublishFailed",
    "RequestCompleted",
    "RequestFailed",
    "RequestFailure",
    "ResponseChunk",
]


class Direction(enum.Enum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"


class RequestFailure(enum.Enum):
    """Why an outbound request ended without completing normally."""

    TIMEOUT = "timeout"
    ERROR_RESPONSE = "error_response"  # the peer answered with a non-zero result code
    STREAM_RESET = "stream_reset"  # stream closed or reset mid-response
    PROTOCOL_ERROR = "protocol_error"  # undecodable or oversized response
    DIAL_FAILED = "dial_failed"  # could not open a stream to the peer
    UNKNOWN_PEER = "unknown_peer"  # the peer is not connected
    DRIVER_STOPPED = "driver_stopped"  # the driver stopped with the request in flight


@dataclass(frozen=True, slots=True)
class DriverStarted:
    peer_id: str
    listen_addresses: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class DriverStopped:
    """The driver's thread ended. ``error`` is set when it crashed."""

    reason: str
    error: str | None = None


@dataclass(frozen=True, slots=True)
class PeerConnected:
    peer_id: str
    direction: Direction
    address: str


@dataclass(frozen=True, slots=True)
class PeerDisconnected:
    peer_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class DialFailed:
    address: str
    peer_id: str | None
    reason: str


@dataclass(frozen=True, slots=True)
class GossipBlock:
    peer_id: str  # the peer that propagated it to us
    message_id: bytes
    block: SignedBlock


@dataclass(frozen=True, slots=True)
class GossipAttestation:
    peer_id: str
    message_id: bytes
    attestation: SignedAttestation


@dataclass(frozen=True, slots=True)
class GossipAggregate:
    peer_id: str
    message_id: bytes
    aggregate: SignedAggregatedAttestation


@dataclass(frozen=True, slots=True)
class InboundRequest:
    peer_id: str
    request_id: int
    protocol: ReqRespProtocol
    request: Status | BlocksByRootRequest | BlocksByRangeRequest


@dataclass(frozen=True, slots=True)
class ResponseChunk:
    peer_id: str
    request_id: int
    protocol: ReqRespProtocol
    payload: Status | SignedBlock


@dataclass(frozen=True, slots=True)
class RequestCompleted:
    """The peer ended its response normally after ``chunks`` successful chunks."""

    peer_id: str
    request_id: int
    protocol: ReqRespProtocol
    chunks: int


@dataclass(frozen=True, slots=True)
class RequestFailed:
    peer_id: str
    request_id: int
    protocol: ReqRespProtocol
    failure: RequestFailure
    result_code: ResultCode | None = None
    message: str = ""


@dataclass(frozen=True, slots=True)
class PublishFailed:
    """A publish the loop asked for could not be sent (no peers, encode error, ...)."""

    topic: GossipTopic
    message_id: bytes
    reason: str


Event = (
    DriverStarted
    | DriverStopped
    | PeerConnected
    | PeerDisconnected
    | DialFailed
    | GossipBlock
    | GossipAttestation
    | GossipAggregate
    | InboundRequest
    | ResponseChunk
    | RequestCompleted
    | RequestFailed
    | PublishFailed
)

"""Commands the loop sends to the network driver. Created on the loop thread, executed on
the driver's trio thread (scheduled with ``TrioToken.run_sync_soon``, never blocking).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lean_p2p.net.protocol import GossipTopic, ResultCode

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
    "Command",
    "Dial",
    "Disconnect",
    "GossipVerdict",
    "Publish",
    "ReportValidation",
    "SendRequest",
    "SendResponseChunk",
    "SendResponseEnd",
    "SendResponseError",
]


@dataclass(frozen=True, slots=True)
class Publish:
    """Publish on a gossip topic; the driver encodes (SSZ + raw snappy) on its thread."""

    topic: GossipTopic
    message: SignedBlock | SignedAttestation | SignedAggregatedAttestation


@dataclass(frozen=True, slots=True)
class Dial:
    address: str  # multiaddr with /p2p/<peer id>


@dataclass(frozen=True, slots=True)
class Disconnect:
    peer_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class SendRequest:
    """Open a req/resp stream; the protocol follows from the request's type."""

    peer_id: str
    request_id: int  # chosen by the loop; echoed in the response events
    request: Status | BlocksByRootRequest | BlocksByRangeRequest


@dataclass(frozen=True, slots=True)
class SendResponseChunk:
    request_id: int  # the driver's id from InboundRequest
    payload: Status | SignedBlock


@dataclass(frozen=True, slots=True)
class SendResponseEnd:
    request_id: int


@dataclass(frozen=True, slots=True)
class SendResponseError:
    request_id: int
    result_code: ResultCode
    message: str


class GossipVerdict(enum.Enum):
    """The loop's verdict on a gossip message (gossipsub's validation result)."""

    ACCEPT = "accept"  # valid: the driver caches and forwards it
    REJECT = "reject"  # invalid: not forwarded, counted against the peer that sent it
    IGNORE = "ignore"  # not forwarded, no penalty (unknown blocks, duplicates, too old)


@dataclass(frozen=True, slots=True)
class ReportValidation:
    """The verdict on a gossip message the driver holds for validation: ``message_id``
    is the one its :class:`~lean_p2p.net.GossipBlock` (or attestation, aggregate) event
    carried. Only a driver that validates on the loop holds messages; to others this is
    a late verdict, counted and otherwise ignored."""

    message_id: bytes
    verdict: GossipVerdict


Command = (
    Publish
    | Dial
    | Disconnect
    | SendRequest
    | SendResponseChunk
    | SendResponseEnd
    | SendResponseError
    | ReportValidation
)

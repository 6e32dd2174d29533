"""Values that cross the boundary between the network driver and the loop. Any thread.

Everything here is immutable (``frozen=True, slots=True``) so it can be handed from the
driver's trio thread to the loop thread, and back, without sharing mutable state.

- :mod:`lean_p2p.net.events`: driver -> loop (enqueued into mailbox lanes).
- :mod:`lean_p2p.net.commands`: loop -> driver (scheduled with ``TrioToken.run_sync_soon``).
"""

from lean_p2p.net.commands import (
    Command,
    Dial,
    Disconnect,
    GossipVerdict,
    Publish,
    ReportValidation,
    SendRequest,
    SendResponseChunk,
    SendResponseEnd,
    SendResponseError,
)
from lean_p2p.net.events import (
    DialFailed,
    Direction,
    DriverStarted,
    DriverStopped,
    Event,
    GossipAggregate,
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

__all__ = [
    "Command",
    "Dial",
    "DialFailed",
    "Direction",
    "Disconnect",
    "DriverStarted",
    "DriverStopped",
    "Event",
    "GossipAggregate",
    "GossipAttestation",
    "GossipBlock",
    "GossipTopic",
    "GossipVerdict",
    "InboundRequest",
    "PeerConnected",
    "PeerDisconnected",
    "Publish",
    "PublishFailed",
    "ReportValidation",
    "ReqRespProtocol",
    "RequestCompleted",
    "RequestFailed",
    "RequestFailure",
    "ResponseChunk",
    "ResultCode",
    "SendRequest",
    "SendResponseChunk",
    "SendResponseEnd",
    "SendResponseError",
]

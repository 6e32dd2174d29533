"""The standard lanes of a lean node's mailbox, in priority order.

Any thread may read these (immutable values); the mailbox built from them drains on
the loop thread. Policies follow Lighthouse's beacon processor and zeam's chain worker:

=============  ==============  =====================================================
lane           when full       why
=============  ==============  =====================================================
control        never drop      liveness: stop, ticks, timer expiries
verified       never drop      results of our own verifications: bounded by the
                               verification service's capacity, which refuses first
responses      reject newest   we asked for them; the requester checks headroom first
blocks         reject newest   order matters; a rejected block is refetched by root
aggregates     evict oldest    freshness: served newest first
attestations   evict oldest    freshness: served newest first
peer_requests  reject newest   spam-prone: status, blocks-by-root from peers
=============  ==============  =====================================================
"""

from __future__ import annotations

from lean_p2p.runtime.mailbox import LaneSpec, OverflowPolicy

__all__ = [
    "AGGREGATES",
    "ATTESTATIONS",
    "BLOCKS",
    "CONTROL",
    "LEAN_LANES",
    "PEER_REQUESTS",
    "RESPONSES",
    "VERIFIED",
]

CONTROL = "control"
VERIFIED = "verified"
RESPONSES = "responses"
BLOCKS = "blocks"
AGGREGATES = "aggregates"
ATTESTATIONS = "attestations"
PEER_REQUESTS = "peer_requests"

#: Priority order: the drain serves these top to bottom, a quantum each per round.
LEAN_LANES: tuple[LaneSpec, ...] = (
    LaneSpec(CONTROL, capacity=1_024, policy=OverflowPolicy.NEVER_DROP, quantum=64),
    LaneSpec(VERIFIED, capacity=1_024, policy=OverflowPolicy.NEVER_DROP, quantum=64),
    LaneSpec(RESPONSES, capacity=1_024, policy=OverflowPolicy.REJECT_NEWEST, quantum=32),
    LaneSpec(BLOCKS, capacity=1_024, policy=OverflowPolicy.REJECT_NEWEST, quantum=16),
    LaneSpec(AGGREGATES, capacity=4_096, policy=OverflowPolicy.EVICT_OLDEST, quantum=64),
    LaneSpec(ATTESTATIONS, capacity=16_384, policy=OverflowPolicy.EVICT_OLDEST, quantum=128),
    LaneSpec(PEER_REQUESTS, capacity=1_024, policy=OverflowPolicy.REJECT_NEWEST, quantum=16),
)

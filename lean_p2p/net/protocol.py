"""Names of the lean protocol's gossip topics, req/resp protocols and result codes.

Any thread. The byte-level codecs live in :mod:`lean_p2p.wire`.
"""

from __future__ import annotations

import enum

__all__ = ["NETWORK_NAME", "GossipTopic", "ReqRespProtocol", "ResultCode"]

#: The network (fork digest) component of every gossip topic.
NETWORK_NAME = "12345678"


class GossipTopic(enum.Enum):
    """The gossip topics a lean node subscribes to (the value is the topic's name part)."""

    BLOCK = "block"
    ATTESTATION = "attestation_0"
    AGGREGATION = "aggregation"

    def topic_string(self, network: str = NETWORK_NAME) -> str:
        """The full gossipsub topic, e.g. ``/leanconsensus/12345678/block/ssz_snappy``."""
        return f"/leanconsensus/{network}/{self.value}/ssz_snappy"


class ReqRespProtocol(enum.Enum):
    """Request/response protocols (the value is the libp2p protocol id)."""

    STATUS = "/leanconsensus/req/status/1/ssz_snappy"
    BLOCKS_BY_ROOT = "/leanconsensus/req/blocks_by_root/1/ssz_snappy"
    BLOCKS_BY_RANGE = "/leanconsensus/req/blocks_by_range/1/ssz_snappy"


class ResultCode(enum.IntEnum):
    """The first byte of every response chunk."""

    SUCCESS = 0
    INVALID_REQUEST = 1
    SERVER_ERROR = 2
    RESOURCE_UNAVAILABLE = 3

    @classmethod
    def from_byte(cls, value: int) -> ResultCode:
        """Read a result byte: 4-127 count as server error, 128-255 as invalid request."""
        if value <= 3:
            return cls(value)
        return cls.SERVER_ERROR if value < 128 else cls.INVALID_REQUEST

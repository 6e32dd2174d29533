"""The one error hierarchy of every byte-level codec. Any thread.

Every decoder in :mod:`lean_p2p.wire` and :mod:`lean_p2p.containers` raises only a
subclass of :class:`WireError` on bad input. :class:`WireError` and
:class:`RejectionReason` are defined in :mod:`lean_p2p.containers.errors` (the lowest
layer, where the SSZ codec raises them) and are the same objects here.
"""

from __future__ import annotations

from lean_p2p.containers.errors import RejectionReason, WireError

__all__ = [
    "RejectionReason",
    "ReqRespError",
    "SnappyError",
    "VarintError",
    "WireError",
]


class VarintError(WireError):
    """A malformed, truncated, over-long or over-limit unsigned varint."""


class SnappyError(WireError):
    """A snappy block or frame stream that is malformed, corrupt or over its limit."""


class ReqRespError(WireError):
    """A req/resp request or response chunk that violates the framing or its limits."""

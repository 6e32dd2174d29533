"""The one error hierarchy of every byte-level codec. Any thread.

Every decoder in :mod:`lean_p2p.wire` and :mod:`lean_p2p.containers` raises only a
subclass of :class:`WireError` on bad input. The ``reason`` is the machine-readable
rejection code (the leanSpec vectors' ``rejectionReason``); ``detail`` says what was
wrong, for logs.
"""

from __future__ import annotations

import enum

__all__ = [
    "RejectionReason",
    "ReqRespError",
    "SnappyError",
    "VarintError",
    "WireError",
]


class RejectionReason(enum.Enum):
    """Why an input was refused; the values match the vectors' ``rejectionReason``."""

    DECODE_ERROR = "DECODE_ERROR"


class WireError(ValueError):
    """Bad bytes from the network: the input is refused, nothing else happens."""

    def __init__(self, detail: str, reason: RejectionReason = RejectionReason.DECODE_ERROR):
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


class VarintError(WireError):
    """A malformed, truncated, over-long or over-limit unsigned varint."""


class SnappyError(WireError):
    """A snappy block or frame stream that is malformed, corrupt or over its limit."""


class ReqRespError(WireError):
    """A req/resp request or response chunk that violates the framing or its limits."""

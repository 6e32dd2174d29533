"""The root of every byte-level codec's errors. Any thread.

It lives in the lowest layer so that the SSZ codec here and the wire codecs above
(:mod:`lean_p2p.wire`, which re-exports both names from :mod:`lean_p2p.wire.errors`)
share one hierarchy without this layer importing the one above it. Every decoder raises
only a subclass of :class:`WireError` on bad input, so one ``except WireError`` covers
every way bytes from the network can be wrong. The ``reason`` is the machine-readable
rejection code (the leanSpec vectors' ``rejectionReason``); ``detail`` says what was
wrong, for logs.
"""

from __future__ import annotations

import enum

__all__ = ["RejectionReason", "WireError"]


class RejectionReason(enum.Enum):
    """Why an input was refused; the values match the vectors' ``rejectionReason``."""

    DECODE_ERROR = "DECODE_ERROR"


class WireError(ValueError):
    """Bad bytes from the network: the input is refused, nothing else happens."""

    def __init__(self, detail: str, reason: RejectionReason = RejectionReason.DECODE_ERROR):
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail

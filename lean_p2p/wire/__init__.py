"""Byte-level codecs of the lean protocol. Any thread: pure functions, no I/O.

Every decoder raises only :class:`WireError` subclasses on bad input.
"""

from lean_p2p.wire.errors import (
    RejectionReason,
    ReqRespError,
    SnappyError,
    VarintError,
    WireError,
)

__all__ = ["RejectionReason", "ReqRespError", "SnappyError", "VarintError", "WireError"]

"""Reading and resetting py-libp2p streams without surprises. Trio driver thread.

Shared by the gossipsub router and the req/resp protocols: a read that does not lose
the bytes py-libp2p still buffers when it reports the end of a stream, and a reset that
never raises (the stream may already be gone).
"""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["read_chunk", "reset_quietly"]

logger = logging.getLogger(__name__)


async def read_chunk(stream: Any) -> bytes | None:
    """Next chunk from a py-libp2p stream, or None at a clean end of stream."""
    from libp2p.network.stream.exceptions import StreamEOF

    from lean_p2p.driver.quic import take_data_left_at_end

    try:
        chunk: bytes = await stream.read(256 * 1024)
    except StreamEOF:
        # py-libp2p can report the end with the stream's last bytes still buffered
        # (see lean_p2p.driver.quic); the next read reports the end again.
        return take_data_left_at_end(stream) or None
    return chunk or None


async def reset_quietly(stream: Any) -> None:
    """Reset ``stream``; a failure (it is already closed or reset) is only logged."""
    try:
        await stream.reset()
    except Exception:
        logger.debug("stream reset failed", exc_info=True)

"""Every retry, backoff, interval and bound of the P2P actor, in one place. Any thread.

This module is the single source of truth: ``docs/p2p.md`` quotes these names, and the
core never spells a number of its own. All durations are seconds on the loop's
monotonic clock (the shell passes ``loop.time()`` as ``now``).

Retries of a fetch (by root or by range) wait ``retry_delay(attempt)``:
``FETCH_BACKOFF_BASE * FETCH_BACKOFF_FACTOR ** (attempt - 1)``, capped at
``FETCH_BACKOFF_CAP``; after ``FETCH_MAX_ATTEMPTS`` failed attempts the fetch is given up
and the chain is told (it may ask again later). With the values below the waits are
0.5, 1, 2, 4, 8 s and the sixth failure abandons the root: about 15.5 s of backoff
plus up to six request deadlines.
"""

from __future__ import annotations

__all__ = [
    "BOOTNODE_REDIAL_INTERVAL",
    "BY_ROOT_REQUESTS_PER_PEER",
    "FETCH_BACKOFF_BASE",
    "FETCH_BACKOFF_CAP",
    "FETCH_BACKOFF_FACTOR",
    "FETCH_MAX_ATTEMPTS",
    "MAX_BLOCKS_PER_REQUEST",
    "MAX_PEERS",
    "MAX_PENDING_ROOTS",
    "MAX_REQUESTS_IN_FLIGHT",
    "MAX_ROOTS_PER_REQUEST",
    "RANGE_GAP_TOLERANCE",
    "REQUEST_DEADLINE",
    "STATUS_REFRESH_INTERVAL",
    "retry_delay",
]

#: First retry waits this long after a failed fetch attempt.
FETCH_BACKOFF_BASE = 0.5
#: Each further failure multiplies the wait by this factor.
FETCH_BACKOFF_FACTOR = 2.0
#: No retry waits longer than this.
FETCH_BACKOFF_CAP = 8.0
#: A root (or a range batch) that failed this many times is abandoned and reported.
FETCH_MAX_ATTEMPTS = 6

#: The core's own deadline for any outbound request. The driver times requests out
#: itself (10-15 s in clients); this safety net, longer than the driver's, guarantees
#: that a request whose end event was lost still settles, so no fetch stays pending.
REQUEST_DEADLINE = 20.0

#: A bootnode that disconnected, or could not be dialled, is dialled again after this
#: fixed interval (not exponential: bootnodes are few and we always want them back).
BOOTNODE_REDIAL_INTERVAL = 5.0

#: A peer's Status is asked for again this long after the last successful exchange
#: (8 slots): heads move, and a lost exchange must not hide a peer that is ahead. A
#: failed exchange is retried after ``retry_delay``; ``FETCH_MAX_ATTEMPTS`` failures in a
#: row drop the peer.
STATUS_REFRESH_INTERVAL = 32.0

#: Protocol limit: roots in one BlocksByRoot request (List[Bytes32, 1024]).
MAX_ROOTS_PER_REQUEST = 1024
#: Protocol limit: blocks in one BlocksByRange request and in any response we serve.
MAX_BLOCKS_PER_REQUEST = 1024

#: BlocksByRoot requests in flight to one peer. Roots wanted meanwhile wait and go
#: together once it settles, so a burst of missing parents costs one round trip more,
#: not one request per root.
BY_ROOT_REQUESTS_PER_PEER = 1

#: A BlocksByRange chunk that does not extend the blocks accepted so far is still
#: accepted if it is at most this many slots ahead (a lost chunk: the chain fetches the
#: missing parent by root); further ahead, it is rejected so a wrong block can never
#: make range sync skip slots.
RANGE_GAP_TOLERANCE = 8

#: Bound of the root-fetch table; more roots are refused and counted.
MAX_PENDING_ROOTS = 16 * MAX_ROOTS_PER_REQUEST
#: Bound of block requests (BlocksByRoot and BlocksByRange) in flight; further work
#: waits for one to settle. Status requests, at most one per peer, come on top.
MAX_REQUESTS_IN_FLIGHT = 32
#: Bound of the peer table; further connections are disconnected with a reason.
MAX_PEERS = 64


def retry_delay(attempt: int) -> float:
    """Wait before retry number ``attempt`` (1 = after the first failure)."""
    if attempt < 1:
        raise ValueError(f"attempt must be >= 1, got {attempt}")
    # Compare exponents rather than computing a huge power for large attempt numbers.
    delay = FETCH_BACKOFF_BASE * FETCH_BACKOFF_FACTOR ** min(attempt - 1, 64)
    return min(delay, FETCH_BACKOFF_CAP)

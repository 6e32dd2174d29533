"""Bookkeeping of block fetches: roots wanted, requests in flight. Loop thread.

Pure data, no I/O: the core decides when to send and what to retry; these classes keep
the invariants that the reference design broke:

- a root is wanted at most once (deduplicated), and is in exactly one of three places:
  ready to send, in flight (``request_id`` set) or waiting out its backoff;
- every outbound request is one :class:`OutboundRequest` entry, removed exactly once
  when it settles (completed, failed, timed out, peer gone), whatever the response was.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator, Set
from dataclasses import dataclass, field

from lean_p2p.p2p.backoff import FETCH_MAX_ATTEMPTS, MAX_PENDING_ROOTS, MAX_ROOTS_PER_REQUEST

__all__ = ["OutboundRequest", "RequestKind", "RootFetch", "RootFetcher"]


class RequestKind(enum.Enum):
    STATUS = "status"
    BY_ROOT = "by_root"
    BY_RANGE = "by_range"


@dataclass(slots=True)
class OutboundRequest:
    """One request we sent; what came back so far."""

    request_id: int
    peer_id: str
    kind: RequestKind
    deadline: float
    roots: frozenset[bytes] = frozenset()  # BY_ROOT: the roots asked for
    start_slot: int = 0  # BY_RANGE
    count: int = 0  # BY_RANGE
    received: set[bytes] = field(default_factory=set)  # distinct accepted block roots
    rejected: int = 0  # chunks that matched nothing we asked for
    highest_slot: int = -1  # BY_RANGE: highest accepted slot
    last_root: bytes | None = None  # BY_RANGE: root of the last accepted block
    status_received: bool = False  # STATUS


@dataclass(slots=True)
class RootFetch:
    """One wanted root: how often it failed, with whom, and whether it is in flight."""

    attempts: int = 0
    failed_peers: set[str] = field(default_factory=set)
    request_id: int | None = None


class RootFetcher:
    """Wanted roots, deduplicated and bounded; which are ready to be requested."""

    __slots__ = ("_capacity", "_pending", "_ready")

    def __init__(self, capacity: int = MAX_PENDING_ROOTS) -> None:
        self._capacity = capacity
        self._pending: dict[bytes, RootFetch] = {}
        # Insertion-ordered set: roots go out in the order they were asked for.
        self._ready: dict[bytes, None] = {}

    def __len__(self) -> int:
        return len(self._pending)

    def __contains__(self, root: bytes) -> bool:
        return root in self._pending

    @property
    def ready_count(self) -> int:
        return len(self._ready)

    def ready_roots(self) -> Iterator[bytes]:
        return iter(tuple(self._ready))

    def items(self) -> Iterator[tuple[bytes, RootFetch]]:
        return iter(tuple(self._pending.items()))

    def is_ready(self, root: bytes) -> bool:
        return root in self._ready

    def get(self, root: bytes) -> RootFetch | None:
        return self._pending.get(root)

    def add(self, root: bytes) -> bool | None:
        """Want ``root``: True if added, False if already wanted, None if full."""
        if root in self._pending:
            return False
        if len(self._pending) >= self._capacity:
            return None
        self._pending[root] = RootFetch()
        self._ready[root] = None
        return True

    def mark_in_flight(self, roots: Iterable[bytes], request_id: int) -> None:
        for root in roots:
            del self._ready[root]
            self._pending[root].request_id = request_id

    def mark_ready(self, root: bytes) -> None:
        """The root's backoff ran out: it may be requested again."""
        fetch = self._pending.get(root)
        if fetch is not None and fetch.request_id is None:
            self._ready[root] = None

    def settle(self, root: bytes) -> bool:
        """The block arrived: forget the root. True if it was wanted."""
        self._ready.pop(root, None)
        return self._pending.pop(root, None) is not None

    def fail(self, root: bytes, peer_id: str) -> int | None:
        """The in-flight ``root`` did not come back from ``peer_id``.

        Returns the attempt count to back off for, or None if the root is now given up
        (and removed). The caller checks first that the root is in flight for the
        request that failed (:meth:`get`), so a stale failure never counts.
        """
        fetch = self._pending[root]
        fetch.request_id = None
        fetch.attempts += 1
        fetch.failed_peers.add(peer_id)
        if fetch.attempts >= FETCH_MAX_ATTEMPTS:
            del self._pending[root]
            return None
        return fetch.attempts

    def roots(self) -> tuple[bytes, ...]:
        return tuple(self._pending)

    def clear(self) -> None:
        self._pending.clear()
        self._ready.clear()

    def group_by_peer(
        self, ranked_peer_ids: list[str], busy_peer_ids: Set[str] = frozenset()
    ) -> list[tuple[str, tuple[bytes, ...]]]:
        """Ready roots as (peer, up to 1,024 roots) batches, in ask order.

        Each root goes to the best-ranked peer that has not failed for it; if every
        peer has, to the best-ranked peer (a retry elsewhere is impossible, a retry is
        still better than giving up early). Busy peers are passed over; a root whose
        every candidate is busy stays ready, to go with the next batch.
        """
        groups: dict[str, list[bytes]] = {}
        for root in self._ready:
            failed = self._pending[root].failed_peers
            candidates = [p for p in ranked_peer_ids if p not in failed] or ranked_peer_ids
            peer_id = next((p for p in candidates if p not in busy_peer_ids), None)
            if peer_id is not None:
                groups.setdefault(peer_id, []).append(root)
        batches: list[tuple[str, tuple[bytes, ...]]] = []
        for peer_id, roots in groups.items():
            for start in range(0, len(roots), MAX_ROOTS_PER_REQUEST):
                batches.append((peer_id, tuple(roots[start : start + MAX_ROOTS_PER_REQUEST])))
        return batches

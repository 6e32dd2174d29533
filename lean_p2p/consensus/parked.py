"""Parked blocks: blocks whose parent is unknown wait here for their ancestors. Loop thread.

When a block arrives before its parent (gossip during sync, a fork we missed), the store
cannot import it. The pool parks it, bounded in count and in age (every eviction is
counted), and collects the roots of the *missing* ancestors: the parents of parked
blocks that are neither known to the store nor parked themselves. Each :meth:`flush`
turns them into at most one :class:`BlocksByRootFetch` of up to 1,024 roots, so a gap of
300 blocks costs one round trip per batch of parents found, not one per root.

When a block is imported, :meth:`ParkedBlockPool.release_children` hands back the parked
blocks waiting on it, oldest first; :func:`import_with_parking` drives that loop so a
whole parked branch imports in order as soon as its base arrives.

Sans-IO: the pool does no I/O and reads no clock. It emits request values for the P2P
actor, which owns peers, timeouts and retries of the transport itself; ``now`` (seconds,
any monotonic origin) is passed in.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from lean_p2p.consensus.errors import ConsensusRejection, RejectionReason
from lean_p2p.containers import MAX_REQUEST_BLOCKS, SignedBlock
from lean_p2p.runtime.affinity import LoopAffinity, loop_only

__all__ = [
    "BlockImporter",
    "BlocksByRootFetch",
    "ImportReport",
    "ParkedBlockPool",
    "ParkedStatistics",
    "import_with_parking",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BlocksByRootFetch:
    """Ask peers for these blocks (one BlocksByRoot request; at most 1,024 roots)."""

    roots: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class ParkedStatistics:
    parked: int
    missing: int
    in_flight: int
    parked_total: int
    duplicates: int
    released: int
    evicted_for_space: int
    evicted_for_age: int
    requests: int
    roots_requested: int
    dropped: int  # descendants of a root that will never import (rejected, given up)


@dataclass(slots=True)
class _Parked:
    block: SignedBlock
    parent_root: bytes
    parked_at: float


@dataclass(slots=True)
class _Counters:
    parked_total: int = 0
    duplicates: int = 0
    released: int = 0
    evicted_for_space: int = 0
    evicted_for_age: int = 0
    requests: int = 0
    roots_requested: int = 0
    dropped: int = 0


class ParkedBlockPool:
    """Blocks waiting for an unknown parent, plus the roots to fetch for them.

    ``max_blocks`` bounds the pool (the oldest parked block is evicted to make room),
    ``max_age`` (seconds) bounds how long a block waits, ``retry_after`` (seconds) is how
    long a requested root stays in flight before it is asked for again.
    """

    def __init__(
        self,
        *,
        max_blocks: int = 2048,
        max_age: float = 10 * 60.0,
        retry_after: float = 15.0,
        max_roots_per_request: int = MAX_REQUEST_BLOCKS,
    ) -> None:
        if max_blocks < 1 or not 1 <= max_roots_per_request <= MAX_REQUEST_BLOCKS:
            raise ValueError("max_blocks >= 1 and 1 <= max_roots_per_request <= 1024")
        self.affinity = LoopAffinity("ParkedBlockPool", "Mailbox.put (the blocks lane)")
        self.max_blocks = max_blocks
        self.max_age = max_age
        self.retry_after = retry_after
        self.max_roots_per_request = max_roots_per_request
        # Arrival order doubles as eviction order (oldest first) and release order.
        self._parked: OrderedDict[bytes, _Parked] = OrderedDict()
        self._children: dict[bytes, list[bytes]] = {}
        self._requested_at: dict[bytes, float] = {}
        self._counters = _Counters()

    def __len__(self) -> int:
        return len(self._parked)

    def __contains__(self, root: object) -> bool:
        return root in self._parked

    @loop_only
    def highest_slot(self) -> int | None:
        """The highest slot of a waiting block (None when none waits): the network is at
        least there, whatever this node's head says."""
        return max((parked.block.block.slot for parked in self._parked.values()), default=None)

    @loop_only
    def park(self, root: bytes, signed_block: SignedBlock, now: float) -> bool:
        """Park ``signed_block`` (whose root is ``root``); False if it already waits here."""
        if root in self._parked:
            self._counters.duplicates += 1
            return False
        while len(self._parked) >= self.max_blocks:
            oldest = next(iter(self._parked))
            self._evict(oldest)
            self._counters.evicted_for_space += 1
        parent_root = signed_block.block.parent_root
        self._parked[root] = _Parked(signed_block, parent_root, now)
        self._children.setdefault(parent_root, []).append(root)
        # A block we asked for has arrived (it may still be waiting on its own parent).
        self._requested_at.pop(root, None)
        self._counters.parked_total += 1
        return True

    def _evict(self, root: bytes) -> None:
        entry = self._parked.pop(root)
        siblings = self._children.get(entry.parent_root)
        if siblings is not None:
            siblings.remove(root)
            if not siblings:
                del self._children[entry.parent_root]

    @loop_only
    def expire(self, now: float) -> int:
        """Evict blocks parked longer than ``max_age``; returns how many."""
        expired = [
            root for root, entry in self._parked.items() if now - entry.parked_at > self.max_age
        ]
        for root in expired:
            self._evict(root)
        self._counters.evicted_for_age += len(expired)
        if expired:
            logger.info("parked blocks expired", extra={"count": len(expired)})
        return len(expired)

    @loop_only
    def missing_roots(self, is_known: Callable[[bytes], bool]) -> list[bytes]:
        """Parents that parked blocks wait on and that nobody has (oldest need first)."""
        missing: list[bytes] = []
        for parent_root in self._children:
            if parent_root in self._parked or is_known(parent_root):
                continue
            missing.append(parent_root)
        return missing

    @loop_only
    def flush(self, now: float, is_known: Callable[[bytes], bool]) -> BlocksByRootFetch | None:
        """One request for the missing roots not already in flight (None if none).

        A root stays in flight for ``retry_after`` seconds; after that it is asked for
        again (the earlier request failed or came back without it).
        """
        self.expire(now)
        roots: list[bytes] = []
        for root in self.missing_roots(is_known):
            requested_at = self._requested_at.get(root)
            if requested_at is not None and now - requested_at < self.retry_after:
                continue
            roots.append(root)
            if len(roots) == self.max_roots_per_request:
                break
        # Forget in-flight roots nobody waits on any more (their children were evicted).
        waited_on = self._children.keys()
        for root in [r for r in self._requested_at if r not in waited_on]:
            del self._requested_at[root]
        if not roots:
            return None
        for root in roots:
            self._requested_at[root] = now
        self._counters.requests += 1
        self._counters.roots_requested += len(roots)
        return BlocksByRootFetch(tuple(roots))

    @loop_only
    def request_failed(self, roots: tuple[bytes, ...]) -> None:
        """The fetch for ``roots`` failed: make them eligible for the next flush."""
        for root in roots:
            self._requested_at.pop(root, None)

    @loop_only
    def release_children(self, parent_root: bytes) -> list[tuple[bytes, SignedBlock]]:
        """Remove and return the blocks that waited on ``parent_root``, oldest first."""
        released = self._take_children(parent_root)
        self._counters.released += len(released)
        return released

    def _take_children(self, parent_root: bytes) -> list[tuple[bytes, SignedBlock]]:
        children = self._children.pop(parent_root, None)
        self._requested_at.pop(parent_root, None)
        if not children:
            return []
        return [(root, self._parked.pop(root).block) for root in children]

    @loop_only
    def drop_descendants(self, root: bytes) -> list[bytes]:
        """Remove every parked block that waits, directly or not, on ``root``.

        For a root that will never import (rejected, or given up on by the fetcher):
        its descendants can never import either. Returns their roots, parents first.
        """
        dropped: list[bytes] = []
        pending = [root]
        while pending:
            for child_root, _ in self._take_children(pending.pop()):
                dropped.append(child_root)
                pending.append(child_root)
        self._counters.dropped += len(dropped)
        if dropped:
            logger.info("parked blocks dropped", extra={"count": len(dropped)})
        return dropped

    @loop_only
    def statistics(self) -> ParkedStatistics:
        counters = self._counters
        waiting_on = sum(1 for parent in self._children if parent not in self._parked)
        return ParkedStatistics(
            parked=len(self._parked),
            missing=waiting_on,
            in_flight=len(self._requested_at),
            parked_total=counters.parked_total,
            duplicates=counters.duplicates,
            released=counters.released,
            evicted_for_space=counters.evicted_for_space,
            evicted_for_age=counters.evicted_for_age,
            requests=counters.requests,
            roots_requested=counters.roots_requested,
            dropped=counters.dropped,
        )


@dataclass(slots=True)
class ImportReport:
    """What one :func:`import_with_parking` call did."""

    imported: list[bytes] = field(default_factory=list)
    #: the imported blocks themselves, in the order of ``imported`` (the store keeps only
    #: the unsigned block; whoever serves blocks to peers needs the signed one)
    imported_blocks: list[SignedBlock] = field(default_factory=list)
    duplicates: list[bytes] = field(default_factory=list)
    parked: list[bytes] = field(default_factory=list)
    rejected: list[tuple[bytes, RejectionReason]] = field(default_factory=list)


class BlockImporter(Protocol):
    """What the import loop needs of the fork-choice store."""

    def has_block(self, root: bytes) -> bool: ...

    def on_block(self, signed_block: SignedBlock) -> bytes: ...


def import_with_parking(
    store: BlockImporter,
    pool: ParkedBlockPool,
    signed_block: SignedBlock,
    now: float,
) -> ImportReport:
    """Import ``signed_block``, parking it if its parent is unknown, and then import
    every parked descendant it unblocks, parents before children.

    Rejections are returned (with their reason), not raised: a bad block from a peer
    must never escape the chain actor. A rejected block's parked descendants are
    dropped too (they can never import).
    """
    on_block = store.on_block
    report = ImportReport()
    queue: list[tuple[bytes | None, SignedBlock]] = [(None, signed_block)]
    while queue:
        known_root, block = queue.pop(0)
        root = known_root if known_root is not None else block.block.hash_tree_root()
        if store.has_block(root):
            # Already imported (a second copy from another peer): nothing waits on it,
            # since children of a known block import directly and never park.
            report.duplicates.append(root)
            continue
        try:
            on_block(block)
        except ConsensusRejection as rejection:
            if rejection.reason is RejectionReason.UNKNOWN_PARENT_BLOCK:
                pool.park(root, block, now)
                report.parked.append(root)
                continue
            report.rejected.append((root, rejection.reason))
            report.rejected += [
                (child, RejectionReason.UNKNOWN_PARENT_BLOCK)
                for child in pool.drop_descendants(root)
            ]
            continue
        report.imported.append(root)
        report.imported_blocks.append(block)
        queue.extend(pool.release_children(root))
    return report

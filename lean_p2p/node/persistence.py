"""Chain persistence: what the loop hands over, and the one writer thread that commits it.

Threads. :class:`ChainWriter`'s ``offer_*`` methods, :meth:`ChainWriter.flush` and
:meth:`ChainWriter.statistics` run on the loop thread and never block: they append
references to immutable values (blocks, state containers, votes) to a pending
:class:`~lean_p2p.node.database.WriteSet` and hand it to a bounded queue with
``put_nowait``, at most every :data:`HANDOVER_INTERVAL` (so at most four commits a
second; a sync's burst of :data:`HANDOVER_BLOCKS` blocks goes at once). The writer
thread (``storage:<name>``) takes what is queued, merges it into one transaction,
encodes (SSZ) and commits: every disk operation, fsync included, happens there. SQLite
releases the GIL while it writes and syncs.

Bounds. The queue holds at most :data:`QUEUE_BATCHES` hand-overs. While it is full,
changes wait in the loop's pending set (that is ordinary batching during a sync), where
checkpoints, votes and head coalesce (only the latest counts) and blocks pile up. Past
:data:`WARN_PENDING_BLOCKS` waiting blocks a WARNING says the disk is slower than the
chain (once per episode; INFO when it caught up). Past :data:`MAX_PENDING_BLOCKS` the
oldest pending blocks are dropped, counted (``blocks_dropped``) and logged at WARNING.
A dropped block is not lost to the node (the store holds it); after a restart it is
fetched from peers like any missing block.

What the writer measured goes back in plain counters (each written by the writer thread
only, read whole by the loop) and a bounded deque of commit timings (``append`` on one
thread, ``popleft`` on the other: both atomic). Commit time includes the fsync
(``synchronous=FULL``).

Close (:meth:`ChainWriter.close`, off the loop: it joins the thread) commits everything
pending first; a node that stops in order loses nothing.
"""

from __future__ import annotations

import collections
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from lean_p2p.containers import Checkpoint, SignedAggregatedAttestation, SignedBlock
from lean_p2p.node.config import GenesisSpec
from lean_p2p.node.database import (
    ChainDatabase,
    StoredChain,
    StoredCheckpoint,
    VotePool,
    WriteSet,
)
from lean_p2p.node.genesis import genesis_block, genesis_state

__all__ = [
    "HANDOVER_BLOCKS",
    "HANDOVER_INTERVAL",
    "MAX_PENDING_BLOCKS",
    "QUEUE_BATCHES",
    "WARN_PENDING_BLOCKS",
    "ChainWriter",
    "OpenedChain",
    "StorageClosed",
    "StorageStatistics",
    "network_id",
    "open_chain",
]

logger = logging.getLogger(__name__)

#: Hand-overs the queue holds; each is everything that changed since the previous one.
QUEUE_BATCHES = 8
#: The least time between two hand-overs (seconds), unless blocks pile up: every commit
#: wakes the writer thread, whose GIL hand-offs delay the loop (a commit per 5 ms block
#: added 0.3 ms to the loop's p99 lag, with or without encoding: ``bench storage``).
HANDOVER_INTERVAL = 0.25
#: Waiting blocks that are handed over at once (a range sync's burst).
HANDOVER_BLOCKS = 256
#: Blocks waiting on the loop side past which the disk is said to be behind.
WARN_PENDING_BLOCKS = 512
#: Blocks that may wait on the loop side while the queue is full.
MAX_PENDING_BLOCKS = 4096
#: Commit timings kept for the metrics between two drains.
_TIMINGS_KEPT = 4096


class StorageClosed(RuntimeError):
    """The writer is closed: nothing more is taken."""


@dataclass(frozen=True, slots=True)
class StorageStatistics:
    """The writer's figures (for ``Node.report()``, the metrics and the devnet JSON)."""

    path: str
    queue_depth: int  #: hand-overs waiting for the writer thread
    pending_blocks: int  #: blocks waiting on the loop side (queue full)
    blocks_offered: int
    blocks_written: int
    blocks_dropped: int  #: pending blocks dropped while the disk was behind
    #: anchor states written (one every SNAPSHOT_INTERVAL_SLOTS slots of finality)
    states_written: int
    vote_snapshots_written: int
    commits: int
    largest_commit_blocks: int
    bytes_written: int
    write_errors: int
    #: flushes that found the queue full (the changes waited for the next one)
    handovers_deferred: int
    #: times the pending blocks passed WARN_PENDING_BLOCKS
    behind_episodes: int
    #: the latest commit's duration (fsync included), in seconds
    last_commit_seconds: float
    slowest_commit_seconds: float


@dataclass(frozen=True, slots=True)
class OpenedChain:
    """A node's database, opened, and the chain it holds (None: a new database)."""

    database: ChainDatabase
    stored: StoredChain | None


def network_id(genesis: GenesisSpec) -> bytes:
    """What tells one network's database from another's: its genesis block root."""
    return genesis_block(genesis_state(genesis)).block.hash_tree_root()


def open_chain(data_dir: Path, genesis: GenesisSpec, *, check: bool = True) -> OpenedChain:
    """Open the database in ``data_dir`` and read its chain (blocking: before the loop
    serves, or on a worker thread). Raises :class:`~lean_p2p.node.database.DatabaseError`."""
    database = ChainDatabase.open(data_dir, network_id(genesis), check=check)
    try:
        stored = database.load()
    except BaseException:
        database.close()
        raise
    return OpenedChain(database, stored)


@dataclass(frozen=True, slots=True)
class CommitTiming:
    blocks: int
    seconds: float


class ChainWriter:
    """Hands chain changes from the loop to one writer thread; see the module docstring."""

    def __init__(
        self,
        database: ChainDatabase,
        *,
        name: str = "node",
        queue_batches: int = QUEUE_BATCHES,
        max_pending_blocks: int = MAX_PENDING_BLOCKS,
        on_committed: Callable[[WriteSet], None] | None = None,
        handover_interval: float = HANDOVER_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``on_committed`` runs on the writer thread after each durable commit (the
        crash test reports from it what a crash must not lose)."""
        self.database = database
        self._queue: queue.Queue[WriteSet | None] = queue.Queue(maxsize=queue_batches)
        self._max_pending_blocks = max_pending_blocks
        self._pending = WriteSet(blocks=[])
        self._pending_any = False
        self._closed = False
        self._behind = False
        # Loop-side counters.
        self._blocks_offered = 0
        self._blocks_dropped = 0
        self._handovers_deferred = 0
        self._behind_episodes = 0
        # Writer-side counters: written by the writer thread only.
        self._blocks_written = 0
        self._states_written = 0
        self._vote_snapshots = 0
        self._commits = 0
        self._largest_commit = 0
        self._bytes_written = 0
        self._write_errors = 0
        self._last_commit = 0.0
        self._slowest_commit = 0.0
        self._on_committed = on_committed
        self._handover_interval = handover_interval
        self._clock = clock
        self._last_handover = -float("inf")
        self.timings: collections.deque[CommitTiming] = collections.deque(maxlen=_TIMINGS_KEPT)
        self._thread = threading.Thread(target=self._run, name=f"storage:{name}", daemon=True)
        self._thread.start()

    # --- loop thread --------------------------------------------------------------------

    def offer_block(self, root: bytes, block: SignedBlock) -> None:
        self._check_open()
        self._pending.blocks.append((root, block))
        self._pending_any = True
        self._blocks_offered += 1
        waiting = len(self._pending.blocks)
        if waiting > WARN_PENDING_BLOCKS and not self._behind:
            self._behind = True
            self._behind_episodes += 1
            logger.warning(
                "storage behind: the disk is slower than the chain",
                extra={"pending_blocks": waiting, "queue_batches": self._queue.qsize()},
            )
        excess = waiting - self._max_pending_blocks
        if excess > 0:
            del self._pending.blocks[:excess]
            self._blocks_dropped += excess
            logger.warning(
                "storage behind: the disk is slower than the chain, pending block writes "
                "dropped (a restart fetches them from peers)",
                extra={"dropped": excess, "dropped_total": self._blocks_dropped},
            )

    def offer_checkpoints(
        self,
        anchor: StoredCheckpoint | None,
        finalized: Checkpoint | None,
        justified: Checkpoint | None,
    ) -> None:
        """A new anchor state, newer checkpoints (None: that one did not move)."""
        self._check_open()
        pending = self._pending
        pending.anchor = anchor or pending.anchor
        pending.finalized = finalized or pending.finalized
        pending.justified = justified or pending.justified
        self._pending_any = True

    def offer_votes(
        self, votes: Sequence[tuple[VotePool, SignedAggregatedAttestation]], time: int
    ) -> None:
        """A snapshot of the vote pools as of the store's ``time`` (in intervals)."""
        self._check_open()
        self._pending.votes = votes
        self._pending.time = time
        self._pending_any = True

    def offer_head(self, head: bytes, safe_target: bytes) -> None:
        self._check_open()
        self._pending.head = head
        self._pending.safe_target = safe_target
        self._pending_any = True

    def flush(self, *, now: bool = False) -> bool:
        """Hand what is pending to the writer thread if the queue has room and the last
        hand-over is :data:`HANDOVER_INTERVAL` old (or :data:`HANDOVER_BLOCKS` wait, or
        ``now``); whether nothing is left pending. Never blocks."""
        if not self._pending_any or self._closed:
            return True
        moment = self._clock()
        if (
            not now
            and moment - self._last_handover < self._handover_interval
            and len(self._pending.blocks) < HANDOVER_BLOCKS
        ):
            return False
        try:
            self._queue.put_nowait(self._pending)
        except queue.Full:
            self._handovers_deferred += 1
            return False
        if self._behind:
            self._behind = False
            logger.info("storage caught up: pending writes handed to the writer")
        self._last_handover = moment
        self._pending = WriteSet(blocks=[])
        self._pending_any = False
        return True

    def statistics(self) -> StorageStatistics:
        return StorageStatistics(
            path=str(self.database.path),
            queue_depth=self._queue.qsize(),
            pending_blocks=len(self._pending.blocks),
            blocks_offered=self._blocks_offered,
            blocks_written=self._blocks_written,
            blocks_dropped=self._blocks_dropped,
            states_written=self._states_written,
            vote_snapshots_written=self._vote_snapshots,
            commits=self._commits,
            largest_commit_blocks=self._largest_commit,
            bytes_written=self._bytes_written,
            write_errors=self._write_errors,
            handovers_deferred=self._handovers_deferred,
            behind_episodes=self._behind_episodes,
            last_commit_seconds=self._last_commit,
            slowest_commit_seconds=self._slowest_commit,
        )

    def drain_timings(self) -> list[CommitTiming]:
        drained: list[CommitTiming] = []
        while True:
            try:
                drained.append(self.timings.popleft())
            except IndexError:
                return drained

    def _check_open(self) -> None:
        if self._closed:
            raise StorageClosed("the chain writer is closed")

    # --- any thread, off the loop ---------------------------------------------------------

    def close(self, timeout: float | None = None) -> None:
        """Commit what is pending, stop the writer thread and close the database. Blocks
        (call it off the loop, e.g. ``await asyncio.to_thread(writer.close)``): the
        caller must have stopped offering. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._pending_any:
            self._queue.put(self._pending)  # may wait for room: this is off the loop
            self._pending = WriteSet(blocks=[])
            self._pending_any = False
        self._queue.put(None)
        self._thread.join(timeout)
        if self._thread.is_alive():
            logger.error("storage writer did not finish in time; the database stays open")
            return
        self.database.close()

    # --- writer thread --------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            changes = self._queue.get()
            stop = changes is None
            merged = changes or WriteSet(blocks=[])
            # What was queued meanwhile goes into the same transaction (one fsync); at
            # most a queue's worth, or a loop that refills as fast as this drains would
            # keep the commit from ever happening.
            for _ in range(self._queue.maxsize):
                if stop:
                    break
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                else:
                    merged = _merge(merged, more)
            if (
                merged.blocks
                or merged.anchor is not None
                or merged.finalized is not None
                or merged.justified is not None
                or merged.votes is not None
                or merged.head is not None
            ):
                self._commit(merged)
            if stop:
                return

    def _commit(self, changes: WriteSet) -> None:
        started = time.perf_counter()
        try:
            written = self.database.write(changes)
        except Exception as error:  # a full disk, a vanished file: said, counted, survived
            self._write_errors += 1
            logger.error(
                "storage write failed: these changes are not on disk",
                extra={"blocks": len(changes.blocks), "error": repr(error)},
            )
            return
        elapsed = time.perf_counter() - started
        blocks = len(changes.blocks)
        self._commits += 1
        self._blocks_written += blocks
        self._largest_commit = max(self._largest_commit, blocks)
        self._states_written += changes.anchor is not None
        self._vote_snapshots += changes.votes is not None
        self._bytes_written += written
        self._last_commit = elapsed
        self._slowest_commit = max(self._slowest_commit, elapsed)
        self.timings.append(CommitTiming(blocks, elapsed))
        if self._on_committed is not None:
            self._on_committed(changes)


def _merge(first: WriteSet, second: WriteSet) -> WriteSet:
    """``second`` happened after ``first``: blocks add up, the rest is the latest."""
    first.blocks.extend(second.blocks)
    return WriteSet(
        blocks=first.blocks,
        anchor=second.anchor or first.anchor,
        finalized=second.finalized or first.finalized,
        justified=second.justified or first.justified,
        votes=second.votes if second.votes is not None else first.votes,
        time=second.time if second.votes is not None else first.time,
        head=second.head or first.head,
        safe_target=second.safe_target or first.safe_target,
    )

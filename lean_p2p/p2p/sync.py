"""Range sync state: catching up a chain that peers say is ahead of ours. Loop thread.

Pure data, no I/O. One BlocksByRange request is in flight at a time, each for up to
``MAX_BLOCKS_PER_REQUEST`` slots, so a node 1,000 blocks behind catches up with one
request, not 1,000.

Accepted blocks ascend in slot and each is the child of the previous one (the first,
of a block the chain has), except for short gaps left by lost chunks (see
``P2PCore._extends_range``); ``anchor_root`` carries the link across batches. A batch
that breaks off (stream reset, lost end) keeps what it accepted and the next batch
resumes after it. Only a batch that brought nothing counts as a failed attempt.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lean_p2p.p2p.backoff import FETCH_MAX_ATTEMPTS, MAX_BLOCKS_PER_REQUEST

__all__ = ["RangeOutcome", "RangeSync"]


@dataclass(frozen=True, slots=True)
class RangeOutcome:
    """What settling one batch did: ``retry_attempt`` set means back off and retry."""

    progressed: bool
    finished: bool
    abandoned: bool
    retry_attempt: int | None


@dataclass(slots=True)
class RangeSync:
    """Sync slots ``cursor..target_slot`` (inclusive) from the best peers."""

    cursor: int
    target_slot: int
    attempts: int = 0
    request_id: int | None = None
    backing_off: bool = False
    anchor_root: bytes | None = None  # last block of the verified segment so far
    failed_peers: set[str] = field(default_factory=set)

    @property
    def finished(self) -> bool:
        return self.cursor > self.target_slot

    def next_count(self) -> int:
        return min(MAX_BLOCKS_PER_REQUEST, self.target_slot - self.cursor + 1)

    def settle(
        self,
        *,
        peer_id: str,
        start_slot: int,
        count: int,
        highest_slot: int,
        last_root: bytes | None,
        clean: bool,
    ) -> RangeOutcome:
        """Record how batch ``start_slot..start_slot+count-1`` ended.

        ``clean``: the peer completed normally, every announced chunk arrived and none
        was rejected. ``highest_slot`` and ``last_root``: the last block accepted
        (-1 and None if none).
        """
        self.request_id = None
        if last_root is not None:
            self.anchor_root = last_root
        if clean:
            self.cursor = start_slot + count
            self.attempts = 0
            return RangeOutcome(True, self.finished, False, None)
        if highest_slot >= start_slot:
            # Partial: keep what was accepted, resume after it.
            self.cursor = highest_slot + 1
            self.attempts = 0
            return RangeOutcome(True, self.finished, False, None)
        self.attempts += 1
        self.failed_peers.add(peer_id)
        if self.attempts >= FETCH_MAX_ATTEMPTS:
            return RangeOutcome(False, False, True, None)
        self.backing_off = True
        return RangeOutcome(False, False, False, self.attempts)

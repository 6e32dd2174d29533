"""An in-memory chain for exercising the P2P core: a test fake, public on purpose. Loop thread.

:class:`MemoryChain` implements :class:`~lean_p2p.p2p.chain.ChainReader` over a dict of
blocks with parent links, plus a bounded parked-block pool: a block whose parent is
unknown is parked, and the earliest unknown ancestor is asked for by root (all such
roots of one batch in one :class:`~lean_p2p.p2p.chain.FetchRoots`). It is what the
two-node simulation and the tests sync; it is not a fork-choice store (it assumes one
chain, the head is the highest imported slot, and it verifies nothing).

:func:`build_chain` makes a linked chain of blocks with empty proofs.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

from lean_p2p.p2p.chain import BlockReceived, FetchAbandoned, FetchRoots, ToChain
from lean_p2p.p2p.core import block_root

if TYPE_CHECKING:
    from lean_p2p.containers import Checkpoint, SignedBlock

__all__ = ["MemoryChain", "build_chain"]

ZERO_ROOT = bytes(32)


def build_chain(length: int, *, tag: bytes = b"", empty_slot_every: int = 0) -> list[SignedBlock]:
    """A genesis block (slot 0) and ``length - 1`` descendants, each the next one's parent.

    ``tag`` goes into every state root, so chains with different tags share no block.
    With ``empty_slot_every=k`` every k-th slot after genesis is left empty.
    """
    from lean_p2p.containers import Block, BlockBody, MultiMessageAggregate, SignedBlock

    state_root = (tag + bytes(32))[:32]
    blocks: list[SignedBlock] = []
    parent = ZERO_ROOT
    slot = 0
    while len(blocks) < length:
        block = Block(
            slot=slot,
            proposer_index=0,
            parent_root=parent,
            state_root=state_root,
            body=BlockBody(attestations=()),
        )
        blocks.append(SignedBlock(block=block, proof=MultiMessageAggregate(proof=b"")))
        parent = block.hash_tree_root()
        slot += 1
        if empty_slot_every and slot % empty_slot_every == 0:
            slot += 1
    return blocks


class MemoryChain:
    """Blocks by root, the canonical slot index and a bounded parked-block pool."""

    def __init__(
        self,
        blocks: Sequence[SignedBlock],
        *,
        max_parked: int = 4096,
        block_root: Callable[[SignedBlock], bytes] = block_root,
    ) -> None:
        if not blocks:
            raise ValueError("a chain needs at least its genesis block")
        self._block_root = block_root
        self._max_parked = max_parked
        self._blocks: dict[bytes, SignedBlock] = {}
        self._slots: dict[int, bytes] = {}
        self._head_root = ZERO_ROOT
        self._head_slot = -1
        # parent root -> {root: block} of parked children; root -> parent for walks.
        self._parked: dict[bytes, dict[bytes, SignedBlock]] = {}
        self._parked_parent: dict[bytes, bytes] = {}
        self.counters: Counter[str] = Counter()
        genesis, *rest = blocks
        self._store(genesis, self._block_root(genesis))
        self._genesis_root = self._head_root
        for block in rest:
            self._store(block, self._block_root(block))

    # --- ChainReader --------------------------------------------------------------

    def head(self) -> Checkpoint:
        from lean_p2p.containers import Checkpoint

        return Checkpoint(root=self._head_root, slot=self._head_slot)

    def finalized(self) -> Checkpoint:
        from lean_p2p.containers import Checkpoint

        return Checkpoint(root=self._genesis_root, slot=0)

    def root_at_slot(self, slot: int) -> bytes | None:
        return self._slots.get(slot)

    def get_block(self, root: bytes) -> SignedBlock | None:
        return self._blocks.get(root)

    def blocks_by_range(self, start_slot: int, count: int) -> list[SignedBlock]:
        end = min(start_slot + count, self._head_slot + 1)
        roots = (self._slots.get(slot) for slot in range(start_slot, end))
        return [self._blocks[root] for root in roots if root is not None]

    # --- import -----------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._blocks)

    @property
    def parked_count(self) -> int:
        return len(self._parked_parent)

    def append(self, block: SignedBlock) -> bytes:
        """Add a block we produced ourselves (its parent must be known)."""
        root = self._block_root(block)
        if block.block.parent_root not in self._blocks:
            raise ValueError("append needs a known parent")
        self._store(block, root)
        return root

    def receive(self, values: Iterable[ToChain]) -> FetchRoots | None:
        """Import what the P2P core handed over; return the roots to fetch, if any."""
        wanted: dict[bytes, None] = {}
        for value in values:
            match value:
                case BlockReceived(block=block, root=root):
                    missing = self.import_block(block, root)
                    if missing is not None:
                        wanted[missing] = None
                case FetchAbandoned(roots=roots):
                    # Ask again for roots that parked blocks still need (the simulation
                    # must converge); a real pool would also expire its parked blocks.
                    for root in roots:
                        if root in self._parked and root not in self._blocks:
                            self.counters["refetch_after_abandon"] += 1
                            wanted[root] = None
                case _:
                    self.counters["other_inputs"] += 1
        # A root wanted early in the batch may have arrived later in it.
        still_missing = tuple(
            root for root in wanted if root not in self._blocks and root not in self._parked_parent
        )
        return FetchRoots(still_missing) if still_missing else None

    def import_block(self, block: SignedBlock, root: bytes) -> bytes | None:
        """Import or park ``block``; returns the root to fetch when it had to park."""
        if root in self._blocks or root in self._parked_parent:
            self.counters["duplicates"] += 1
            return None
        parent = block.block.parent_root
        if parent in self._blocks:
            self._store(block, root)
            self._unpark_descendants(root)
            return None
        if len(self._parked_parent) >= self._max_parked:
            self.counters["parked_dropped_full"] += 1
            return None
        self._parked.setdefault(parent, {})[root] = block
        self._parked_parent[root] = parent
        self.counters["parked"] += 1
        return self._earliest_missing_ancestor(parent)

    def _earliest_missing_ancestor(self, root: bytes) -> bytes:
        while root in self._parked_parent:
            root = self._parked_parent[root]
        return root

    def _unpark_descendants(self, root: bytes) -> None:
        ready = [root]
        while ready:
            children = self._parked.pop(ready.pop(), {})
            for child_root, child in children.items():
                del self._parked_parent[child_root]
                self._store(child, child_root)
                self.counters["unparked"] += 1
                ready.append(child_root)

    def _store(self, block: SignedBlock, root: bytes) -> None:
        self._blocks[root] = block
        self._slots[block.block.slot] = root
        self.counters["imported"] += 1
        if block.block.slot > self._head_slot:
            self._head_slot = block.block.slot
            self._head_root = root

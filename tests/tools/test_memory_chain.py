"""The in-memory chain fake: reads, parking, unparking, batched fetch requests."""

from __future__ import annotations

import itertools

import pytest

from lean_p2p.p2p.chain import BlockReceived, BlockSource, FetchAbandoned, FetchRoots
from lean_p2p.p2p.core import block_root
from lean_p2p.tools.memory_chain import MemoryChain, build_chain
from tests.p2p.helpers import CHAIN, ROOTS


def received(index: int) -> BlockReceived:
    return BlockReceived(CHAIN[index], ROOTS[index], "peer", BlockSource.BY_RANGE)


def test_build_chain_links_parents_and_leaves_empty_slots() -> None:
    chain = build_chain(10, empty_slot_every=3)
    for parent, child in itertools.pairwise(chain):
        assert child.block.parent_root == block_root(parent)
        assert child.block.slot > parent.block.slot
    assert [b.block.slot for b in chain][:5] == [0, 1, 2, 4, 5]
    assert block_root(build_chain(2, tag=b"x")[1]) != block_root(build_chain(2)[1])


def test_reads() -> None:
    chain = MemoryChain(CHAIN[:10])
    assert chain.head().slot == 9 and chain.head().root == ROOTS[9]
    assert chain.finalized().root == ROOTS[0]
    assert chain.root_at_slot(4) == ROOTS[4] and chain.root_at_slot(99) is None
    assert chain.get_block(ROOTS[3]) == CHAIN[3]
    assert chain.blocks_by_range(8, 5) == [CHAIN[8], CHAIN[9]]


def test_orphans_park_and_ask_for_earliest_missing_ancestor_in_one_batch() -> None:
    chain = MemoryChain(CHAIN[:5])
    fetch = chain.receive([received(8), received(7), received(12)])
    # 8 and 7 both lead back to 6; 12 needs 11. One request for both.
    assert fetch == FetchRoots((ROOTS[6], ROOTS[11]))
    assert chain.parked_count == 3
    assert chain.receive([received(5), received(6)]) is None
    assert chain.head().slot == 8 and chain.parked_count == 1


def test_abandoned_roots_still_needed_are_asked_again() -> None:
    chain = MemoryChain(CHAIN[:5])
    chain.receive([received(7)])
    again = chain.receive([FetchAbandoned((ROOTS[6], ROOTS[30]), "gave up")])
    assert again == FetchRoots((ROOTS[6],))


def test_parked_pool_bounded() -> None:
    chain = MemoryChain(CHAIN[:2], max_parked=1)
    chain.receive([received(5), received(9)])
    assert chain.parked_count == 1 and chain.counters["parked_dropped_full"] == 1


def test_needs_genesis_and_known_parent_to_append() -> None:
    with pytest.raises(ValueError):
        MemoryChain([])
    chain = MemoryChain(CHAIN[:2])
    with pytest.raises(ValueError):
        chain.append(CHAIN[5])

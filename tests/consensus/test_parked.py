"""Parked blocks: batched fetches, bounds with counted evictions, in-order import."""

from __future__ import annotations

import itertools

import pytest

from lean_p2p.consensus.errors import RejectionReason
from lean_p2p.consensus.parked import BlocksByRootFetch, ParkedBlockPool, import_with_parking
from lean_p2p.consensus.signatures import mock_proof
from lean_p2p.consensus.store import ForkChoiceStore
from lean_p2p.consensus.validator import build_block
from lean_p2p.containers import Block, BlockBody, MultiMessageAggregate, SignedBlock
from tests.consensus.chain import devnet_store


def _fake_block(slot: int, parent_root: bytes) -> SignedBlock:
    block = Block(
        slot=slot,
        proposer_index=0,
        parent_root=parent_root,
        state_root=b"\x00" * 32,
        body=BlockBody(attestations=()),
    )
    return SignedBlock(block=block, proof=MultiMessageAggregate(proof=b""))


def _root(number: int) -> bytes:
    return number.to_bytes(32, "big")


def test_missing_parents_go_out_in_one_request_of_at_most_1024_roots() -> None:
    pool = ParkedBlockPool(max_blocks=5000)
    for number in range(1500):
        pool.park(_root(10_000 + number), _fake_block(5, _root(number)), now=0.0)
    first = pool.flush(0.0, is_known=lambda _root: False)
    assert isinstance(first, BlocksByRootFetch)
    assert first.roots == tuple(_root(number) for number in range(1024))
    second = pool.flush(0.0, is_known=lambda _root: False)
    assert second is not None
    assert second.roots == tuple(_root(number) for number in range(1024, 1500))
    # Everything is in flight now: nothing to ask for until the retry delay passes.
    assert pool.flush(1.0, is_known=lambda _root: False) is None
    retried = pool.flush(pool.retry_after + 0.5, is_known=lambda _root: False)
    assert retried is not None and len(retried.roots) == 1024
    stats = pool.statistics()
    assert (stats.requests, stats.roots_requested) == (3, 1024 + 476 + 1024)


def test_known_and_parked_parents_are_not_requested() -> None:
    pool = ParkedBlockPool()
    pool.park(_root(2), _fake_block(2, _root(1)), now=0.0)
    pool.park(_root(3), _fake_block(3, _root(2)), now=0.0)  # parent parked: not missing
    pool.park(_root(9), _fake_block(9, _root(8)), now=0.0)
    fetch = pool.flush(0.0, is_known=lambda root: root == _root(8))
    assert fetch == BlocksByRootFetch((_root(1),))


def test_failed_request_is_retried_at_the_next_flush() -> None:
    pool = ParkedBlockPool()
    pool.park(_root(2), _fake_block(2, _root(1)), now=0.0)
    fetch = pool.flush(0.0, is_known=lambda _root: False)
    assert fetch is not None
    pool.request_failed(fetch.roots)
    assert pool.flush(0.1, is_known=lambda _root: False) == fetch


def test_bounds_evict_and_count() -> None:
    pool = ParkedBlockPool(max_blocks=3, max_age=10.0)
    for number in range(5):
        pool.park(_root(100 + number), _fake_block(1, _root(number)), now=float(number))
    assert len(pool) == 3
    assert _root(100) not in pool and _root(104) in pool
    assert not pool.park(_root(104), _fake_block(1, _root(4)), now=5.0)
    assert pool.expire(now=13.5) == 2  # parked at 2.0 and 3.0 are older than 10 s
    stats = pool.statistics()
    assert (stats.evicted_for_space, stats.evicted_for_age, stats.duplicates) == (2, 2, 1)
    assert stats.parked == 1


def test_bad_configuration_is_refused() -> None:
    with pytest.raises(ValueError):
        ParkedBlockPool(max_roots_per_request=1025)


def _chain(store: ForkChoiceStore, length: int) -> list[SignedBlock]:
    """``length`` valid blocks on the head, built without importing them."""
    from lean_p2p.consensus.state_transition import state_transition

    blocks: list[SignedBlock] = []
    parent_root, state = store.head, store.head_state()
    for slot in range(1, length + 1):
        block, _, _ = build_block(
            state,
            slot=slot,
            proposer_index=slot % state.validator_count,
            parent_root=parent_root,
            known_block_roots=frozenset(),
            payloads={},
        )
        blocks.append(SignedBlock(block=block, proof=MultiMessageAggregate(proof=mock_proof(b"p"))))
        state = state_transition(state, block)
        parent_root = block.hash_tree_root()
    return blocks


def test_a_300_block_gap_costs_one_request_and_imports_in_order() -> None:
    store = devnet_store(4)
    chain = _chain(store, 300)
    pool = ParkedBlockPool()
    # Blocks arrive newest first (the worst order): every one is parked.
    for signed in reversed(chain[1:]):
        report = import_with_parking(store, pool, signed, now=0.0)
        assert len(report.parked) == 1 and not report.imported
    fetch = pool.flush(0.0, is_known=store.blocks.__contains__)
    assert fetch is not None and len(fetch.roots) == 1
    assert fetch.roots == (chain[1].block.parent_root,)
    # The one missing block arrives: the whole branch imports, parents first.
    report = import_with_parking(store, pool, chain[0], now=1.0)
    assert report.imported == [signed.block.hash_tree_root() for signed in chain]
    assert report.imported_blocks == chain  # the signed blocks, for serving to peers
    assert store.blocks[store.head].slot == 300
    assert len(pool) == 0
    assert pool.flush(2.0, is_known=store.blocks.__contains__) is None


def test_a_rejected_block_drops_its_parked_descendants() -> None:
    store = devnet_store(4)
    chain = _chain(store, 3)
    pool = ParkedBlockPool()
    import_with_parking(store, pool, chain[2], now=0.0)
    import_with_parking(store, pool, chain[1], now=0.0)
    assert len(pool) == 2
    # The base arrives with a proof that does not verify: it and everything parked on it
    # are refused, and the pool does not keep blocks that can never import.
    bad_base = SignedBlock(block=chain[0].block, proof=MultiMessageAggregate(proof=b"forged"))
    report = import_with_parking(store, pool, bad_base, now=0.0)
    roots = [signed.block.hash_tree_root() for signed in chain]
    assert report.rejected == [
        (roots[0], RejectionReason.INVALID_BLOCK_PROOF),
        (roots[1], RejectionReason.UNKNOWN_PARENT_BLOCK),
        (roots[2], RejectionReason.UNKNOWN_PARENT_BLOCK),
    ]
    assert len(pool) == 0 and not report.imported
    assert len(store.blocks) == 1
    stats = pool.statistics()
    assert (stats.dropped, stats.released) == (2, 0)


def test_dropping_descendants_of_a_given_up_root() -> None:
    pool = ParkedBlockPool()
    pool.park(_root(2), _fake_block(2, _root(1)), now=0.0)
    pool.park(_root(3), _fake_block(3, _root(2)), now=0.0)
    pool.park(_root(4), _fake_block(3, _root(2)), now=0.0)  # a sibling fork
    pool.park(_root(9), _fake_block(9, _root(8)), now=0.0)  # unrelated
    assert pool.drop_descendants(_root(1)) == [_root(2), _root(3), _root(4)]
    assert len(pool) == 1 and _root(9) in pool
    assert pool.drop_descendants(_root(1)) == []  # nothing waits on it any more
    assert pool.flush(0.0, is_known=lambda _root: False) == BlocksByRootFetch((_root(8),))
    stats = pool.statistics()
    assert (stats.dropped, stats.released, stats.missing) == (3, 0, 1)


@pytest.mark.stress
def test_any_arrival_order_imports_the_whole_chain_once() -> None:
    """A 120-block chain delivered in 20 random orders, with duplicates, always imports
    completely, in order, with every block imported exactly once."""
    import random

    store_template = devnet_store(4)
    chain = _chain(store_template, 120)
    roots = [signed.block.hash_tree_root() for signed in chain]
    for seed in range(20):
        generator = random.Random(seed)
        store = devnet_store(4)
        pool = ParkedBlockPool()
        deliveries = [*chain, *generator.sample(chain, 30)]  # 30 duplicates
        generator.shuffle(deliveries)
        imported: list[bytes] = []
        duplicates = 0
        for now, signed in enumerate(deliveries):
            report = import_with_parking(store, pool, signed, now=float(now))
            assert not report.rejected
            imported += report.imported
            duplicates += len(report.duplicates)
        assert sorted(imported) == sorted(roots), seed
        assert len(imported) == len(set(imported))
        # Parents always import before their children.
        position = {root: index for index, root in enumerate(imported)}
        for parent, child in itertools.pairwise(roots):
            assert position[parent] < position[child]
        assert len(pool) == 0
        assert store.blocks[store.head].slot == 120
        # Every extra copy is either a parked duplicate or a known-block duplicate.
        assert duplicates + pool.statistics().duplicates == 30


def test_the_pool_belongs_to_one_thread() -> None:
    import threading

    from lean_p2p.runtime.affinity import WrongThreadError

    pool = ParkedBlockPool()
    pool.park(_root(2), _fake_block(2, _root(1)), now=0.0)
    errors: list[BaseException] = []

    def foreign() -> None:
        try:
            pool.flush(0.0, is_known=lambda _root: False)
        except WrongThreadError as error:
            errors.append(error)

    thread = threading.Thread(target=foreign)
    thread.start()
    thread.join()
    assert len(errors) == 1
    assert pool.statistics().requests == 0

"""Block production and duties: a 4-validator local devnet justifies and finalizes."""

from __future__ import annotations

import pytest

from lean_p2p.consensus.errors import ConsensusRejection, RejectionReason
from lean_p2p.consensus.validator import Duty, PlaceholderSigner, duties_at, produce_block
from tests.consensus.chain import devnet_store, run_slots


def test_full_participation_justifies_and_finalizes() -> None:
    store = devnet_store(4)
    run_slots(store, 1, 12, voters=4)
    stats = store.statistics()
    assert stats.head_slot == 12
    assert stats.justified_slot >= 9
    assert stats.finalized_slot >= 8
    assert stats.rejections == 0


def test_below_two_thirds_nothing_justifies() -> None:
    store = devnet_store(4)
    run_slots(store, 1, 8, voters=2)
    stats = store.statistics()
    assert stats.head_slot == 8
    assert (stats.justified_slot, stats.finalized_slot) == (0, 0)


def test_blocks_carry_the_votes_once_per_distinct_vote() -> None:
    store = devnet_store(4)
    run_slots(store, 1, 6, voters=4)
    for block in store.blocks.values():
        votes = [attestation.data for attestation in block.body.attestations]
        assert len(votes) == len(set(votes))


def test_only_the_scheduled_proposer_may_propose() -> None:
    store = devnet_store(4)
    with pytest.raises(ConsensusRejection) as caught:
        produce_block(store, 1, 2, PlaceholderSigner())
    assert caught.value.reason is RejectionReason.WRONG_PROPOSER


def test_duties_by_interval() -> None:
    assert duties_at(5, 0, 1, 4) == (Duty.PROPOSE,)
    assert duties_at(5, 0, 2, 4) == ()
    assert duties_at(5, 1, 2, 4) == (Duty.ATTEST,)
    assert duties_at(5, 2, 2, 4) == (Duty.AGGREGATE,)
    assert duties_at(5, 3, 2, 4) == ()
    assert duties_at(5, 0, 0, 0) == ()

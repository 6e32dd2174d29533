"""Range sync batches: advance, resume after partial batches, back off, give up."""

from __future__ import annotations

from lean_p2p.p2p import backoff
from lean_p2p.p2p.sync import RangeOutcome, RangeSync

ROOT = b"r" * 32


def test_batches_are_capped_at_the_protocol_limit() -> None:
    sync = RangeSync(cursor=1, target_slot=3000)
    assert sync.next_count() == backoff.MAX_BLOCKS_PER_REQUEST
    sync.cursor = 2990
    assert sync.next_count() == 11


def test_clean_batch_advances_past_the_whole_window() -> None:
    sync = RangeSync(cursor=1, target_slot=10)
    outcome = sync.settle(
        peer_id="p", start_slot=1, count=10, highest_slot=9, last_root=ROOT, clean=True
    )
    assert outcome == RangeOutcome(True, True, False, None)
    assert sync.cursor == 11 and sync.anchor_root == ROOT


def test_partial_batch_resumes_after_last_accepted_block() -> None:
    sync = RangeSync(cursor=1, target_slot=100)
    outcome = sync.settle(
        peer_id="p", start_slot=1, count=100, highest_slot=40, last_root=ROOT, clean=False
    )
    assert outcome.progressed and not outcome.finished
    assert sync.cursor == 41 and sync.attempts == 0


def test_empty_failed_batches_back_off_then_give_up() -> None:
    sync = RangeSync(cursor=1, target_slot=100)
    outcomes = [
        sync.settle(
            peer_id=f"p{i}", start_slot=1, count=100, highest_slot=-1, last_root=None, clean=False
        )
        for i in range(backoff.FETCH_MAX_ATTEMPTS)
    ]
    assert [o.retry_attempt for o in outcomes[:-1]] == list(range(1, backoff.FETCH_MAX_ATTEMPTS))
    assert outcomes[-1].abandoned
    assert sync.cursor == 1 and len(sync.failed_peers) == backoff.FETCH_MAX_ATTEMPTS

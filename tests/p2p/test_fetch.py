"""Root-fetch bookkeeping: dedup, bound, readiness, failures, grouping by peer."""

from __future__ import annotations

from lean_p2p.p2p import backoff
from lean_p2p.p2p.fetch import RootFetcher

A, B, C = b"a" * 32, b"b" * 32, b"c" * 32


def test_add_deduplicates_and_respects_capacity() -> None:
    fetcher = RootFetcher(capacity=2)
    assert fetcher.add(A) is True
    assert fetcher.add(A) is False
    assert fetcher.add(B) is True
    assert fetcher.add(C) is None
    assert len(fetcher) == 2 and fetcher.ready_count == 2


def test_in_flight_roots_are_not_ready_until_they_fail_and_back_off() -> None:
    fetcher = RootFetcher()
    fetcher.add(A)
    fetcher.mark_in_flight([A], request_id=1)
    assert fetcher.ready_count == 0
    fetcher.mark_ready(A)  # still in flight: ignored
    assert fetcher.ready_count == 0
    assert (
        fetcher.fail(
            A,
            "peer",
        )
        == 1
    )
    assert fetcher.ready_count == 0  # backing off
    fetcher.mark_ready(A)
    assert list(fetcher.ready_roots()) == [A]


def test_root_given_up_after_max_attempts() -> None:
    fetcher = RootFetcher()
    fetcher.add(A)
    results = []
    for request_id in range(backoff.FETCH_MAX_ATTEMPTS):
        fetcher.mark_in_flight([A], request_id)
        results.append(fetcher.fail(A, "peer"))
        fetcher.mark_ready(A)
    assert results[-1] is None and A not in fetcher
    assert results[:-1] == list(range(1, backoff.FETCH_MAX_ATTEMPTS))


def test_settle_forgets_the_root() -> None:
    fetcher = RootFetcher()
    fetcher.add(A)
    assert fetcher.settle(A) is True
    assert fetcher.settle(A) is False
    assert len(fetcher) == 0 and fetcher.ready_count == 0


def test_group_by_peer_avoids_failed_and_busy_peers_and_splits_at_1024() -> None:
    fetcher = RootFetcher()
    many = [i.to_bytes(32, "big") for i in range(backoff.MAX_ROOTS_PER_REQUEST + 1)]
    for root in [A, *many]:
        fetcher.add(root)
    fetcher.mark_in_flight([A], 1)
    fetcher.fail(A, "p1")
    fetcher.mark_ready(A)
    batches = fetcher.group_by_peer(["p1", "p2"])
    # Ask order (A, back from its backoff, is now last); A avoids p1, where it failed.
    assert [(peer, len(roots)) for peer, roots in batches] == [
        ("p1", backoff.MAX_ROOTS_PER_REQUEST),
        ("p1", 1),
        ("p2", 1),
    ]
    assert batches[2] == ("p2", (A,))
    # p2 busy: A's only untried peer is taken, so A waits; the others still go to p1.
    batches = fetcher.group_by_peer(["p1", "p2"], busy_peer_ids={"p2"})
    assert all(A not in roots for _, roots in batches)
    # Every peer failed for A: it may go to the best one anyway.
    fetcher.mark_in_flight([A], 2)
    fetcher.fail(A, "p2")
    fetcher.mark_ready(A)
    assert fetcher.group_by_peer(["p1", "p2"])[-1] == ("p1", (many[-1], A))


def test_group_by_peer_without_peers_is_empty() -> None:
    fetcher = RootFetcher()
    fetcher.add(A)
    assert fetcher.group_by_peer([]) == []

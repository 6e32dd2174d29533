"""The verification service: batches on worker threads, every request answered exactly
once (verified, refused at capacity, or cancelled at close), nothing on the caller's
thread."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

import pytest

from lean_p2p.node.verification import (
    Outcome,
    SignatureCheck,
    SignaturesVerified,
    VerificationService,
    VerifiedBatch,
    VerifySignatures,
)

GOOD = SignatureCheck(b"k" * 52, 1, b"m" * 32, b"good")
BAD = SignatureCheck(b"k" * 52, 1, b"m" * 32, b"bad")


class Rig:
    """A service whose ``schedule`` runs when the test says (the loop's turn ending),
    whose results land in a queue, and whose verifier can be held at a gate."""

    def __init__(self, *, workers: int, capacity: int, batch_size: int) -> None:
        self.turn_end: list[Callable[[], None]] = []
        self.results: queue.Queue[VerifiedBatch] = queue.Queue()
        self.gate = threading.Event()
        self.gate.set()
        self.started = threading.Semaphore(0)
        self.threads: set[str] = set()
        self.service = VerificationService(
            self._verify,
            self.results.put,
            self.turn_end.append,
            workers=workers,
            capacity=capacity,
            batch_size=batch_size,
        )

    def _verify(self, check: SignatureCheck) -> bool:
        self.threads.add(threading.current_thread().name)
        self.started.release()
        self.gate.wait()
        return check.signature == b"good"

    def end_turn(self) -> None:
        callbacks = list(self.turn_end)
        self.turn_end.clear()  # the same list: the service holds its append
        for callback in callbacks:
            callback()

    def collect(self, count: int) -> dict[int, SignaturesVerified]:
        """Results until ``count`` requests are answered, each settled like the node does."""
        answered: dict[int, SignaturesVerified] = {}
        while len(answered) < count:
            batch = self.results.get(timeout=30)
            self.service.settle(batch)
            for result in batch.results:
                assert result.ticket not in answered, "a request answered twice"
                answered[result.ticket] = result
        return answered


@pytest.fixture
def rig() -> Rig:
    return Rig(workers=2, capacity=64, batch_size=4)


def _stop(rig: Rig) -> None:
    rig.gate.set()
    rig.service.close()
    assert rig.service.join(30)


def test_requests_are_verified_in_batches_on_worker_threads(rig: Rig) -> None:
    for ticket in range(10):
        check = GOOD if ticket % 3 else BAD
        assert rig.service.submit(VerifySignatures(ticket, (check, GOOD)))
    rig.end_turn()  # the last two requests go out when the loop's turn ends
    answered = rig.collect(10)
    for ticket, result in answered.items():
        assert result.outcome is Outcome.VERIFIED
        assert result.valid == (ticket % 3 != 0, True)
        assert result.all_valid is (ticket % 3 != 0)
    assert rig.threads and threading.current_thread().name not in rig.threads
    stats = rig.service.statistics()
    assert (stats.submitted, stats.checks_submitted, stats.settled) == (10, 20, 10)
    assert (stats.batches, stats.largest_batch, stats.in_flight) == (3, 4, 0)
    assert stats.invalid == 4
    _stop(rig)


def test_a_request_past_capacity_is_refused_and_counted() -> None:
    rig = Rig(workers=1, capacity=3, batch_size=8)
    assert rig.service.submit(VerifySignatures(1, (GOOD, GOOD)))
    assert not rig.service.submit(VerifySignatures(2, (GOOD, GOOD)))  # 4 > 3
    assert rig.service.submit(VerifySignatures(3, (GOOD,)))
    assert rig.service.statistics().overloaded == 1
    rig.end_turn()
    assert set(rig.collect(2)) == {1, 3}
    # settled: room again
    assert rig.service.submit(VerifySignatures(4, (GOOD, GOOD, GOOD)))
    rig.end_turn()
    assert set(rig.collect(1)) == {4}
    _stop(rig)


def test_close_answers_every_request_started_ones_verified_the_rest_cancelled() -> None:
    rig = Rig(workers=1, capacity=64, batch_size=2)
    rig.gate.clear()
    for ticket in range(7):
        assert rig.service.submit(VerifySignatures(ticket, (GOOD,)))
    rig.end_turn()
    rig.started.acquire(timeout=30)  # the worker is inside request 0, held at the gate
    rig.service.close()
    assert not rig.service.submit(VerifySignatures(99, (GOOD,)))  # closed: refused
    rig.gate.set()
    assert rig.service.join(30)
    answered = rig.collect(7)
    assert answered[0].outcome is Outcome.VERIFIED  # started before close: finished
    assert all(answered[t].outcome is Outcome.CANCELLED for t in range(1, 7))
    stats = rig.service.statistics()
    assert (stats.cancelled, stats.in_flight, stats.settled) == (6, 0, 7)


def test_results_that_cannot_be_delivered_are_counted_and_the_worker_lives_on() -> None:
    delivered: list[VerifiedBatch] = []

    def deliver(batch: VerifiedBatch) -> None:
        if not delivered:
            delivered.append(batch)
            raise RuntimeError("mailbox closed")
        delivered.append(batch)

    pending: list[Callable[[], None]] = []
    service = VerificationService(lambda check: True, deliver, pending.append, workers=1)
    service.submit(VerifySignatures(1, (GOOD,)))
    pending.pop()()
    service.submit(VerifySignatures(2, (GOOD,)))
    pending.pop()()
    service.close()
    assert service.join(30)
    assert len(delivered) == 2
    assert service.statistics().undeliverable == 1


def test_the_service_needs_positive_sizes() -> None:
    with pytest.raises(ValueError, match="positive"):
        VerificationService(lambda check: True, print, print, workers=0)


def test_an_unknown_scheduling_is_refused() -> None:
    with pytest.raises(ValueError, match="priority must be one of"):
        VerificationService(lambda check: True, print, print, priority="urgent")

"""Signature verification off the loop: batches verified on worker threads, results back
through the mailbox.

Thread map:

- :meth:`VerificationService.submit`, :meth:`~VerificationService.settle`,
  :meth:`~VerificationService.close` and :meth:`~VerificationService.statistics` run on
  the loop thread (the node calls them; its affinity guard covers them). They never
  block: a submission joins the batch being formed, and a full batch (or the end of the
  loop's current turn, through ``schedule``) goes to the workers with one
  ``SimpleQueue.put``.
- Worker threads take batches and verify each check in C, where the GIL is released,
  so N workers verify in parallel while the loop runs. Each batch's results go back in
  one :class:`VerifiedBatch` through ``deliver`` (the node's ``verified`` mailbox lane):
  the loop sees them in its own turn, in the order the batches finished. Workers touch
  nothing of the loop's; the counters they keep are their own.

Bounded: at most ``capacity`` checks are submitted and not yet settled. A request that
would pass that is refused (:attr:`Outcome.OVERLOADED`: the caller ignores its
message) and counted, never queued. Nothing is lost on close: requests still in the
forming batch or queued for the workers come back :attr:`Outcome.CANCELLED`; those a
worker has started finish. Every request submitted gets exactly one result.
"""

from __future__ import annotations

import enum
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

__all__ = [
    "DEFAULT_PRIORITY",
    "PRIORITIES",
    "Outcome",
    "SignatureCheck",
    "SignaturesVerified",
    "VerificationService",
    "VerificationStatistics",
    "VerifiedBatch",
    "VerifySignatures",
    "default_workers",
]

logger = logging.getLogger(__name__)

#: Requests per batch handed to a worker; fewer when the loop's turn ends first.
DEFAULT_BATCH_SIZE: Final = 32
DEFAULT_CAPACITY: Final = 8192
#: How the workers are scheduled against the loop (Linux, per thread; elsewhere they run
#: as created). ``bench verify`` measured, on 2 cores, 2,000 production verifications/s
#: with 2 workers: the loop's p99 wait rose by about 3 ms with ``normal`` and with
#: ``nice`` (the kernel lets a running nice worker finish its slice before the loop
#: wakes), by 0.1 to 0.4 ms with ``idle`` (SCHED_IDLE: a waking loop preempts a worker
#: at once); with one worker, by about 20 µs (docs/validation.md has the table).
#: ``idle`` workers also get almost no CPU while any other process wants it, so
#: it suits a machine that is the node's alone; with one worker fewer than cores the
#: loop always finds a core, and ``nice`` keeps the workers' throughput under load.
PRIORITIES: Final = ("normal", "nice", "idle")
DEFAULT_PRIORITY: Final = "nice"
_NICENESS: Final = 10


def default_workers() -> int:
    """One worker fewer than the cores (one at least): the loop keeps a core."""
    return max(1, (os.cpu_count() or 1) - 1)


def _lower_priority(priority: str) -> None:
    """Schedule the calling thread below the loop, as ``priority`` says, where the
    platform allows (silently as created where it does not)."""
    if priority == "normal":
        return
    thread = threading.get_native_id()
    try:
        if priority == "idle":
            os.sched_setscheduler(thread, os.SCHED_IDLE, os.sched_param(0))
        else:
            current = os.getpriority(os.PRIO_PROCESS, thread)
            os.setpriority(os.PRIO_PROCESS, thread, min(19, current + _NICENESS))
    except (AttributeError, OSError):  # not Linux, or not permitted
        pass


@dataclass(frozen=True, slots=True)
class SignatureCheck:
    """One XMSS signature to verify: by ``public_key`` over ``message`` at ``slot``."""

    public_key: bytes
    slot: int
    message: bytes
    signature: bytes


@dataclass(frozen=True, slots=True)
class VerifySignatures:
    """A request for verification (the chain's): its ``ticket`` comes back with the result."""

    ticket: int
    checks: tuple[SignatureCheck, ...]


class Outcome(enum.Enum):
    VERIFIED = "verified"  # every check was run: see ``valid``
    OVERLOADED = "overloaded"  # refused at submission: the service was at capacity
    CANCELLED = "cancelled"  # the service closed before a worker took it


@dataclass(frozen=True, slots=True)
class SignaturesVerified:
    """The result of one request: ``valid[i]`` for check ``i`` when VERIFIED."""

    ticket: int
    outcome: Outcome
    valid: tuple[bool, ...] = ()

    @property
    def all_valid(self) -> bool:
        return self.outcome is Outcome.VERIFIED and all(self.valid)


@dataclass(frozen=True, slots=True)
class VerifiedBatch:
    """Results of one batch, in submission order: one mailbox item per batch."""

    results: tuple[SignaturesVerified, ...]


@dataclass(frozen=True, slots=True)
class VerificationStatistics:
    """A snapshot. ``in_flight`` checks were submitted and their results not yet settled."""

    workers: int
    capacity: int
    submitted: int  # requests accepted
    checks_submitted: int
    settled: int  # requests whose result the loop has handled
    overloaded: int  # requests refused at capacity
    cancelled: int  # requests failed by close
    invalid: int  # checks that did not verify
    in_flight: int
    batches: int
    largest_batch: int
    worker_seconds: float  # time workers spent verifying, summed over workers
    undeliverable: int  # batches whose results could not be delivered (mailbox closed)


@dataclass(slots=True)
class _Worker:
    """One worker's own counters (written by it alone)."""

    busy_seconds: float = 0.0
    invalid: int = 0
    undeliverable: int = 0


@dataclass(slots=True)
class _LoopCounters:
    submitted: int = 0
    checks_submitted: int = 0
    settled: int = 0
    overloaded: int = 0
    cancelled: int = 0
    batches: int = 0
    largest_batch: int = 0
    in_flight: int = 0
    forming: list[VerifySignatures] = field(default_factory=list)
    #: checks per submitted ticket, until its result is settled
    checks: dict[int, int] = field(default_factory=dict)


class VerificationService:
    """A bounded pool of verifier threads; see the module docstring."""

    def __init__(
        self,
        verify: Callable[[SignatureCheck], bool],
        deliver: Callable[[VerifiedBatch], object],
        schedule: Callable[[Callable[[], None]], object],
        *,
        workers: int = 2,
        capacity: int = DEFAULT_CAPACITY,
        batch_size: int = DEFAULT_BATCH_SIZE,
        priority: str = DEFAULT_PRIORITY,
        name: str = "verify",
    ) -> None:
        if workers < 1 or capacity < 1 or batch_size < 1:
            raise ValueError("workers, capacity and batch size are positive")
        if priority not in PRIORITIES:
            raise ValueError(f"priority must be one of {PRIORITIES}, not {priority!r}")
        self._verify = verify
        self._deliver = deliver
        self._schedule = schedule
        self._capacity = capacity
        self._batch_size = batch_size
        self._priority = priority
        self._queue: queue.SimpleQueue[list[VerifySignatures] | None] = queue.SimpleQueue()
        self._loop = _LoopCounters()
        self._flush_scheduled = False
        self._closed = False
        # Read by workers, written once by close() on the loop thread: a worker that
        # sees it set cancels what it takes instead of verifying it.
        self._cancelling = threading.Event()
        self._workers = [_Worker() for _ in range(workers)]
        self._threads = [
            threading.Thread(target=self._work, args=(worker,), name=f"{name}-{index}", daemon=True)
            for index, worker in enumerate(self._workers)
        ]
        for thread in self._threads:
            thread.start()

    # --- loop thread --------------------------------------------------------------------

    def submit(self, request: VerifySignatures) -> bool:
        """Queue ``request`` for the workers; False if refused (closed or at capacity:
        the caller answers for it, with :attr:`Outcome.OVERLOADED`)."""
        loop = self._loop
        checks = len(request.checks)
        if self._closed or loop.in_flight + checks > self._capacity:
            loop.overloaded += 1
            return False
        loop.submitted += 1
        loop.checks_submitted += checks
        loop.in_flight += checks
        loop.checks[request.ticket] = checks
        loop.forming.append(request)
        if len(loop.forming) >= self._batch_size:
            self._flush()
        elif not self._flush_scheduled:
            # The rest of this turn may add more; the batch goes out at its end.
            self._flush_scheduled = True
            self._schedule(self._flush)
        return True

    def settle(self, batch: VerifiedBatch) -> None:
        """The loop took ``batch`` from the mailbox: its checks leave the in-flight
        count (the node calls this for every batch before handing the results on)."""
        loop = self._loop
        for result in batch.results:
            loop.settled += 1
            loop.in_flight -= loop.checks.pop(result.ticket, 0)
            if result.outcome is Outcome.CANCELLED:
                loop.cancelled += 1

    def close(self) -> None:
        """Refuse new requests; cancel what no worker has started (their results are
        delivered as CANCELLED); let started batches finish; stop the workers. Call
        :meth:`join` off the loop to wait for them."""
        if self._closed:
            return
        self._closed = True
        self._cancelling.set()
        self._flush()  # the forming batch goes to a worker, which cancels it
        for _ in self._workers:
            self._queue.put(None)

    def join(self, timeout: float | None = None) -> bool:
        """Wait for every worker to end (blocks: call it off the loop)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in self._threads:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            thread.join(left)
        return not any(thread.is_alive() for thread in self._threads)

    def statistics(self) -> VerificationStatistics:
        loop = self._loop
        return VerificationStatistics(
            workers=len(self._workers),
            capacity=self._capacity,
            submitted=loop.submitted,
            checks_submitted=loop.checks_submitted,
            settled=loop.settled,
            overloaded=loop.overloaded,
            cancelled=loop.cancelled,
            invalid=sum(worker.invalid for worker in self._workers),
            in_flight=loop.in_flight,
            batches=loop.batches,
            largest_batch=loop.largest_batch,
            worker_seconds=sum(worker.busy_seconds for worker in self._workers),
            undeliverable=sum(worker.undeliverable for worker in self._workers),
        )

    def _flush(self) -> None:
        self._flush_scheduled = False
        loop = self._loop
        if not loop.forming:
            return
        batch, loop.forming = loop.forming, []
        loop.batches += 1
        loop.largest_batch = max(loop.largest_batch, len(batch))
        self._queue.put(batch)

    # --- worker threads -----------------------------------------------------------------

    def _work(self, worker: _Worker) -> None:
        _lower_priority(self._priority)
        while True:
            batch = self._queue.get()
            if batch is None:
                return
            started = time.perf_counter()
            results = tuple(self._run(worker, request) for request in batch)
            worker.busy_seconds += time.perf_counter() - started
            try:
                self._deliver(VerifiedBatch(results))
            except Exception:
                # The mailbox closed under us: the owner closes the service first, so
                # this is a misuse; counted and logged, the worker keeps serving.
                worker.undeliverable += 1
                logger.exception("verification results could not be delivered")

    def _run(self, worker: _Worker, request: VerifySignatures) -> SignaturesVerified:
        if self._cancelling.is_set():
            return SignaturesVerified(request.ticket, Outcome.CANCELLED)
        valid = tuple(self._verify(check) for check in request.checks)
        worker.invalid += valid.count(False)
        return SignaturesVerified(request.ticket, Outcome.VERIFIED, valid)

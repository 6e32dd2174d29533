"""``lean-p2p bench latency``: where the mailbox's enqueue→handler delay comes from.

Runs on the command's main thread, which becomes the loop thread of each case (a fresh
asyncio or uvloop loop per case). Producers are Python threads (each event stamped with
``time.monotonic_ns()`` just before ``Mailbox.put``) or C pthreads pushing into a
:class:`~lean_p2p.native.NativeRing` that drains into the mailbox (stamped with
``CLOCK_MONOTONIC`` just before ``lean_p2p_ring_push``; the same clock), paced to a
total rate over all producers.

Every event's delay is split by measurement, not by assumption:

- ``wait``: from the stamp until the loop began the drain that handled it (the mailbox's
  drain callback, and for native events the ring's drain before it, are stamped when
  they start). It is the wakeup (eventfd or self-pipe, epoll, the loop's dispatch) plus
  the wait for the GIL, which the loop must take back from running Python threads;
- for the slowest 1 %, that wait split again by the loop thread's own clocks
  (:class:`LoopClock`): a Python producer reads them before one event in
  ``CLOCK_SAMPLE_EVERY`` and the loop when each drain begins. Over the wait, the loop
  thread ran (``tail_busy_us``: other callbacks, the wakeup's dispatch), sat in the run
  queue waiting for a core (``tail_core_us``), or slept; the wakeup was already
  written, so the sleep is the wait for the GIL (``tail_gil_us``). Native producers
  cannot read them (C threads push without Python);
- ``queue``: from that drain's start (or the stamp, if the event came in during the
  drain) until its handler ran: queueing behind other events;
- ``gc``: the share of the slowest 1 % of events whose span overlapped a garbage
  collection (``gc.callbacks`` records every collection, on any thread, with its
  duration).

A paced Python producer sleeps until its next event is due (at least 100 us), so at
20k events/s each of 8 producers wakes once per event, as a network thread wakes when
data arrives; at 100k events/s what fell due meanwhile goes out together. C producers
never hold the GIL and Python producers do, so the two at one rate show what the GIL
costs the loop. Native producers run each event paced alone (one thread wakeup per
event: at 100k events/s the wakeups alone load 2 cores) and in bursts of 16 (one
wakeup per burst, as from one socket read), the bursts of the 8 producers either
together (``phases`` ``together``: all wake at the same instants, the worst case) or
``staggered`` evenly over the period (independent network threads, on average). Each
burst case has its floor beside it (``handoff`` ``thread``): a C thread that drains
the ring itself, blocked in ``poll(2)`` on its eventfd, with no loop and no Python
(:class:`~lean_p2p.tools.native_producers.RingConsumer`). The 8 Python producers also hand their
events over without the mailbox, in the same run: through ``loop.call_soon_threadsafe``
per event (``handoff`` ``call_soon``, the loop's own hand-off), and to a plain thread
blocked on an eventfd with no event loop at all (``handoff`` ``thread``): the floor
that the kernel's wakeup and the interpreter's GIL set for any hand-off between Python
threads on this machine.
``--levers`` adds the same cases with the interpreter's switch interval at 1 ms
(default 5 ms) and with the heap frozen after start-up (``gc.freeze()``), and the native
mailbox cases with the C producers at a lower priority than the loop thread (``lever``
``producers-nice``: nice :data:`PRODUCER_NICE`, as an embedder may run its network
threads): on 2 cores the kernel's fair scheduler gives 9 runnable threads a ninth each.

The native burst cases also run with the mailbox's linger on (``lever`` ``linger``:
``linger_s`` of :data:`NATIVE_LINGER_S`): after a drain of a batch the loop thread
polls in ``call_soon`` passes instead of sleeping, so the next burst finds it running
and warm. C producers need no GIL, so the polling takes nothing from them; it costs a
core, which ``loop_cpu_pct`` shows (the loop thread's CPU time over the case's run).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import ctypes
import functools
import gc
import os
import statistics
import struct
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from lean_p2p.runtime.mailbox import LaneSpec, Mailbox, OverflowPolicy
from lean_p2p.tools import report
from lean_p2p.tools.running import INTERRUPTS, Progress
from lean_p2p.tools.stress import loop_factory

__all__ = ["COLUMNS", "Case", "CaseResult", "GcWatch", "measure_case", "run_benchmark"]

COLUMNS = (
    "loop",
    "producer_kind",
    "producers",
    "rate",
    "burst",
    "phases",
    "handoff",
    "lever",
    "p50_us",
    "p99_us",
    "p999_us",
    "max_us",
    "tail_wait_us",
    "tail_busy_us",
    "tail_core_us",
    "tail_gil_us",
    "tail_queue_us",
    "tail_gc_share",
    "gc_pauses",
    "gc_max_us",
    "loop_cpu_pct",
)
_LANE = "bench"
#: events per wakeup of the native ``burst`` cases
NATIVE_BURST = 16
#: the mailbox's linger_s in the native ``linger`` cases: past the 160 us between two
#: staggered bursts at 100k events/s, so that the loop keeps polling while they flow
NATIVE_LINGER_S = 0.0005
#: how much lower the C producers' priority is in the ``producers-nice`` cases
PRODUCER_NICE = 10
_CASE_TIMEOUT_S = 120.0
#: the shortest sleep of a paced Python producer (see _python_producer)
PRODUCER_MIN_SLEEP_S = 0.0001
#: Python producers read the loop thread's clock before one event in this many (each
#: reading holds the GIL for about 2 us, so not before every event)
CLOCK_SAMPLE_EVERY = 16


class LoopClock:
    """The loop thread's CPU time and its time spent runnable but waiting for a core,
    readable from any thread: made on the loop thread.

    The CPU time is the thread's own clock (``pthread_getcpuclockid``), exact even while
    it runs; the wait for a core is the kernel's ``run_delay`` (the second field of
    ``/proc/self/task/TID/schedstat``), counted when the thread gets a core. A producer
    reads it just before its hand-off and the loop again when the drain begins; over
    that span, what the loop thread neither ran nor waited in the run queue for, it
    slept: the eventfd was already written, so that sleep is the wait for the GIL.
    ``None`` from :meth:`open` where the kernel does not expose it.
    """

    __slots__ = ("_buffer", "_cpu_clock", "_pread", "_schedstat")

    def __init__(self, cpu_clock: int, schedstat: int) -> None:
        self._cpu_clock = cpu_clock
        self._schedstat = schedstat
        self._buffer = ctypes.create_string_buffer(64)
        self._pread = _pread_holding_gil()

    @classmethod
    def open(cls) -> LoopClock | None:
        """The calling thread's clock, or None where schedstat or thread clocks are
        missing."""
        try:
            cpu_clock = time.pthread_getcpuclockid(threading.get_ident())
            path = f"/proc/self/task/{threading.get_native_id()}/schedstat"
            schedstat = os.open(path, os.O_RDONLY)
        except (AttributeError, OSError):
            return None
        clock = cls(cpu_clock, schedstat)
        try:
            clock.read()
        except (OSError, ValueError, IndexError):
            clock.close()
            return None
        return clock

    def read(self) -> tuple[int, int]:
        """(CPU time, run-queue wait) of the loop thread so far, in ns."""
        # pread through libc with the GIL held: os.pread lets the GIL go for the
        # syscall, and taking it back is the very wait being measured (a reading per
        # drain doubled the loop's GIL waits at 100k events/s).
        size = self._pread(self._schedstat, self._buffer, 64, 0)
        if size <= 0:
            raise OSError(ctypes.get_errno(), "schedstat could not be read")
        return time.clock_gettime_ns(self._cpu_clock), int(self._buffer.raw[:size].split()[1])

    def close(self) -> None:
        os.close(self._schedstat)


class Readings:
    """:meth:`LoopClock.read` readings by stamp, kept in two dicts of ints: dicts that
    hold only ints are not tracked by the garbage collector, where a tuple per reading
    would trigger collections in the middle of the measurement."""

    __slots__ = ("cpu_ns", "run_delay_ns")

    def __init__(self) -> None:
        self.cpu_ns: dict[int, int] = {}
        self.run_delay_ns: dict[int, int] = {}

    def take(self, stamp: int, clock: LoopClock) -> None:
        """Read ``clock`` now and keep the reading under ``stamp``. The run-queue wait is
        stored first, and the CPU time last: a reader on another thread that finds the
        CPU time finds the whole reading."""
        cpu, run_delay = clock.read()
        self.run_delay_ns[stamp] = run_delay
        self.cpu_ns[stamp] = cpu

    def __contains__(self, stamp: int) -> bool:
        return stamp in self.cpu_ns

    def get(self, stamp: int) -> tuple[int, int] | None:
        cpu = self.cpu_ns.get(stamp)
        return None if cpu is None else (cpu, self.run_delay_ns[stamp])


@functools.cache
def _pread_holding_gil() -> Callable[[int, Any, int, int], int]:
    """libc's pread, called without letting the GIL go (``ctypes.PyDLL``)."""
    pread = ctypes.PyDLL(None, use_errno=True).pread
    pread.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_long]
    pread.restype = ctypes.c_ssize_t
    return pread


def split_wait(
    wait_ns: int, before: tuple[int, int], after: tuple[int, int]
) -> tuple[int, int, int]:
    """A wait for the loop split into (busy, core, gil) from two :meth:`LoopClock.read`
    readings taken at its ends: the loop thread running (other callbacks, the wakeup's
    dispatch), waiting in the run queue for a core, and the rest, asleep waiting for
    the GIL. Each part is clipped to what is left of the wait (the kernel counts a run
    queue wait when it ends, so a reading can include a little from before the span)."""
    busy = min(max(after[0] - before[0], 0), wait_ns)
    core = min(max(after[1] - before[1], 0), wait_ns - busy)
    return busy, core, wait_ns - busy - core


@dataclass(frozen=True, slots=True)
class Case:
    loop: str
    producer_kind: str  # "python" or "native"
    producers: int
    rate: int
    events: int
    #: "default", "switch-1ms", "gc-freeze", "linger", "producers-nice"
    lever: str = "default"
    #: native producers: events pushed back to back per wakeup (1: each paced alone)
    burst: int = 1
    #: native producers: "together" (every producer wakes at the same instants, the
    #: worst case) or "staggered" (producer i a fraction i/producers of a period later,
    #: as independent network threads would be on average)
    phases: str = "together"
    #: "mailbox"; "call_soon": each event its own loop.call_soon_threadsafe, the loop's
    #: own hand-off; "thread": no loop at all, a thread woken through an eventfd per
    #: event (_ConsumerThread), the floor that the kernel and the GIL set
    handoff: str = "mailbox"


@dataclass(slots=True)
class CaseResult:
    case: Case
    totals_ns: list[int] = field(default_factory=list)
    waits_ns: list[int] = field(default_factory=list)
    queues_ns: list[int] = field(default_factory=list)
    #: each event's stamp: with its total, its span, for the GC overlap of the tail.
    #: Plain ints, not (start, end) tuples: 60,000 tuples a case made the bench's own
    #: full collections pause the loop for tens of milliseconds.
    stamps_ns: list[int] = field(default_factory=list)
    gc_pauses: list[tuple[int, int]] = field(default_factory=list)
    #: Python cases: the loop thread's clock read by the producer just before the stamp
    #: of one event in CLOCK_SAMPLE_EVERY, and by the loop when each drain began, by
    #: stamp (see LoopClock). Plain ints again, for the same reason.
    sent_readings: Readings = field(default_factory=Readings)
    drain_readings: Readings = field(default_factory=Readings)
    #: the loop thread's CPU time and the wall time over the producers' run (0: no loop)
    loop_cpu_ns: int = 0
    loop_wall_ns: int = 0

    def row(self) -> dict[str, Any]:
        totals = sorted(self.totals_ns)
        threshold = report.percentile(totals, 0.99)
        tail = [index for index, total in enumerate(self.totals_ns) if total >= threshold]
        overlapping = sum(
            1
            for index in tail
            if self._overlaps_gc(
                self.stamps_ns[index], self.stamps_ns[index] + self.totals_ns[index]
            )
        )
        case = self.case
        pauses = [end - start for start, end in self.gc_pauses]
        return {
            "variant": (
                f"{case.producer_kind}x{case.producers}@{case.rate}/{case.loop}"
                + (f"/burst{case.burst}" if case.burst > 1 else "")
                + ("/staggered" if case.phases == "staggered" else "")
                + (f"/{case.handoff}" if case.handoff != "mailbox" else "")
                + (f"/{case.lever}" if case.lever != "default" else "")
            ),
            "loop": case.loop,
            "producer_kind": case.producer_kind,
            "producers": case.producers,
            "rate": case.rate,
            "burst": case.burst,
            "phases": case.phases if case.producer_kind == "native" else "",
            "handoff": case.handoff,
            "lever": case.lever,
            "events": len(totals),
            "p50_us": report.percentile(totals, 0.5) / 1e3,
            "p99_us": threshold / 1e3,
            "p999_us": report.percentile(totals, 0.999) / 1e3,
            "max_us": totals[-1] / 1e3 if totals else float("nan"),
            "wait_p50_us": report.percentile(sorted(self.waits_ns), 0.5) / 1e3,
            "wait_p99_us": report.percentile(sorted(self.waits_ns), 0.99) / 1e3,
            "queue_p50_us": report.percentile(sorted(self.queues_ns), 0.5) / 1e3,
            "queue_p99_us": report.percentile(sorted(self.queues_ns), 0.99) / 1e3,
            # The slowest 1 %: how much of each was waiting for the loop, how much
            # queueing behind other events, and how many overlapped a collection.
            "tail_wait_us": statistics.median(self.waits_ns[i] for i in tail) / 1e3,
            **self._tail_wait_split(tail),
            "tail_queue_us": statistics.median(self.queues_ns[i] for i in tail) / 1e3,
            "tail_gc_share": overlapping / len(tail) if tail else 0.0,
            "gc_pauses": len(pauses),
            "gc_max_us": max(pauses) / 1e3 if pauses else 0.0,
            "loop_cpu_pct": (
                100 * self.loop_cpu_ns / self.loop_wall_ns if self.loop_wall_ns else None
            ),
        }

    def _tail_wait_split(self, tail: Sequence[int]) -> dict[str, float | None]:
        """The slowest 1 %'s wait split, over those of them with both readings: the
        median time the loop thread ran, waited for a core, and waited for the GIL."""
        parts: list[tuple[int, int, int]] = []
        for index in tail:
            stamp, wait = self.stamps_ns[index], self.waits_ns[index]
            before = self.sent_readings.get(stamp)
            after = self.drain_readings.get(stamp + wait)
            if before is not None and after is not None:
                parts.append(split_wait(wait, before, after))
        names = ("tail_busy_us", "tail_core_us", "tail_gil_us")
        if not parts:
            return dict.fromkeys(names)
        return {
            name: statistics.median(part[position] for part in parts) / 1e3
            for position, name in enumerate(names)
        }

    def _overlaps_gc(self, start: int, end: int) -> bool:
        return any(gc_start < end and gc_end > start for gc_start, gc_end in self.gc_pauses)


class _DrainStamps:
    """When the current drain of each stage began (loop thread writes, handler reads),
    and the loop thread's clock then, by start stamp."""

    __slots__ = ("clock", "mailbox_ns", "readings", "ring_ns")

    def __init__(self, clock: LoopClock | None) -> None:
        self.mailbox_ns = 0
        self.ring_ns = 0
        self.clock = clock
        self.readings = Readings()

    def mailbox_drain_began(self) -> None:
        self.mailbox_ns = began = time.monotonic_ns()
        if self.clock is not None:
            self.readings.take(began, self.clock)


class _StampedMailbox(Mailbox):
    """The mailbox, with its drain's start stamped (the drain is the loop callback)."""

    stamps: _DrainStamps

    def _drain(self) -> None:
        self.stamps.mailbox_drain_began()
        super()._drain()


class GcWatch:
    """Every collection's (start, end) in monotonic ns, on whatever thread ran it: a
    ``gc.callbacks`` entry (as a context manager, installed while inside). ``bench
    gossip``'s receiver uses it too."""

    def __init__(self) -> None:
        self.pauses: list[tuple[int, int]] = []
        self._started = 0

    def __call__(self, phase: str, _info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.monotonic_ns()
        else:
            self.pauses.append((self._started, time.monotonic_ns()))

    def __enter__(self) -> GcWatch:
        gc.callbacks.append(self)
        return self

    def __exit__(self, *_: object) -> None:
        gc.callbacks.remove(self)


def _python_producer(
    submit: Callable[[int], object],
    count: int,
    rate: float,
    go: threading.Event,
    stop: threading.Event,
    *,
    loop_clock: LoopClock | None = None,
    readings: Readings | None = None,
) -> None:
    clock = time.monotonic_ns
    go.wait()
    started = time.monotonic()
    interval = 1.0 / rate
    sent = 0
    while sent < count and not stop.is_set():
        due = min(count, int((time.monotonic() - started) * rate) + 1)
        while sent < due:
            if loop_clock is not None and readings is not None and sent % CLOCK_SAMPLE_EVERY == 0:
                # Read before the stamp: the reading's few microseconds stay out of
                # the event's delay.
                cpu, run_delay = loop_clock.read()
                stamp = clock()
                readings.run_delay_ns[stamp] = run_delay
                readings.cpu_ns[stamp] = cpu  # last: see Readings.take
                submit(stamp)
            else:
                submit(clock())
            sent += 1
        # Sleep until the next event is due, but at least PRODUCER_MIN_SLEEP_S: at low
        # rates one wakeup per event, as a network thread wakes when data arrives; at
        # high rates what fell due meanwhile goes out together, as from one socket
        # read. (A fixed 100 us poll woke each producer several times per event at
        # 20k/s, and every wakeup takes the GIL from the loop.)
        time.sleep(max(started + sent * interval - time.monotonic(), PRODUCER_MIN_SLEEP_S))


async def _until_done_or_stopped(finished: asyncio.Future[None], stop: threading.Event) -> None:
    """Wait for the case's last event, or for a stop (Ctrl-C), checked every 50 ms."""
    async with asyncio.timeout(_CASE_TIMEOUT_S):
        while not finished.done() and not stop.is_set():
            await asyncio.wait([finished], timeout=0.05)


async def _run_case(case: Case, stop: threading.Event) -> CaseResult:
    loop = asyncio.get_running_loop()
    result = CaseResult(case)
    finished = loop.create_future()
    native = case.producer_kind == "native"
    consumer = _ConsumerThread() if case.handoff == "thread" else None
    # Native producers cannot read it: C threads push without Python. Without the loop,
    # the consumer thread is the one whose waits are split.
    loop_clock = None if native else consumer.clock if consumer else LoopClock.open()
    stamps = _DrainStamps(loop_clock)
    totals, waits, queues, stamps_ns = (
        result.totals_ns,
        result.waits_ns,
        result.queues_ns,
        result.stamps_ns,
    )
    clock = time.monotonic_ns

    def account(stamp: int, drain_started: int, now: int) -> None:
        began = drain_started if drain_started > stamp else stamp
        totals.append(now - stamp)
        waits.append(began - stamp)
        queues.append(now - began)
        stamps_ns.append(stamp)

    def record(stamp: int, drain_started: int) -> None:
        account(stamp, drain_started, clock())
        if len(totals) == case.events:
            if consumer is None:
                if not finished.done():
                    finished.set_result(None)
            else:
                loop.call_soon_threadsafe(_finish, finished)

    handler: Callable[[str, Any], None]
    # Native events: when each was pushed, when the ring's drain that took it began,
    # and when it was handled; the sums are made after the run.
    pushes_ns: list[int] = []
    drains_ns: list[int] = []
    handled_ns: list[int] = []
    if native:
        import lean_p2p.native  # noqa: F401 -- imported before the heap is settled
        from lean_p2p.tools.native_producers import STAMP

        pushed_at = struct.Struct("<Q").unpack_from
        offset = STAMP.size - 8  # the stamp ends with the push time (u64 ns)
        pushed = pushes_ns.append
        drain_began_at = drains_ns.append
        handled_at = handled_ns.append
        native_events = case.events

        def handle_native(_lane: str, event: Any) -> None:
            # Every event queued behind this one waits for this handler too, so it
            # does only what must happen now, in one Python call: the stamp's read, a
            # clock read and three appends.
            pushed(pushed_at(event.payload, offset)[0])
            drain_began_at(stamps.ring_ns)  # the wait runs until the ring's drain began
            handled_at(clock())
            if len(handled_ns) == native_events and not finished.done():
                finished.set_result(None)

        handler = handle_native
    else:

        def handle_python(_lane: str, stamp: Any) -> None:
            record(stamp, stamps.mailbox_ns)

        handler = handle_python

    lane = LaneSpec(_LANE, 1 << 22, OverflowPolicy.REJECT_NEWEST, 1024)
    linger_s = NATIVE_LINGER_S if case.lever == "linger" else 0.0
    mailbox = _StampedMailbox([lane], handler, loop=loop, linger_s=linger_s)
    mailbox.stamps = stamps
    submit: Callable[[int], object] = mailbox.sender(_LANE)
    if case.handoff == "call_soon":
        # No drain: the callback is the handler, so the whole delay counts as waiting.
        def handle_direct(stamp: int) -> None:
            began = clock()
            if loop_clock is not None and stamp in result.sent_readings:
                stamps.readings.take(began, loop_clock)
            record(stamp, began)

        call_soon_threadsafe: Callable[..., object] = loop.call_soon_threadsafe
        submit = functools.partial(call_soon_threadsafe, handle_direct)
    if consumer is not None:
        submit = consumer.start(record, stamps.readings)
    _settle_heap()
    cpu_began, wall_began = time.thread_time_ns(), time.monotonic_ns()
    with GcWatch() as watch:
        if native:
            await _drive_native(case, mailbox, stamps, finished, stop)
        else:
            await _drive_python(
                case,
                submit,
                finished,
                stop,
                loop_clock=loop_clock,
                readings=result.sent_readings,
            )
    if consumer is None:  # else the hand-off is that thread's, and this one only waits
        result.loop_cpu_ns = time.thread_time_ns() - cpu_began
        result.loop_wall_ns = time.monotonic_ns() - wall_began
    await mailbox.aclose()
    for stamp, drain_started, now in zip(pushes_ns, drains_ns, handled_ns, strict=True):
        account(stamp, drain_started, now)
    if consumer is not None:
        await asyncio.to_thread(consumer.stop)
    elif loop_clock is not None:
        loop_clock.close()
    result.gc_pauses = watch.pauses
    result.drain_readings = stamps.readings
    return result


def _finish(finished: asyncio.Future[None]) -> None:
    if not finished.done():
        finished.set_result(None)


class _ConsumerThread:
    """The floor of a hand-off between Python threads: no event loop and no mailbox. A
    thread blocks in ``read(2)`` on an eventfd; each producer appends its event to a
    deque and writes the eventfd; the thread wakes, takes the GIL back and handles what
    the deque holds. What is left is the kernel's wakeup and the interpreter's GIL
    hand-over, which every Python hand-off pays, the loop's included."""

    _ONE = (1).to_bytes(8, "little")
    _STOP = -1

    def __init__(self) -> None:
        self._events: collections.deque[int] = collections.deque()
        self._eventfd = os.eventfd(0, os.EFD_CLOEXEC)
        self._ready = threading.Event()
        self.clock: LoopClock | None = None
        self._thread = threading.Thread(target=self._run, name="bench-consumer", daemon=True)
        self._thread.start()
        self._ready.wait()

    def start(
        self, record: Callable[[int, int], None], readings: Readings
    ) -> Callable[[int], None]:
        """Hand each event to ``record(stamp, woke_ns)``; returns the producers' submit."""
        self._record, self._readings = record, readings
        self._go.set()
        append, write, eventfd, one = self._events.append, os.write, self._eventfd, self._ONE

        def submit(stamp: int) -> None:
            append(stamp)
            write(eventfd, one)

        return submit

    def stop(self) -> None:
        self._events.append(self._STOP)
        os.write(self._eventfd, self._ONE)
        self._thread.join()
        os.close(self._eventfd)
        if self.clock is not None:
            self.clock.close()

    def _run(self) -> None:
        self.clock = LoopClock.open()
        self._go = threading.Event()
        self._ready.set()
        self._go.wait()
        events, clock = self._events, self.clock
        while True:
            os.read(self._eventfd, 8)
            woke = time.monotonic_ns()
            if clock is not None:
                self._readings.take(woke, clock)
            while events:
                stamp = events.popleft()
                if stamp == self._STOP:
                    return
                self._record(stamp, woke)


async def _drive_python(
    case: Case,
    submit: Callable[[int], object],
    finished: asyncio.Future[None],
    stop: threading.Event,
    *,
    loop_clock: LoopClock | None,
    readings: Readings,
) -> None:
    go = threading.Event()
    shares = [case.events // case.producers] * case.producers
    shares[0] += case.events - sum(shares)
    # Every producer writes its readings into one dict (a single store each, under
    # the GIL), before the event's hand-off, so the handler may look its event up; the
    # dict is iterated only once they have all finished.
    threads = [
        threading.Thread(
            target=_python_producer,
            args=(submit, share, case.rate / case.producers, go, stop),
            kwargs={"loop_clock": loop_clock, "readings": readings},
            name=f"bench-producer-{index}",
            daemon=True,
        )
        for index, share in enumerate(shares)
    ]
    for thread in threads:
        thread.start()
    go.set()
    await _until_done_or_stopped(finished, stop)
    await asyncio.to_thread(_join_all, threads)


def _settle_heap() -> None:
    """One full collection before the producers start: the garbage of the case's own
    set-up (its loop and mailbox; the first case's imports) then cannot trigger a
    collection in the middle of the measurement, as it did (a 2.4 ms pause in one
    run), and what is left is what the hand-off allocates (``gc_pauses`` counts every
    collection from here on). A node does the same after start-up."""
    gc.collect()


def _join_all(threads: Sequence[threading.Thread]) -> None:
    for thread in threads:
        thread.join()


async def _drive_native(
    case: Case,
    mailbox: Mailbox,
    stamps: _DrainStamps,
    finished: asyncio.Future[None],
    stop: threading.Event,
) -> None:
    from lean_p2p.native import NativeRing, mailbox_sink
    from lean_p2p.tools.native_producers import ProducerDriver

    class StampedRing(NativeRing):
        def _drain_batch(self) -> None:
            stamps.ring_ns = time.monotonic_ns()
            super()._drain_batch()

    ring = StampedRing(
        mailbox_sink(mailbox, route=lambda _event: _LANE, route_by_header=True), capacity=65_536
    )
    run = ProducerDriver().start(
        ring.push_function_address,
        ring.address,
        threads=case.producers,
        events_per_thread=_shares(case),
        interval_ns=case.producers * 1_000_000_000 // case.rate,
        burst=case.burst,
        stagger=case.phases == "staggered",
        nice=PRODUCER_NICE if case.lever == "producers-nice" else 0,
    )
    try:
        await _until_done_or_stopped(finished, stop)
        if stop.is_set():
            run.stop()
        await asyncio.to_thread(run.join)
        await ring.aclose()
        ring.release()
    finally:
        run.free()


def measure_case(
    case: Case,
    factory: Callable[[], asyncio.AbstractEventLoop],
    stop: threading.Event | None = None,
) -> CaseResult:
    """One case on a fresh loop, with its lever applied for the case only. ``stop`` (set
    by Ctrl-C) ends it early; the result is then partial."""
    if case.producer_kind == "native" and case.handoff == "thread":
        return _measure_native_floor(case, stop or threading.Event())
    switch_interval = sys.getswitchinterval()
    if case.lever == "switch-1ms":
        sys.setswitchinterval(0.001)
    if case.lever == "gc-freeze":
        gc.collect()
        gc.freeze()
    try:
        with asyncio.Runner(loop_factory=factory) as runner:
            return runner.run(_run_case(case, stop or threading.Event()))
    finally:
        sys.setswitchinterval(switch_interval)
        if case.lever == "gc-freeze":
            gc.unfreeze()


def _measure_native_floor(case: Case, stop: threading.Event) -> CaseResult:
    """The native producers' floor: the same C producers into a ring that a C thread
    drains on its own (:class:`~lean_p2p.tools.native_producers.RingConsumer`), with no
    loop and no Python; this thread only waits."""
    from lean_p2p.native.library import function_address, load_library
    from lean_p2p.tools.native_producers import ProducerDriver, RingConsumer

    ring_library = load_library()
    ring = ring_library.lean_p2p_ring_create(65_536, 0)
    if not ring:
        raise RuntimeError("could not create a native ring")
    driver = ProducerDriver()
    result = CaseResult(case)
    run = None
    consumer = RingConsumer(ring, case.events, driver)
    try:
        push = function_address(ring_library.lean_p2p_ring_push)
        run = driver.start(
            push,
            ring,
            threads=case.producers,
            events_per_thread=_shares(case),
            interval_ns=case.producers * 1_000_000_000 // case.rate,
            burst=case.burst,
            stagger=case.phases == "staggered",
        )
        deadline = time.monotonic() + _CASE_TIMEOUT_S
        while not run.done() and not stop.is_set() and time.monotonic() < deadline:
            time.sleep(0.05)
        run.stop()
        run.join()
        if stop.is_set() or time.monotonic() >= deadline:
            consumer.stop()
        consumer.join()
        delays, waits = consumer.delays_ns()
    finally:
        consumer.free()
        if run is not None:
            run.free()
        ring_library.lean_p2p_ring_destroy(ring)
    result.totals_ns.extend(delays)
    result.waits_ns.extend(waits)
    result.queues_ns.extend(delay - wait for delay, wait in zip(delays, waits, strict=True))
    result.stamps_ns.extend([0] * len(delays))  # no collection can touch a C thread
    return result


def _shares(case: Case) -> list[int]:
    """Events per producer: an equal share each, the remainder to the first."""
    shares = [case.events // case.producers] * case.producers
    shares[0] += case.events - sum(shares)
    return shares


def plan(args: argparse.Namespace) -> list[Case]:
    events = min(args.events, 20_000) if args.quick else args.events
    cases: list[Case] = []
    for loop in args.loops:
        for rate in args.rates:
            for kind, producers in (("python", 1), ("python", 8), ("native", 8)):
                if kind == "native" and _native_unavailable() is not None:
                    continue  # run_benchmark says why
                cases.append(Case(loop, kind, producers, rate, events))
                if kind == "python" and producers == 8:
                    # The references: the same producers through the loop's own
                    # hand-off, and to a plain thread without any loop (the floor).
                    cases.append(Case(loop, kind, producers, rate, events, handoff="call_soon"))
                    cases.append(Case(loop, kind, producers, rate, events, handoff="thread"))
                if kind == "native":
                    # The same rate with a wakeup per burst: what one socket read
                    # brings a network thread, and 1/16 of the thread wakeups; with
                    # the producers' bursts together (the worst case) and staggered
                    # (independent threads), each beside its floor: a C thread that
                    # drains the ring itself, with no loop and no Python.
                    for phases in ("together", "staggered"):
                        # The mailbox with its linger on beside it (see NATIVE_LINGER_S).
                        for handoff, lever in (
                            ("mailbox", "default"),
                            ("mailbox", "linger"),
                            ("thread", "default"),
                        ):
                            cases.append(
                                Case(
                                    loop,
                                    kind,
                                    producers,
                                    rate,
                                    events,
                                    lever,
                                    burst=NATIVE_BURST,
                                    phases=phases,
                                    handoff=handoff,
                                )
                            )
            if args.levers:
                for lever in ("switch-1ms", "gc-freeze"):
                    cases.append(Case(loop, "python", 8, rate, events, lever))
                if _native_unavailable() is None:
                    nice = "producers-nice"
                    cases.append(Case(loop, "native", 8, rate, events, nice))
                    for phases in ("together", "staggered"):
                        cases.append(
                            Case(
                                loop,
                                "native",
                                8,
                                rate,
                                events,
                                nice,
                                burst=NATIVE_BURST,
                                phases=phases,
                            )
                        )
    return cases


def _native_unavailable() -> str | None:
    """Why the native cases cannot run here, or None if they can."""
    from lean_p2p.native.library import NativeUnavailable, load_library

    try:
        from lean_p2p.tools.native_producers import ProducerDriver

        load_library()
        ProducerDriver()
    except (OSError, ImportError, NativeUnavailable) as error:
        return str(error)
    return None


def run_benchmark(args: argparse.Namespace) -> int:
    repeats = 1 if args.quick else args.repeats
    cases = plan(args)
    missing_native = _native_unavailable()
    if missing_native is not None:
        print(f"bench latency: the native producer cases are left out: {missing_native}")
    progress = Progress("bench latency")
    runs: dict[Case, list[dict[str, Any]]] = {case: [] for case in cases}
    stop = threading.Event()
    # The first Ctrl-C ends the case in hand (its partial result is dropped) and prints
    # the table of what was measured.
    with INTERRUPTS.stopping(stop.set):
        for repeat in range(repeats):
            for number, case in enumerate(cases, start=1):
                if stop.is_set():
                    break
                progress.update(
                    f"repeat {repeat + 1}/{repeats}, case {number}/{len(cases)}: "
                    f"{case.producer_kind} x{case.producers} at {case.rate}/s on {case.loop}"
                    + (f" in bursts of {case.burst}" if case.burst > 1 else "")
                    + (", staggered" if case.phases == "staggered" else "")
                    + (f" via {case.handoff}" if case.handoff != "mailbox" else "")
                    + (f" ({case.lever})" if case.lever != "default" else ""),
                    force=True,
                )
                result = measure_case(case, loop_factory(case.loop), stop)  # type: ignore[arg-type]
                if not stop.is_set():
                    runs[case].append(result.row())
    progress.done()
    runs = {case: results for case, results in runs.items() if results}
    rows = [_median_row(results) for results in runs.values()]
    report.print_table(
        rows,
        COLUMNS,
        title=f"enqueue->handler delay and where the slowest 1 % waited (median of up to "
        f"{repeats}; "
        f"{cases[0].events if cases else 0} events a case)",
    )
    if args.json:
        report.write_json(args.json, rows)
    return 0


def _median_row(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The repeats' median of every figure; a figure some repeats lack (the tail's wait
    split, where no slow event had both readings) is the median of those that have it."""
    row = dict(results[0])
    for key in results[0]:
        if key in ("producers", "rate", "burst"):
            continue
        values = [result[key] for result in results]
        figures = [value for value in values if _is_figure(value)]
        if figures:
            row[key] = statistics.median(figures)
        elif all(value is None for value in values):
            row[key] = None
    row["repeats"] = len(results)
    return row


def _is_figure(value: object) -> bool:
    return isinstance(value, float | int) and not isinstance(value, bool)

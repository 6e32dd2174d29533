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
- ``queue``: from that drain's start (or the stamp, if the event came in during the
  drain) until its handler ran: queueing behind other events;
- ``gc``: the share of the slowest 1 % of events whose span overlapped a garbage
  collection (``gc.callbacks`` records every collection, on any thread, with its
  duration).

The GIL's share of ``wait`` is shown by experiment, in the same run: C producers never
hold the GIL, Python producers do, so the difference between the two at one rate is
what the GIL hand-over costs the loop. Native producers run twice: each event paced
alone (one thread wakeup per event: at 100k events/s the wakeups alone load 2 cores)
and in bursts of 16 (one wakeup per burst, as from one socket read). The 8 Python
producers also run through ``loop.call_soon_threadsafe`` per event instead of the
mailbox (``handoff`` ``call_soon``): the loop's own hand-off, the floor that the
interpreter and the loop set, measured beside the mailbox in the same run.
``--levers`` adds the same cases with the interpreter's switch interval at 1 ms
(default 5 ms) and with the heap frozen after start-up (``gc.freeze()``).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
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
    "handoff",
    "lever",
    "p50_us",
    "p99_us",
    "p999_us",
    "max_us",
    "tail_wait_us",
    "tail_queue_us",
    "tail_gc_share",
    "gc_pauses",
    "gc_max_us",
)
_LANE = "bench"
#: events per wakeup of the native ``burst`` cases
NATIVE_BURST = 16
_CASE_TIMEOUT_S = 120.0


@dataclass(frozen=True, slots=True)
class Case:
    loop: str
    producer_kind: str  # "python" or "native"
    producers: int
    rate: int
    events: int
    lever: str = "default"  # "default", "switch-1ms", "gc-freeze"
    #: native producers: events pushed back to back per wakeup (1: each paced alone)
    burst: int = 1
    #: "mailbox", or "call_soon": each event its own loop.call_soon_threadsafe, the
    #: loop's own hand-off, as the floor the mailbox is measured against
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
                + (f"/{case.handoff}" if case.handoff != "mailbox" else "")
            ),
            "loop": case.loop,
            "producer_kind": case.producer_kind,
            "producers": case.producers,
            "rate": case.rate,
            "burst": case.burst,
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
            "tail_queue_us": statistics.median(self.queues_ns[i] for i in tail) / 1e3,
            "tail_gc_share": overlapping / len(tail) if tail else 0.0,
            "gc_pauses": len(pauses),
            "gc_max_us": max(pauses) / 1e3 if pauses else 0.0,
        }

    def _overlaps_gc(self, start: int, end: int) -> bool:
        return any(gc_start < end and gc_end > start for gc_start, gc_end in self.gc_pauses)


class _DrainStamps:
    """When the current drain of each stage began (loop thread writes, handler reads)."""

    __slots__ = ("mailbox_ns", "ring_ns")

    def __init__(self) -> None:
        self.mailbox_ns = 0
        self.ring_ns = 0


class _StampedMailbox(Mailbox):
    """The mailbox, with its drain's start stamped (the drain is the loop callback)."""

    stamps: _DrainStamps

    def _drain(self) -> None:
        self.stamps.mailbox_ns = time.monotonic_ns()
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
) -> None:
    clock = time.monotonic_ns
    go.wait()
    started = time.monotonic()
    sent = 0
    while sent < count and not stop.is_set():
        due = min(count, int((time.monotonic() - started) * rate) + 1)
        while sent < due:
            submit(clock())
            sent += 1
        time.sleep(0.0001)


async def _until_done_or_stopped(finished: asyncio.Future[None], stop: threading.Event) -> None:
    """Wait for the case's last event, or for a stop (Ctrl-C), checked every 50 ms."""
    async with asyncio.timeout(_CASE_TIMEOUT_S):
        while not finished.done() and not stop.is_set():
            await asyncio.wait([finished], timeout=0.05)


async def _run_case(case: Case, stop: threading.Event) -> CaseResult:
    loop = asyncio.get_running_loop()
    result = CaseResult(case)
    finished = loop.create_future()
    stamps = _DrainStamps()
    totals, waits, queues, stamps_ns = (
        result.totals_ns,
        result.waits_ns,
        result.queues_ns,
        result.stamps_ns,
    )
    clock = time.monotonic_ns

    def record(stamp: int, drain_started: int) -> None:
        now = clock()
        began = drain_started if drain_started > stamp else stamp
        totals.append(now - stamp)
        waits.append(began - stamp)
        queues.append(now - began)
        stamps_ns.append(stamp)
        if len(totals) == case.events and not finished.done():
            finished.set_result(None)

    native = case.producer_kind == "native"
    handler: Callable[[str, Any], None]
    if native:
        from lean_p2p.tools.native_producers import STAMP

        pushed_at = struct.Struct("<Q").unpack_from
        offset = STAMP.size - 8  # the stamp ends with the push time (u64 ns)

        def handle_native(_lane: str, event: Any) -> None:
            # The wait runs from the push until the ring's drain began.
            record(pushed_at(event.payload, offset)[0], stamps.ring_ns)

        handler = handle_native
    else:

        def handle_python(_lane: str, stamp: Any) -> None:
            record(stamp, stamps.mailbox_ns)

        handler = handle_python

    lane = LaneSpec(_LANE, 1 << 22, OverflowPolicy.REJECT_NEWEST, 1024)
    mailbox = _StampedMailbox([lane], handler, loop=loop)
    mailbox.stamps = stamps
    submit: Callable[[int], object] = mailbox.sender(_LANE)
    if case.handoff == "call_soon":
        # No drain: the callback is the handler, so the whole delay counts as waiting.
        def handle_direct(stamp: int) -> None:
            record(stamp, clock())

        call_soon_threadsafe: Callable[..., object] = loop.call_soon_threadsafe
        submit = functools.partial(call_soon_threadsafe, handle_direct)
    with GcWatch() as watch:
        if native:
            await _drive_native(case, mailbox, stamps, finished, stop)
        else:
            await _drive_python(case, submit, finished, stop)
    await mailbox.aclose()
    result.gc_pauses = watch.pauses
    return result


async def _drive_python(
    case: Case,
    submit: Callable[[int], object],
    finished: asyncio.Future[None],
    stop: threading.Event,
) -> None:
    go = threading.Event()
    shares = [case.events // case.producers] * case.producers
    shares[0] += case.events - sum(shares)
    threads = [
        threading.Thread(
            target=_python_producer,
            args=(submit, share, case.rate / case.producers, go, stop),
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
    shares = [case.events // case.producers] * case.producers
    shares[0] += case.events - sum(shares)
    run = ProducerDriver().start(
        ring.push_function_address,
        ring.address,
        threads=case.producers,
        events_per_thread=shares,
        interval_ns=case.producers * 1_000_000_000 // case.rate,
        burst=case.burst,
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
                    # The floor: the same producers through the loop's own hand-off.
                    cases.append(Case(loop, kind, producers, rate, events, handoff="call_soon"))
                if kind == "native":
                    # The same rate with a wakeup per burst: what one socket read
                    # brings a network thread, and 1/16 of the thread wakeups.
                    cases.append(Case(loop, kind, producers, rate, events, burst=NATIVE_BURST))
            if args.levers:
                for lever in ("switch-1ms", "gc-freeze"):
                    cases.append(Case(loop, "python", 8, rate, events, lever))
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
    row = dict(results[0])
    for key, value in results[0].items():
        if (
            isinstance(value, float | int)
            and not isinstance(value, bool)
            and key
            not in (
                "producers",
                "rate",
            )
        ):
            row[key] = statistics.median(result[key] for result in results)
    row["repeats"] = len(results)
    return row

"""``lean-p2p bench native``: native producers through the C ring vs the ctypes callback.

Runs on the benchmark's main thread, which becomes the loop thread of each case (a
fresh loop per case); producers are C pthreads (``bindings/testing``) that push stamped
events through a ``lean_p2p_push_fn``:

- ``ring``              — ``lean_p2p_ring_push``: copy into the C ring, no GIL; the loop
  drains the ring in batches on an eventfd wakeup into the mailbox;
- ``callback``          — a ctypes callback (:class:`CallbackBridge`) that ``put``s each
  event on the mailbox, with a pinned thread state per native thread;
- ``callback-unpinned`` — the same callback, letting ctypes make and destroy a thread
  state on every call (what a naive binding does).

Every path ends in the same place: one mailbox lane whose handler counts the event and
samples its latency (push time stamped by the producer with CLOCK_MONOTONIC, handling
time read with ``time.monotonic_ns``). Loop ``idle``: the loop thread only drains.
Loop ``busy``: the loop thread also runs pure-Python slices of about 1 ms back to back
(many short handlers), so it holds the GIL most of the time. Loop ``busy-10ms``: slices
of about 10 ms (a long step such as importing a block), longer than the interpreter's
GIL switch interval (5 ms), so a thread that needs the GIL waits for that interval.

Each case runs twice. Flat out: pushes/s (accepted pushes over the producers' wall
time), producer-side cost per push (p50/p99/mean of the time inside each accepted push
call, measured in C), end-to-end events/s (handled events over the time from start to
the last handled). Producers retry a push refused as full, so every case carries all
its events; ``full_retries`` counts those refusals. Flat out, latency is only queueing
behind a saturated consumer, so latency is measured in a second, paced run: the same
producers at a fixed total rate (``--rate``, default 20,000 events/s): end-to-end
latency p50/p99 and the push cost p99 at that rate (where the callback's GIL wait shows).

Last, the ``drain`` table isolates what bounds the ring end to end: the loop thread's
cost per event. 8 producers fill a ring that admits nothing yet (``admit`` returns 0),
then the loop drains it alone, with nothing else runnable: decode, mailbox hand-off,
mailbox drain and a counting handler, in ns per event (``--drain-events``, 0 skips it).
Two handlers: ``per_event`` (called once per event, as most handlers are) and
``batch`` (``handle_many``: one call per lane and round, so the figure is the cost of
the machinery alone). ``decoder`` says whether records were decoded in C.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

#: loop state -> length of the loop thread's pure-Python slices (0: idle)
BUSY_SLICE_S = {"idle": 0.0, "busy": 0.001, "busy-10ms": 0.010}

PATHS = ("ring", "callback", "callback-unpinned")
LOOP_STATES = tuple(BUSY_SLICE_S)
PAYLOAD_BYTES = 64
PACED_RATE = 20_000
_LATENCY_SAMPLE_MASK = 7  # sample events whose sequence is a multiple of 8


@dataclass(frozen=True, slots=True)
class Case:
    path: str
    loop_state: str
    producers: int
    events: int
    loop: str
    #: total events/s over all producers; 0 = flat out
    rate: int = 0


@dataclass(frozen=True, slots=True)
class Measurement:
    rate: int
    handled: int
    pushes_per_s: float
    push_p50_ns: float
    push_p99_ns: float
    push_mean_ns: float
    e2e_events_per_s: float
    latency_p50_us: float
    latency_p99_us: float
    full_retries: int
    stopped_early: bool


def run_benchmark(args: argparse.Namespace) -> int:
    import logging

    from lean_p2p.native import NativeUnavailable, availability
    from lean_p2p.tools.report import print_table, write_json
    from lean_p2p.tools.running import Progress

    # Producers here retry every push the full ring refuses; the table counts those
    # refusals (full_retries), so the ring's per-second warning would only repeat it.
    logging.getLogger("lean_p2p.native.ring").setLevel(logging.ERROR)

    try:
        from lean_p2p.tools.native_producers import ProducerDriver

        driver = ProducerDriver()
    except NativeUnavailable as error:
        print(f"lean-p2p bench native: {error}; ring: {availability()}")
        return 2
    paths = [path for path in args.paths.split(",") if path]
    unknown = set(paths) - set(PATHS)
    if unknown:
        print(f"lean-p2p bench native: unknown paths {sorted(unknown)}; known: {PATHS}")
        return 2
    producer_counts = [int(count) for count in args.producers.split(",")]
    repeat = args.repeat or (1 if args.quick else 3)
    # A case whose producers starve (the callback paths behind a busy loop) stops here.
    max_seconds = args.max_seconds or (2.0 if args.quick else 15.0)
    paced_seconds = 0.5 if args.quick else 2.0
    rows: list[dict[str, Any]] = []
    loop_states = [state for state in args.loop_states.split(",") if state]
    unknown_states = set(loop_states) - set(LOOP_STATES)
    if unknown_states:
        print(f"lean-p2p bench native: unknown loop states {sorted(unknown_states)}")
        return 2
    progress = Progress("bench native")
    total = len(loop_states) * len(producer_counts) * len(paths)
    for loop_state in loop_states:
        for producers in producer_counts:
            for path in paths:
                progress.update(
                    f"case {len(rows) + 1} of {total}: {path}, loop {loop_state}, "
                    f"{producers} producers",
                    force=True,
                )
                events = args.events or _events(path, args.quick)
                case = Case(path, loop_state, producers, events, args.loop)
                paced = Case(
                    path,
                    loop_state,
                    producers,
                    int(args.rate * paced_seconds),
                    args.loop,
                    rate=args.rate,
                )
                flat_runs = [_run_case(case, driver, max_seconds) for _ in range(repeat)]
                paced_runs = [_run_case(paced, driver, max_seconds) for _ in range(repeat)]
                rows.append(_row(case, flat_runs, paced_runs))
    progress.done()
    print_table(rows, _COLUMNS, title=f"native producers, {args.loop}, medians of {repeat}")
    comparisons = _comparisons(rows)
    if comparisons:
        print_table(comparisons, _COMPARISON_COLUMNS, title="ring vs callback (same run)")
    drain_events = args.drain_events
    if drain_events is None:
        drain_events = 50_000 if args.quick else 200_000
    drain_rows: list[dict[str, Any]] = []
    if drain_events > 0 and "ring" in paths:
        drain_rows.extend(
            _drain_row(driver, args.loop, drain_events, handler=handler, repeat=max(repeat, 3))
            for handler in _DRAIN_HANDLERS
        )
        print_table(
            drain_rows,
            _DRAIN_COLUMNS,
            title="drain: loop-thread cost per ring event (ring prefilled, drained alone)",
        )
    if args.json:
        write_json(args.json, [*rows, *comparisons, *drain_rows])
    return 0


_COLUMNS = [
    "path",
    "loop_state",
    "producers",
    "handled",
    "pushes_per_s",
    "push_p50_ns",
    "push_p99_ns",
    "push_mean_ns",
    "e2e_events_per_s",
    "full_retries",
    "paced_push_p99_ns",
    "latency_p50_us",
    "latency_p99_us",
]
_COMPARISON_COLUMNS = [
    "loop_state",
    "producers",
    "versus",
    "e2e_ring_over_callback",
    "push_p50_callback_over_ring",
    "push_p99_callback_over_ring",
]


_DRAIN_COLUMNS = [
    "loop",
    "handler",
    "decoder",
    "producers",
    "events",
    "repeats",
    "drain_ns_per_event",
    "drain_ns_per_event_min",
    "drain_events_per_s",
]
_DRAIN_PRODUCERS = 8
_DRAIN_HANDLERS = ("per_event", "batch")


def _events(path: str, quick: bool) -> int:
    # Sized so that each flat-out case runs for about a second on a small machine
    # (--quick: half a second).
    if path == "ring":
        return 50_000 if quick else 400_000
    if path == "callback":
        return 10_000 if quick else 100_000
    return 5_000 if quick else 30_000


def _row(
    case: Case, flat_runs: Sequence[Measurement], paced_runs: Sequence[Measurement]
) -> dict[str, Any]:
    row: dict[str, Any] = {"table": "cases", **asdict(case), "repeats": len(flat_runs)}
    del row["rate"]
    for name in Measurement.__dataclass_fields__:
        if name.startswith("latency_"):
            continue  # flat-out latency is queueing behind a saturated consumer
        values = [getattr(run, name) for run in flat_runs]
        row[name] = any(values) if name == "stopped_early" else statistics.median(values)
    paced = paced_runs
    row["paced_rate"] = paced[0].rate
    row["paced_handled"] = statistics.median(run.handled for run in paced)
    row["paced_push_p99_ns"] = statistics.median(run.push_p99_ns for run in paced)
    row["latency_p50_us"] = statistics.median(run.latency_p50_us for run in paced)
    row["latency_p99_us"] = statistics.median(run.latency_p99_us for run in paced)
    row["paced_stopped_early"] = any(run.stopped_early for run in paced)
    return row


def _comparisons(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    by_key = {(row["path"], row["loop_state"], row["producers"]): row for row in rows}
    comparisons = []
    for (path, loop_state, producers), ring in by_key.items():
        if path != "ring":
            continue
        for versus in PATHS[1:]:
            other = by_key.get((versus, loop_state, producers))
            if other is None:
                continue
            comparisons.append(
                {
                    "table": "comparison",
                    "loop_state": loop_state,
                    "producers": producers,
                    "versus": versus,
                    "e2e_ring_over_callback": _ratio(
                        ring["e2e_events_per_s"], other["e2e_events_per_s"]
                    ),
                    "push_p50_callback_over_ring": _ratio(
                        other["push_p50_ns"], ring["push_p50_ns"]
                    ),
                    "push_p99_callback_over_ring": _ratio(
                        other["push_p99_ns"], ring["push_p99_ns"]
                    ),
                }
            )
    return comparisons


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else float("nan")


def _run_case(case: Case, driver: Any, max_seconds: float) -> Measurement:
    from lean_p2p.tools.stress import loop_factory

    with asyncio.Runner(loop_factory=loop_factory(case.loop)) as runner:  # type: ignore[arg-type]
        return runner.run(_measure(case, driver, max_seconds))


class _Recorder:
    """The mailbox handler (loop thread): counts, and samples latency."""

    def __init__(self) -> None:
        from lean_p2p.tools.native_producers import STAMP

        self._unpack = STAMP.unpack_from
        self.count = 0
        self.last_ns = 0
        self.latencies_ns: list[int] = []
        self._target: int | None = None
        self._reached: asyncio.Event | None = None

    def __call__(self, _lane: str, item: object) -> None:
        now = time.monotonic_ns()
        self.count += 1
        self.last_ns = now
        request_id: int = item.request_id  # type: ignore[attr-defined]
        if request_id & _LATENCY_SAMPLE_MASK == 0:
            pushed_ns = self._unpack(item.payload)[3]  # type: ignore[attr-defined]
            self.latencies_ns.append(now - pushed_ns)
        if self._reached is not None and self.count == self._target:
            self._reached.set()

    async def wait_for(self, count: int) -> None:
        """Until ``count`` events were handled."""
        if self.count >= count:
            return
        self._target, self._reached = count, asyncio.Event()
        await self._reached.wait()


async def _keep_busy(slice_iterations: int, stop: Callable[[], bool]) -> None:
    while not stop():
        total = 0
        for index in range(slice_iterations):  # pure Python: holds the GIL
            total += index
        await asyncio.sleep(0)


def _slice_iterations(target_s: float) -> int:
    return max(1_000, int(target_s / _seconds_per_iteration()))


@functools.cache
def _seconds_per_iteration() -> float:
    """Calibrated once per run: the fastest of a few timings, so that a moment of
    contention on a shared machine does not shorten every busy slice."""
    iterations = 200_000
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        total = 0
        for index in range(iterations):
            total += index
        best = min(best, time.perf_counter() - started)
    return best / iterations


async def _measure(case: Case, driver: Any, max_seconds: float) -> Measurement:
    from lean_p2p.native import CallbackBridge, NativeRing, mailbox_sink
    from lean_p2p.runtime import LaneSpec, Mailbox, OverflowPolicy
    from lean_p2p.tools.report import percentile

    loop = asyncio.get_running_loop()
    recorder = _Recorder()
    lane = LaneSpec("native", capacity=1 << 21, policy=OverflowPolicy.REJECT_NEWEST, quantum=1024)
    mailbox = Mailbox([lane], recorder, loop=loop)
    sink = mailbox_sink(mailbox, route=lambda _event: "native", route_by_header=True)
    ring: NativeRing | None = None
    bridge: CallbackBridge | None = None
    if case.path == "ring":
        ring = NativeRing(sink, loop=loop, capacity=65_536)
        push, context, on_exit = ring.push_function_address, ring.address, None
    else:
        bridge = CallbackBridge(sink, pin_thread_state=case.path == "callback")
        push, context, on_exit = bridge.function_address, None, bridge.detach_address

    finished = False
    busy = None
    slice_s = BUSY_SLICE_S[case.loop_state]
    if slice_s:
        busy = loop.create_task(_keep_busy(_slice_iterations(slice_s), lambda: finished))
    started_ns = time.monotonic_ns()
    run = driver.start(
        push,
        context,
        threads=case.producers,
        events_per_thread=case.events // case.producers,
        payload_len=PAYLOAD_BYTES,
        retry_when_full=True,
        record_costs=True,
        on_thread_exit_address=on_exit,
        interval_ns=case.producers * 1_000_000_000 // case.rate if case.rate else 0,
    )
    deadline = loop.time() + max_seconds
    stopped_early = False
    while not run.done():
        if not stopped_early and loop.time() > deadline:
            run.stop()
            stopped_early = True
        await asyncio.sleep(0.002)
    totals = run.join()  # returns at once: every thread is done
    async with asyncio.timeout(max_seconds + 30):
        await recorder.wait_for(totals.accepted)
    finished = True
    if busy is not None:
        await busy
    if ring is not None:
        await ring.aclose()
        ring.release()
    await mailbox.aclose()

    latencies = sorted(recorder.latencies_ns)
    elapsed_s = (recorder.last_ns - started_ns) / 1e9
    measurement = Measurement(
        rate=case.rate,
        handled=recorder.count,
        pushes_per_s=totals.accepted / (totals.wall_ns / 1e9) if totals.wall_ns else 0.0,
        push_p50_ns=float(run.push_cost_percentile_ns(0.5)),
        push_p99_ns=float(run.push_cost_percentile_ns(0.99)),
        push_mean_ns=totals.mean_push_ns,
        e2e_events_per_s=recorder.count / elapsed_s if elapsed_s > 0 else 0.0,
        latency_p50_us=percentile(latencies, 0.5) / 1e3,
        latency_p99_us=percentile(latencies, 0.99) / 1e3,
        full_retries=totals.full,
        stopped_early=stopped_early,
    )
    run.free()
    return measurement


def _drain_row(
    driver: Any, loop_name: str, events: int, *, handler: str, repeat: int
) -> dict[str, Any]:
    from lean_p2p.native.records import record_decoder
    from lean_p2p.tools.stress import loop_factory

    costs = []
    for _ in range(repeat):
        with asyncio.Runner(loop_factory=loop_factory(loop_name)) as runner:  # type: ignore[arg-type]
            costs.append(runner.run(_measure_drain(driver, events, batch=handler == "batch")))
    median = statistics.median(costs)
    return {
        "table": "drain",
        "loop": loop_name,
        "handler": handler,
        "decoder": record_decoder(),
        "producers": _DRAIN_PRODUCERS,
        "events": events,
        "repeats": repeat,
        "drain_ns_per_event": median,
        "drain_ns_per_event_min": min(costs),
        "drain_events_per_s": 1e9 / median if median else 0.0,
    }


class _DrainCounter:
    """The drain table's handler: counts, per event (:meth:`count`) or per batch
    (:meth:`handle_many`)."""

    def __init__(self, events: int) -> None:
        self.handled = 0
        self._events = events
        self.all_handled = asyncio.Event()

    def count(self, _lane: str, _item: object) -> None:
        self.handled += 1
        if self.handled == self._events:
            self.all_handled.set()

    # Only what the batch case hands the mailbox has handle_many: the counter itself.
    __call__ = count

    def handle_many(self, _lane: str, items: list[object]) -> None:
        self.handled += len(items)
        if self.handled == self._events:
            self.all_handled.set()


async def _measure_drain(driver: Any, events: int, *, batch: bool) -> float:
    """ns per event for the loop thread to drain a full ring into a mailbox and handle
    every event, with the producers already finished (nothing else competes)."""
    from lean_p2p.native import NativeRing, mailbox_sink
    from lean_p2p.runtime import LaneSpec, Mailbox, OverflowPolicy

    loop = asyncio.get_running_loop()
    counter = _DrainCounter(events)
    # A bound method, not the instance: calling an instance goes through __call__,
    # which costs more than the handler's body.
    handler: Callable[[str, object], None] = counter if batch else counter.count

    lane = LaneSpec("native", capacity=1 << 21, policy=OverflowPolicy.REJECT_NEWEST, quantum=1024)
    mailbox = Mailbox([lane], handler, loop=loop)
    # The mailbox sink and no admit() of the bench's own: the drain the ring makes by
    # default (one C call per batch into the lane, where the extensions are built).
    ring = NativeRing(
        mailbox_sink(mailbox, route=lambda _event: "native", route_by_header=True),
        loop=loop,
        capacity=events,
    )
    run = driver.start(
        ring.push_function_address,
        ring.address,
        threads=_DRAIN_PRODUCERS,
        events_per_thread=[
            events // _DRAIN_PRODUCERS + (index < events % _DRAIN_PRODUCERS)
            for index in range(_DRAIN_PRODUCERS)
        ],
        payload_len=PAYLOAD_BYTES,
        retry_when_full=False,
    )
    # Joined on the loop thread, which blocks it on purpose: nothing drains until every
    # event is in the ring, and the clock starts at the first drain's chance to run.
    totals = run.join()
    run.free()
    if totals.accepted != events:
        raise RuntimeError(f"drain bench: the ring accepted {totals.accepted} of {events}")
    started_ns = time.perf_counter_ns()
    async with asyncio.timeout(120):
        await counter.all_handled.wait()
    elapsed_ns = time.perf_counter_ns() - started_ns
    await ring.aclose()
    ring.release()
    await mailbox.aclose()
    return elapsed_ns / events

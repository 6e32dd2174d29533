"""``lean-p2p bench bridge``: hand-off from producer threads into the loop, side by side.

Runs on the benchmark's main thread, which becomes the loop thread of each case (a
fresh asyncio or uvloop loop per case); producers are Python threads.

Variants, each carrying the same events (a ``perf_counter_ns`` stamp taken just before
the hand-off) into the same handler (record latency, count):

- ``mailbox``  — :class:`lean_p2p.runtime.Mailbox`: lock-free lanes, coalesced wakeup;
- ``mailbox-bracketed`` — the same with ``atomic_publish=False``: each put brackets its
  closed test and publish with in-flight counters instead of one C call (not run by
  default; the baseline of that change);
- ``call_soon`` — one ``loop.call_soon_threadsafe(handler, event)`` per event;
- ``janus``    — ``janus.Queue``: ``sync_q.put`` in the producer, ``await async_q.get()``
  in a consumer task;
- ``mutex``    — no hand-off: producers apply the event to the state under a
  ``threading.Lock`` while a loop task also reads the state under that lock.

Per variant, loop (asyncio, uvloop) and producer count (1, 2, 8): flat-out events/s
(median of repeats), latency p50/p99 at fixed total rates (20k/s and 100k/s), wakeups
per event (``call_soon_threadsafe`` calls, counted), and the loop thread's worst stall:
a 1 ms ticker task on the loop records how late it wakes (in the mutex case the ticker
also reads the state under the lock, as the loop thread must there, and the longest
wait for that lock is reported separately as ``lock_wait_max_us``). On a machine with
more runnable threads than cores, the ticker's lateness includes OS scheduling delay
for every variant; the lock wait is the part only the mutex design adds.

Last, the ``limit`` table puts the flat-out mailbox rows beside what one thread can do
in the same run: a deque append, a popleft and the bench's handler per event
(``limit_events_per_s``), and the mailbox's own put + drain on the loop thread with no
producer threads (``put_drain_events_per_s``). Producers put through
:meth:`~lean_p2p.runtime.Mailbox.sender`, the per-lane put.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from lean_p2p.tools.running import INTERRUPTS
from lean_p2p.tools.stress import LoopKind, loop_factory

VARIANTS = ("mailbox", "call_soon", "janus", "mutex", "mailbox-bracketed")
DEFAULT_VARIANTS = ("mailbox", "call_soon", "janus", "mutex")
LOOPS = ("asyncio", "uvloop")
RATES = (20_000, 100_000)
_CASE_TIMEOUT_S = 120.0


@dataclass(frozen=True, slots=True)
class Case:
    variant: str
    loop: str
    producers: int
    #: total events per second over all producers; None = flat out
    rate: int | None
    events: int
    #: the mailbox's linger_s in µs (None: the mailbox default)
    linger_us: float | None = None


@dataclass(frozen=True, slots=True)
class Measurement:
    events: int
    elapsed_s: float
    latencies_ns: tuple[int, ...]
    wakeups: int
    stall_max_s: float
    #: mutex only: the longest the loop thread waited to acquire the state's lock
    lock_wait_max_s: float
    timed_out: bool


class _Sink:
    """The handler all variants feed; loop thread (mutex: producer threads, under lock)."""

    def __init__(self, target: int, done: Callable[[], None]) -> None:
        self.target = target
        self.count = 0
        self.latencies: list[int] = []
        self._done = done
        self._clock = time.perf_counter_ns

    def handle(self, stamp: int) -> None:
        self.latencies.append(self._clock() - stamp)
        self.count += 1
        if self.count == self.target:
            self._done()

    def handle_lane(self, _lane: str, stamp: object) -> None:
        self.handle(stamp)  # type: ignore[arg-type]


class _Ticker:
    """A 1 ms periodic task on the loop; records its worst lateness (the loop's stall)."""

    def __init__(self, read_state: Callable[[], object] | None = None) -> None:
        self.worst_s = 0.0
        self._read_state = read_state
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="bench-ticker")

    async def _run(self) -> None:
        while True:
            expected = time.perf_counter() + 0.001
            await asyncio.sleep(0.001)
            if self._read_state is not None:
                self._read_state()
            self.worst_s = max(self.worst_s, time.perf_counter() - expected)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


def _produce(
    submit: Callable[[int], object], count: int, rate: float | None, go: threading.Event
) -> None:
    clock = time.perf_counter_ns
    go.wait()
    if rate is None:
        for _ in range(count):
            submit(clock())
        return
    # Paced: at each moment send the events that are due, then nap briefly. Python's
    # sleep granularity (~60 µs) makes this small bursts at the target mean rate.
    started = time.perf_counter()
    sent = 0
    while sent < count:
        due = min(count, int((time.perf_counter() - started) * rate) + 1)
        while sent < due:
            submit(clock())
            sent += 1
        time.sleep(0.0001)


def _split(total: int, parts: int) -> list[int]:
    share, extra = divmod(total, parts)
    return [share + (1 if index < extra else 0) for index in range(parts)]


async def _measure(case: Case) -> Measurement:
    loop = asyncio.get_running_loop()
    finished = loop.create_future()

    def mark_done() -> None:
        if not finished.done():
            finished.set_result(None)

    sink = _Sink(case.events, mark_done)
    wakeups: Callable[[], int]
    cleanup: Callable[[], Any]
    ticker_read: Callable[[], object] | None = None
    lock_wait_max_s = 0.0

    if case.variant in ("mailbox", "mailbox-bracketed"):
        from lean_p2p.runtime.mailbox import DEFAULT_LINGER_S, LaneSpec, Mailbox, OverflowPolicy

        lane = LaneSpec("bench", 1 << 22, OverflowPolicy.REJECT_NEWEST, 1024)
        linger_s = DEFAULT_LINGER_S if case.linger_us is None else case.linger_us / 1e6
        atomic_publish = False if case.variant == "mailbox-bracketed" else None
        mailbox = Mailbox(
            [lane], sink.handle_lane, loop=loop, linger_s=linger_s, atomic_publish=atomic_publish
        )
        submit: Callable[[int], object] = mailbox.sender("bench")

        def mailbox_wakeups() -> int:
            return mailbox.statistics().wakeups

        wakeups, cleanup = mailbox_wakeups, mailbox.aclose
    elif case.variant == "call_soon":
        call_soon_threadsafe: Callable[..., object] = loop.call_soon_threadsafe
        submit = functools.partial(call_soon_threadsafe, sink.handle)
        wakeups, cleanup = (lambda: case.events), _nothing  # one call per event, by design
    elif case.variant == "janus":
        queue = _new_counting_janus_queue()
        consumer = loop.create_task(_janus_consumer(queue, sink), name="bench-janus-consumer")
        submit = queue.sync_q.put

        async def close_janus() -> None:
            consumer.cancel()
            await asyncio.gather(consumer, return_exceptions=True)
            queue.close()
            await queue.wait_closed()

        wakeups, cleanup = (lambda: queue.notifications), close_janus
    elif case.variant == "mutex":
        lock = threading.Lock()

        def apply_under_lock(stamp: int) -> None:
            with lock:
                sink.handle(stamp)

        def read_under_lock() -> object:
            nonlocal lock_wait_max_s
            asked = time.perf_counter()
            with lock:  # the loop thread reading shared state: it may block here
                lock_wait_max_s = max(lock_wait_max_s, time.perf_counter() - asked)
                return sink.count

        submit, ticker_read = apply_under_lock, read_under_lock
        wakeups, cleanup = (lambda: 0), _nothing
    else:
        raise ValueError(f"unknown variant {case.variant!r}")

    ticker = _Ticker(ticker_read)
    ticker.start()
    go = threading.Event()
    per_producer_rate = case.rate / case.producers if case.rate else None
    threads = [
        threading.Thread(
            target=_produce,
            args=(submit, count, per_producer_rate, go),
            name=f"bench-producer-{index}",
            daemon=True,
        )
        for index, count in enumerate(_split(case.events, case.producers))
    ]
    for thread in threads:
        thread.start()
    await asyncio.sleep(0.01)  # let every producer reach go.wait()
    started = time.perf_counter()
    go.set()
    timed_out = False
    try:
        await asyncio.wait_for(asyncio.shield(finished), _CASE_TIMEOUT_S)
    except TimeoutError:
        timed_out = True
    elapsed = time.perf_counter() - started
    await ticker.stop()
    await asyncio.to_thread(_join_all, threads)
    await cleanup()
    return Measurement(
        events=sink.count,
        elapsed_s=elapsed,
        latencies_ns=tuple(sink.latencies),
        wakeups=wakeups(),
        stall_max_s=ticker.worst_s,
        lock_wait_max_s=lock_wait_max_s,
        timed_out=timed_out,
    )


async def _nothing() -> None:
    return None


def _join_all(threads: Sequence[threading.Thread]) -> None:
    for thread in threads:
        thread.join()


def _janus_queue_type() -> type[Any]:
    import janus

    class CountingQueue(janus.Queue[int]):
        """janus.Queue that counts its loop notifications (call_soon_threadsafe)."""

        notifications = 0

        def _notify_async(self, method: Callable[[], None]) -> None:
            self.notifications += 1
            super()._notify_async(method)

    return CountingQueue


def _new_counting_janus_queue() -> Any:
    return _janus_queue_type()()


async def _janus_consumer(queue: Any, sink: _Sink) -> None:
    get = queue.async_q.get
    while True:
        sink.handle(await get())


def run_case(case: Case) -> Measurement:
    """Run one case on a fresh loop in the calling thread."""

    with asyncio.Runner(loop_factory=loop_factory(_loop_kind(case.loop))) as runner:
        return runner.run(_measure(case))


def _loop_kind(name: str) -> LoopKind:
    if name == "uvloop":
        return "uvloop"
    return "asyncio"


def _row(case: Case, measurements: Sequence[Measurement]) -> dict[str, Any]:
    from lean_p2p.tools.report import percentile

    rates = [m.events / m.elapsed_s for m in measurements if m.elapsed_s > 0]
    # Percentiles per run, then the median over runs: one run hit by an OS stall (the
    # machine is shared) moves the median less than it moves a pooled percentile.
    per_run = [sorted(m.latencies_ns) for m in measurements]
    p50s = [percentile(latencies, 0.50) / 1e3 for latencies in per_run]
    p99s = [percentile(latencies, 0.99) / 1e3 for latencies in per_run]
    events = sum(m.events for m in measurements)
    return {
        "variant": case.variant,
        "loop": case.loop,
        "producers": case.producers,
        "rate": "max" if case.rate is None else f"{case.rate // 1000}k",
        "events_per_s": statistics.median(rates) if rates else 0.0,
        "p50_us": statistics.median(p50s),
        "p99_us": statistics.median(p99s),
        "p99_us_worst_run": max(p99s),
        "wakeups_per_event": sum(m.wakeups for m in measurements) / max(1, events),
        "stall_max_us": max(m.stall_max_s for m in measurements) * 1e6,
        "lock_wait_max_us": max(m.lock_wait_max_s for m in measurements) * 1e6,
        "events": events,
        "repeats": len(measurements),
        "linger_us": case.linger_us,
        "timed_out": any(m.timed_out for m in measurements),
    }


def plan(args: argparse.Namespace) -> list[tuple[Case, int]]:
    """The cases to run and how often each repeats."""
    producer_counts: Sequence[int]
    if args.quick:  # under a minute, still 8 producers on asyncio
        producer_counts = (1, 8)
        flat_events, rate_seconds, repeats, rate_repeats = 60_000, 0.25, 1, 1
    else:
        producer_counts = (1, 2, 8)
        flat_events, rate_seconds, repeats, rate_repeats = 300_000, 1.0, 5, 3
    if args.producers:
        producer_counts = args.producers
    cases: list[tuple[Case, int]] = []
    for loop in args.loops:
        for producers in producer_counts:
            for variant in args.variants:
                linger = args.linger_us if variant.startswith("mailbox") else None
                flat = Case(variant, loop, producers, None, flat_events, linger)
                cases.append((flat, repeats))
                for rate in RATES:
                    paced = Case(variant, loop, producers, rate, int(rate * rate_seconds), linger)
                    cases.append((paced, rate_repeats))
    return cases


def interleaved(cases: Sequence[tuple[Case, int]]) -> list[Case]:
    """Run order: repeats round-robin over the variants of one loop, producer count and
    rate, so a burst of load from elsewhere on the machine hits every variant alike."""
    order: list[Case] = []
    groups: dict[tuple[str, int, int | None], list[tuple[Case, int]]] = {}
    for case, repeats in cases:
        groups.setdefault((case.loop, case.producers, case.rate), []).append((case, repeats))
    for group in groups.values():
        most = max(repeats for _, repeats in group)
        for repeat in range(most):
            order.extend(case for case, repeats in group if repeat < repeats)
    return order


def ratios(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Flat-out mailbox throughput over each other variant's, per loop and producers."""
    flat = {(r["variant"], r["loop"], r["producers"]): r for r in rows if r["rate"] == "max"}
    result = []
    for (variant, loop, producers), row in flat.items():
        if variant != "mailbox":
            continue
        entry: dict[str, Any] = {"loop": loop, "producers": producers}
        for other in ("call_soon", "janus", "mutex", "mailbox-bracketed"):
            baseline = flat.get((other, loop, producers))
            if baseline and baseline["events_per_s"]:
                entry[f"x_{other.replace('-', '_')}"] = (
                    row["events_per_s"] / baseline["events_per_s"]
                )
        asyncio_call_soon = flat.get(("call_soon", "asyncio", producers))
        if asyncio_call_soon and asyncio_call_soon["events_per_s"]:
            entry["x_call_soon_asyncio"] = row["events_per_s"] / asyncio_call_soon["events_per_s"]
        if len(entry) > 2:  # at least one baseline was measured
            result.append(entry)
    return result


_LIMIT_EVENTS = 300_000
_LIMIT_CHUNK = 1024  # the mailbox's budget: one drain's worth


def single_thread_limit(events: int = _LIMIT_EVENTS) -> float:
    """Events/s of the work no hand-off can avoid, on one thread: a deque append, a
    popleft and the bench's handler per event (in chunks of one drain's budget)."""
    sink = _Sink(events, lambda: None)
    clock = time.perf_counter_ns
    queue: deque[int] = deque()
    append, popleft, handle = queue.append, queue.popleft, sink.handle_lane
    started = time.perf_counter()
    for chunk in _split(events, max(1, events // _LIMIT_CHUNK)):
        for _ in range(chunk):
            append(clock())
        for _ in range(chunk):
            handle("bench", popleft())
    return events / (time.perf_counter() - started)


async def _put_drain_one_thread(events: int, atomic_publish: bool | None = None) -> float:
    """Events/s of the mailbox with no producer thread: the loop thread puts a
    drain's worth, lets the drain run, and so on (the mailbox's own cost per event)."""
    from lean_p2p.runtime.mailbox import LaneSpec, Mailbox, OverflowPolicy

    loop = asyncio.get_running_loop()
    chunk_handled: asyncio.Future[None] = loop.create_future()

    def chunk_done() -> None:
        chunk_handled.set_result(None)

    sink = _Sink(0, chunk_done)
    lane = LaneSpec("bench", 1 << 22, OverflowPolicy.REJECT_NEWEST, 1024)
    mailbox = Mailbox([lane], sink.handle_lane, loop=loop, atomic_publish=atomic_publish)
    send = mailbox.sender("bench")
    clock = time.perf_counter_ns
    started = time.perf_counter()
    for chunk in _split(events, max(1, events // _LIMIT_CHUNK)):
        chunk_handled = loop.create_future()
        sink.target += chunk
        for _ in range(chunk):
            send(clock())
        await chunk_handled  # the drain the first put armed runs now
    elapsed = time.perf_counter() - started
    await mailbox.aclose()
    return events / elapsed


def limits(
    loops: Sequence[str], rows: Sequence[dict[str, Any]], *, repeats: int, bracketed: bool = False
) -> list[dict[str, Any]]:
    """One thread's limit and the mailbox's put + drain without producer threads, per
    loop, beside the flat-out mailbox rows of the same run, and the limit over the
    flat-out ``call_soon`` row: the ceiling of any hand-off's gain over it. With
    ``bracketed``, the put + drain of a mailbox whose puts bracket their publish too,
    alternating with the default's."""
    result = []
    for loop_name in loops:
        limit = statistics.median(single_thread_limit() for _ in range(repeats))
        put_drain: list[float] = []
        put_drain_bracketed: list[float] = []
        for _ in range(repeats):
            with asyncio.Runner(loop_factory=loop_factory(_loop_kind(loop_name))) as runner:
                put_drain.append(runner.run(_put_drain_one_thread(_LIMIT_EVENTS)))
                if bracketed:
                    put_drain_bracketed.append(
                        runner.run(_put_drain_one_thread(_LIMIT_EVENTS, atomic_publish=False))
                    )
        put_drain_rate = statistics.median(put_drain)
        flat = {
            (row["variant"], row["producers"]): row["events_per_s"]
            for row in rows
            if row["loop"] == loop_name and row["rate"] == "max"
        }
        for (variant, producers), events_per_s in flat.items():
            if variant != "mailbox":
                continue
            call_soon = flat.get(("call_soon", producers))
            result.append(
                {
                    "table": "limit",
                    "loop": loop_name,
                    "limit_events_per_s": limit,
                    "put_drain_events_per_s": put_drain_rate,
                    "put_drain_of_limit": put_drain_rate / limit,
                    "put_drain_bracketed_events_per_s": (
                        statistics.median(put_drain_bracketed) if put_drain_bracketed else None
                    ),
                    "producers": producers,
                    "mailbox_events_per_s": events_per_s,
                    "mailbox_of_limit": events_per_s / limit,
                    # The most any hand-off could gain over call_soon: one thread's limit
                    # over it. A target above this is above what the interpreter allows.
                    "limit_x_call_soon": limit / call_soon if call_soon else None,
                }
            )
    return result


def run_benchmark(args: argparse.Namespace) -> int:
    from lean_p2p.tools.report import print_table, write_json

    cases = plan(args)
    measured: dict[Case, list[Measurement]] = {case: [] for case, _ in cases}
    stop = threading.Event()
    # The first Ctrl-C lets the case in hand finish (a few seconds at most), then the
    # tables show what was measured; an exception inside a case's loop would leave
    # that loop's tasks half done.
    with INTERRUPTS.stopping(stop.set):
        for case in interleaved(cases):
            if stop.is_set():
                break
            measurement = run_case(case)
            measured[case].append(measurement)
            print(
                f"{case.variant:>17} {case.loop:>7} producers={case.producers} "
                f"rate={case.rate or 'max'}: "
                f"{measurement.events / max(measurement.elapsed_s, 1e-9):>10,.0f} events/s",
                flush=True,
            )
    rows = [_row(case, measured[case]) for case, _ in cases if measured[case]]
    print_table(rows, _COLUMNS, title="bench bridge (all rows)")
    ratio_rows = ratios(rows)
    if ratio_rows:
        columns = [
            "loop",
            "producers",
            "x_call_soon",
            "x_call_soon_asyncio",
            "x_janus",
            "x_mutex",
            "x_mailbox_bracketed",
        ]
        print_table(ratio_rows, columns, title="flat out: mailbox events/s over each variant")
    limit_rows = []
    if "mailbox" in args.variants and not stop.is_set():
        limit_rows = limits(
            args.loops,
            rows,
            repeats=1 if args.quick else 5,
            bracketed="mailbox-bracketed" in args.variants,
        )
        print_table(limit_rows, _LIMIT_COLUMNS, title="flat out against one thread's limit")
    if args.json:
        write_json(args.json, [*rows, *limit_rows])
    return 1 if any(row["timed_out"] for row in rows) else 0


_LIMIT_COLUMNS = [
    "loop",
    "limit_events_per_s",
    "put_drain_events_per_s",
    "put_drain_of_limit",
    "put_drain_bracketed_events_per_s",
    "producers",
    "mailbox_events_per_s",
    "mailbox_of_limit",
    "limit_x_call_soon",
]

_COLUMNS = [
    "variant",
    "loop",
    "producers",
    "rate",
    "events_per_s",
    "p50_us",
    "p99_us",
    "p99_us_worst_run",
    "wakeups_per_event",
    "stall_max_us",
    "lock_wait_max_us",
    "events",
]

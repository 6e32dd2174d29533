"""A node's vital signs while it runs: what a profiler, or an embedder, wraps around it.

``with NodeSampler(node) as sampler:`` (entered and left on the node's loop thread,
after ``node.start()``) watches the node until the block ends, and ``sampler.end()``
gives the figures of the window since ``begin()`` (or since the start):

- per lane: arrivals, handled, drops by reason, depth, and the queueing delay of each
  network event (emitted -> handler start: p50, p99, max);
- handler time per item kind (mean, p99);
- the loop's lag (a timer every 10 ms: how late it ran);
- how long a Python thread waits for a core and the GIL after a 10 ms sleep (the
  sampler thread's own overshoot: CPython cannot say how long the loop thread waited
  for the GIL, but this is what any thread of the process pays to run again);
- garbage collection pauses per generation (``gc.callbacks``);
- CPU per thread (``/proc/self/task``), named by their Python names, and RSS.

:attr:`NodeSampler.timeline` holds one :class:`Sample` per interval for plots.

Threads. Construction, ``__enter__``/``__exit__``, ``begin``/``end`` and the interval
collection run on the loop thread. :meth:`NodeSampler.enqueued` runs on whichever
thread emits an event (a stamp in a dict: one atomic store under the GIL). The sampler
thread only sleeps, measures its own wake-up, and reads ``/proc``; it hands each
reading to the loop with ``call_soon_threadsafe``. Garbage-collection callbacks run on
whatever thread collects and append to a deque. Nothing here touches consensus state:
the node's figures are read on the loop thread through its public statistics.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import gc
import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

if TYPE_CHECKING:
    from lean_p2p.node.node import Node

__all__ = [
    "LaneCounts",
    "NodeSampler",
    "Sample",
    "Window",
    "cpu_seconds",
    "percentiles",
    "process_rss_bytes",
]

_LAG_PERIOD_S = 0.010
_MIN_INTERVAL_S = 0.005
_PROBE_SLEEP_S = 0.010
#: stamps of events the node never handled (dropped by a full lane, refused at close)
#: are forgotten after this long, so a flood of drops cannot grow the stamp table. A
#: lane is bounded, so a handled event waits far less; one that waited longer would
#: have no delay recorded, and ``forgotten_stamps`` counts both.
_STAMP_TTL_S = 10.0
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def percentiles(values: Iterable[float]) -> dict[str, float | None]:
    """p50, p99 and max of ``values`` (None for each when there are none)."""
    ordered = sorted(values)
    if not ordered:
        return {"p50": None, "p99": None, "max": None}

    def at(fraction: float) -> float:
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]

    return {"p50": at(0.50), "p99": at(0.99), "max": ordered[-1]}


@dataclass(slots=True)
class LaneCounts:
    """A lane's counters over an interval or a window."""

    accepted: int = 0
    handled: int = 0
    full: int = 0
    evicted: int = 0


@dataclass(frozen=True, slots=True)
class Sample:
    """One interval of the timeline (seconds since the sampler started)."""

    t: float
    seconds: float
    label: str
    #: lane -> {"arrived", "handled", "dropped", "depth", "delay_p99_ms"}
    lanes: dict[str, dict[str, float]]
    loop_lag_max_ms: float
    gil_wait_p99_ms: float
    gc_pause_max_ms: float
    #: thread name -> percent of one core
    cpu: dict[str, float]
    rss_mb: float


@dataclass
class Window:
    """The figures of one labelled span (a ramp step), built on the loop thread."""

    label: str
    seconds: float = 0.0
    lanes: dict[str, LaneCounts] = field(default_factory=dict)
    delays: dict[str, list[float]] = field(default_factory=dict)  # lane -> seconds
    handling: dict[str, list[float]] = field(default_factory=dict)  # kind -> seconds
    loop_lag: list[float] = field(default_factory=list)
    gil_wait: list[float] = field(default_factory=list)
    #: (generation, pause seconds)
    gc_pauses: list[tuple[int, float]] = field(default_factory=list)
    cpu_seconds: dict[str, float] = field(default_factory=dict)
    rss_max_bytes: int = 0

    @property
    def arrived(self) -> int:
        return sum(lane.accepted for lane in self.lanes.values())

    @property
    def handled(self) -> int:
        return sum(lane.handled for lane in self.lanes.values())

    @property
    def dropped(self) -> int:
        return sum(lane.full + lane.evicted for lane in self.lanes.values())

    def delay_percentiles_ms(self, lanes: Iterable[str] | None = None) -> dict[str, float | None]:
        """Queueing delay over ``lanes`` (all network lanes by default), milliseconds."""
        names = self.delays if lanes is None else lanes
        values = [v * 1e3 for name in names for v in self.delays.get(name, ())]
        return percentiles(values)

    def cpu_percent(self) -> dict[str, float]:
        seconds = self.seconds or 1.0
        return {name: 100 * cpu / seconds for name, cpu in self.cpu_seconds.items()}

    def as_dict(self) -> dict[str, Any]:
        seconds = self.seconds or 1.0
        lanes = {}
        for name, counts in sorted(self.lanes.items()):
            delay = percentiles(v * 1e3 for v in self.delays.get(name, ()))
            lanes[name] = {
                "arrived_per_s": counts.accepted / seconds,
                "handled_per_s": counts.handled / seconds,
                "dropped": {"full": counts.full, "evicted": counts.evicted},
                "delay_p50_ms": delay["p50"],
                "delay_p99_ms": delay["p99"],
                "delay_max_ms": delay["max"],
            }
        handling = {}
        for kind, values in sorted(self.handling.items()):
            spread = percentiles(v * 1e6 for v in values)
            handling[kind] = {
                "count": len(values),
                "mean_us": 1e6 * sum(values) / len(values),
                "p99_us": spread["p99"],
            }
        gc_by_generation: dict[str, dict[str, float]] = {}
        for generation, pause in self.gc_pauses:
            entry = gc_by_generation.setdefault(
                str(generation), {"collections": 0, "pause_max_ms": 0.0, "pause_total_ms": 0.0}
            )
            entry["collections"] += 1
            entry["pause_total_ms"] += pause * 1e3
            entry["pause_max_ms"] = max(entry["pause_max_ms"], pause * 1e3)
        lag = percentiles(v * 1e3 for v in self.loop_lag)
        gil = percentiles(v * 1e3 for v in self.gil_wait)
        return {
            "label": self.label,
            "seconds": self.seconds,
            "arrived_per_s": self.arrived / seconds,
            "handled_per_s": self.handled / seconds,
            "dropped": self.dropped,
            "lanes": lanes,
            "handling": handling,
            "loop_lag_ms": lag,
            "gil_wait_ms": gil,
            "gc": gc_by_generation,
            "cpu_percent": {k: round(v, 1) for k, v in sorted(self.cpu_percent().items())},
            "rss_max_mb": self.rss_max_bytes / 2**20,
        }


class NodeSampler:
    """Samples a started node; see the module docstring. Loop thread, but ``enqueued``."""

    def __init__(self, node: Node, *, interval: float = 1.0) -> None:
        if interval <= 0:
            raise ValueError(f"interval={interval}: must be positive")
        self._node = node
        self._interval = interval
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread_id = 0
        self._started = 0.0
        #: id(event) -> (perf_counter at emit, the event): holding the event keeps its
        #: id from being reused by another object while the stamp waits
        self._stamps: dict[int, tuple[float, object]] = {}
        #: (stamp time, key) in stamping order: how stale stamps are found without
        #: iterating the table other threads write
        self._stamp_order: collections.deque[tuple[float, int]] = collections.deque()
        self._gc_events: collections.deque[tuple[int, float]] = collections.deque()
        self._gc_started = 0.0
        self._probe_waits: collections.deque[float] = collections.deque()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._lag_handle: asyncio.TimerHandle | None = None
        self._lag_due = 0.0
        self._window = Window("all")
        self._window_started = 0.0
        self._interval_window = Window("")
        self._last_lanes: dict[str, LaneCounts] = {}
        self._last_reading = _Reading(0.0, {}, {}, 0)
        self._label = "all"
        self.timeline: list[Sample] = []
        self._observing = True
        #: stamps forgotten unhandled (see _STAMP_TTL_S)
        self.forgotten_stamps = 0

    # -- loop thread ------------------------------------------------------------------

    def __enter__(self) -> Self:
        loop = asyncio.get_running_loop()
        if self._node.mailbox_statistics() is None:
            raise RuntimeError("the node has not started: enter the sampler after start()")
        self._node.affinity.check()
        self._loop = loop
        self._loop_thread_id = threading.get_native_id()
        self._started = time.perf_counter()
        self._last_lanes = self._lane_counts()
        self._last_reading = _Reading.now()
        gc.callbacks.append(self._on_collection)
        self._node.attach_observer(self)
        self._begin_window("all")
        self._lag_due = loop.time() + _LAG_PERIOD_S
        self._lag_handle = loop.call_at(self._lag_due, self._on_lag_timer)
        self._thread = threading.Thread(target=self._run, name="sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop sampling (idempotent). Joins the sampler thread, whose sleeps end as
        soon as it is told to stop (the loop waits for a wake-up, not a sleep)."""
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join()
        self._thread = None
        if self._lag_handle is not None:
            self._lag_handle.cancel()
        self._node.attach_observer(None)
        with contextlib.suppress(ValueError):
            gc.callbacks.remove(self._on_collection)
        self._stamps.clear()
        self._stamp_order.clear()

    @property
    def observing(self) -> bool:
        return self._observing

    def set_observing(self, observing: bool) -> None:
        """Off: no stamps, no handler times, and the probe thread wakes only to read
        ``/proc`` (what the sampler costs the node, measured against on). Counts,
        CPU and the lag timer go on."""
        self._observing = observing
        self._node.attach_observer(self if observing else None)

    def begin(self, label: str) -> None:
        """Start a new window (the current one ends; :meth:`end` would have returned it).

        At a window's edges the loop reads ``/proc`` itself (a few hundred microseconds,
        once per window), so each window's CPU figures are its own."""
        self._flush(_Reading.now())
        self._begin_window(label)

    def end(self) -> Window:
        """The window since the last :meth:`begin` (or since entering), up to now."""
        self._flush(_Reading.now())
        window = self._window
        window.seconds = time.perf_counter() - self._window_started
        return window

    def _begin_window(self, label: str) -> None:
        self._label = label
        self._window = Window(label)
        self._window_started = time.perf_counter()

    def _on_lag_timer(self) -> None:
        loop = self._loop
        assert loop is not None
        now = loop.time()
        lag = max(0.0, now - self._lag_due)
        self._window.loop_lag.append(lag)
        self._interval_window.loop_lag.append(lag)
        self._lag_due = now + _LAG_PERIOD_S
        self._lag_handle = loop.call_at(self._lag_due, self._on_lag_timer)

    def handled(self, lane: str, item: object, started: float, finished: float) -> None:
        stamp = self._stamps.pop(id(item), None)
        if stamp is not None and stamp[1] is item:
            delay = started - stamp[0]
            self._window.delays.setdefault(lane, []).append(delay)
            self._interval_window.delays.setdefault(lane, []).append(delay)
        kind = type(item).__name__
        self._window.handling.setdefault(kind, []).append(finished - started)

    def _collect(self, reading: _Reading) -> None:
        """One interval's reading, handed over by the sampler thread."""
        # A busy loop may run this after a window edge read /proc itself: a reading
        # taken before that one would count the CPU before the edge in the new window.
        if self._thread is not None and reading.taken > self._last_reading.taken:
            self._flush(reading)

    def _flush(self, reading: _Reading) -> None:
        """Close the current interval: one :class:`Sample`, and its counts into the
        window."""
        self._forget_old_stamps(reading.taken)
        window, interval = self._window, self._interval_window
        seconds = max(reading.taken - self._last_reading.taken, 1e-9)
        lanes = self._lane_counts()
        lane_rows: dict[str, dict[str, float]] = {}
        for name, counts in lanes.items():
            last = self._last_lanes.get(name, LaneCounts())
            delta = LaneCounts(
                counts.accepted - last.accepted,
                counts.handled - last.handled,
                counts.full - last.full,
                counts.evicted - last.evicted,
            )
            total = window.lanes.setdefault(name, LaneCounts())
            total.accepted += delta.accepted
            total.handled += delta.handled
            total.full += delta.full
            total.evicted += delta.evicted
            delay = percentiles(interval.delays.get(name, ()))
            lane_rows[name] = {
                "arrived": delta.accepted,
                "handled": delta.handled,
                "dropped": delta.full + delta.evicted,
                "delay_p99_ms": (delay["p99"] or 0.0) * 1e3,
            }
        self._last_lanes = lanes
        while self._probe_waits:
            wait = self._probe_waits.popleft()
            window.gil_wait.append(wait)
            interval.gil_wait.append(wait)
        while self._gc_events:
            event = self._gc_events.popleft()
            window.gc_pauses.append(event)
            interval.gc_pauses.append(event)
        cpu_percent: dict[str, float] = {}
        last_cpu = self._last_reading.cpu
        for tid, used in reading.cpu.items():
            spent = used - last_cpu.get(tid, 0.0)
            name = self._thread_name(tid, reading.names)
            window.cpu_seconds[name] = window.cpu_seconds.get(name, 0.0) + spent
            cpu_percent[name] = cpu_percent.get(name, 0.0) + 100 * spent / seconds
        window.rss_max_bytes = max(window.rss_max_bytes, reading.rss)
        self._last_reading = reading
        if seconds < _MIN_INTERVAL_S:
            # A window edge right after another (end, then begin): its counts went to
            # the window, but a rate over a few microseconds is noise, not a sample.
            return
        self.timeline.append(
            Sample(
                t=reading.taken - self._started,
                seconds=seconds,
                label=self._label,
                lanes=lane_rows,
                loop_lag_max_ms=max(interval.loop_lag, default=0.0) * 1e3,
                gil_wait_p99_ms=(percentiles(interval.gil_wait)["p99"] or 0.0) * 1e3,
                gc_pause_max_ms=max((p for _, p in interval.gc_pauses), default=0.0) * 1e3,
                cpu=cpu_percent,
                rss_mb=reading.rss / 2**20,
            )
        )
        self._interval_window = Window("")

    def _thread_name(self, tid: int, names: dict[int, str]) -> str:
        if tid == self._loop_thread_id:
            return "loop"
        return names.get(tid, f"thread {tid}")

    def _forget_old_stamps(self, now: float) -> None:
        """Drop the stamps of events never handled, once older than the TTL.

        The stamp table is written by the emitting threads, so the loop never iterates
        it: a collection during the iteration may run Python (``gc.callbacks``) and let
        a writer in. It walks the deque of (time, key) in stamping order instead, which
        the writers only append to. A key whose event was handled is gone from the table,
        or holds a newer stamp (another event at the same address, after the first one
        was freed); either way its old entry is only dropped from the deque.
        """
        order, stamps = self._stamp_order, self._stamps
        oldest = now - _STAMP_TTL_S
        # At most what was there when this began: writers may append all along.
        for _ in range(len(order)):
            stamped, key = order[0]
            entry = stamps.get(key)
            if entry is not None and entry[0] == stamped:
                if stamped >= oldest:
                    return  # the oldest stamp still waiting is young enough
                # Only the loop pops a live entry (handled), and no other event can take
                # this key while the entry holds its event: this pop removes this stamp.
                stamps.pop(key, None)
                self.forgotten_stamps += 1
            order.popleft()

    def _lane_counts(self) -> dict[str, LaneCounts]:
        stats = self._node.mailbox_statistics()
        if stats is None:
            return {}
        return {
            lane.name: LaneCounts(lane.accepted, lane.handled, lane.rejected_full, lane.evicted)
            for lane in stats.lanes
        }

    # -- any thread -------------------------------------------------------------------

    def enqueued(self, event: object) -> None:
        """Stamp a network event as it is emitted (the emitting thread)."""
        now = time.perf_counter()
        key = id(event)
        self._stamps[key] = (now, event)
        self._stamp_order.append((now, key))

    def _on_collection(self, phase: str, info: dict[str, Any]) -> None:
        # Runs on the collecting thread, with the GIL held through the collection, so
        # start and stop pair up.
        now = time.perf_counter()
        if phase == "start":
            self._gc_started = now
        else:
            self._gc_events.append((info["generation"], now - self._gc_started))

    # -- the sampler thread -----------------------------------------------------------

    def _run(self) -> None:
        loop = self._loop
        assert loop is not None
        next_reading = time.perf_counter() + self._interval
        while not self._stop.is_set():
            if not self._observing:
                self._stop.wait(max(0.0, next_reading - time.perf_counter()))
            else:
                before = time.perf_counter()
                if self._stop.wait(_PROBE_SLEEP_S):
                    return
                self._probe_waits.append(max(0.0, time.perf_counter() - before - _PROBE_SLEEP_S))
            after = time.perf_counter()
            if after < next_reading:
                continue
            next_reading += self._interval
            try:
                loop.call_soon_threadsafe(self._collect, _Reading.now())
            except RuntimeError:  # the loop closed under us
                return


@dataclass(frozen=True, slots=True)
class _Reading:
    """What the process looked like at one moment (read on any thread)."""

    taken: float  # perf_counter
    cpu: dict[int, float]  # thread id -> CPU seconds
    names: dict[int, str]  # thread id -> Python thread name
    rss: int  # bytes

    @classmethod
    def now(cls) -> _Reading:
        names = {t.native_id: t.name for t in threading.enumerate() if t.native_id}
        return cls(time.perf_counter(), dict(_thread_cpu_seconds()), names, _rss_bytes())


def cpu_seconds(stat_path: str) -> float | None:
    """User + system CPU seconds from a ``/proc/.../stat`` file (a process's or a
    thread's); None when it is gone."""
    try:
        with open(stat_path, "rb") as stat:
            text = stat.read()
    except OSError:
        return None
    # The name in parentheses may hold spaces: split after its closing parenthesis.
    fields = text[text.rindex(b")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def process_rss_bytes(pid: int) -> int | None:
    """Resident memory of process ``pid`` (``VmRSS`` in ``/proc/PID/status``); None when
    it is gone."""
    try:
        with open(f"/proc/{pid}/status", "rb") as status:
            for line in status:
                if line.startswith(b"VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return None
    return None


def _thread_cpu_seconds() -> Iterable[tuple[int, float]]:
    """(thread id, user + system CPU seconds) for every thread of this process."""
    try:
        tids = os.listdir("/proc/self/task")
    except OSError:
        return
    for tid in tids:
        used = cpu_seconds(f"/proc/self/task/{tid}/stat")
        if used is not None:  # else the thread ended
            yield int(tid), used


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE_SIZE
    except OSError:
        return 0

"""Native producer threads for benchmarks, stress runs and tests.

Any thread, except :meth:`ProducerRun.join` and :meth:`RingConsumer.join`, which block
and so must not run on the loop thread (use ``await asyncio.to_thread(run.join)``).
Wraps ``bindings/testing/lean_p2p_producers.c``: N pthreads each push M stamped events
through a ``lean_p2p_push_fn`` — the ring's ``lean_p2p_ring_push`` or a
:class:`~lean_p2p.native.callback.CallbackBridge` — exactly as an embedder's
networking threads would. :class:`RingConsumer` is the other end without Python: a C
thread that drains a ring on its own (the floor of the native hand-off).
"""

from __future__ import annotations

import ctypes
import os
import struct
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from lean_p2p.native.library import NativeUnavailable, function_address

__all__ = [
    "PRODUCERS_FILENAME",
    "STAMP",
    "ProducerDriver",
    "ProducerRun",
    "ProducerTotals",
    "RingConsumer",
    "Stamp",
    "read_stamp",
]

PRODUCERS_FILENAME = "liblean_p2p_producers.so"

#: The first 24 payload bytes of every driver event: producer, zero, sequence, time.
STAMP = struct.Struct("<IIQQ")


@dataclass(frozen=True, slots=True)
class Stamp:
    producer: int
    sequence: int
    pushed_ns: int  # CLOCK_MONOTONIC, comparable with time.monotonic_ns()


def read_stamp(payload: bytes) -> Stamp:
    producer, _zero, sequence, pushed_ns = STAMP.unpack_from(payload)
    return Stamp(producer, sequence, pushed_ns)


class _TotalsStruct(ctypes.Structure):
    _fields_ = [
        ("attempted", ctypes.c_uint64),
        ("accepted", ctypes.c_uint64),
        ("full", ctypes.c_uint64),
        ("closed", ctypes.c_uint64),
        ("other_errors", ctypes.c_uint64),
        ("push_ns", ctypes.c_uint64),
        ("wall_ns", ctypes.c_uint64),
    ]


@dataclass(frozen=True, slots=True)
class ProducerTotals:
    """Summed over all producer threads of one run."""

    attempted: int
    accepted: int
    full: int  # FULL answers, retries included
    closed: int
    other_errors: int
    push_ns: int  # time inside accepted pushes
    wall_ns: int  # the slowest thread's first-to-last push

    @property
    def mean_push_ns(self) -> float:
        return self.push_ns / self.accepted if self.accepted else float("nan")


def _totals(raw: _TotalsStruct) -> ProducerTotals:
    return ProducerTotals(*(getattr(raw, field[0]) for field in _TotalsStruct._fields_))


@cache
def _load(path: Path) -> ctypes.CDLL:
    if not path.is_file():
        raise NativeUnavailable(f"native producer driver not built ({path} is missing)")
    library = ctypes.CDLL(str(path))
    library.producers_start.restype = ctypes.c_void_p
    library.producers_start.argtypes = (
        ctypes.c_void_p,
        ctypes.c_void_p,
        ctypes.c_int,
        ctypes.c_uint64,
        ctypes.c_uint32,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_void_p,
    )
    library.producers_start_counts.restype = ctypes.c_void_p
    library.producers_start_counts.argtypes = (
        ctypes.c_void_p,
        ctypes.c_void_p,
        ctypes.c_int,
        ctypes.POINTER(ctypes.c_uint64),
        ctypes.c_uint32,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_uint64,
        ctypes.c_uint32,
        ctypes.c_int,
        ctypes.c_void_p,
    )
    library.producers_done.restype = ctypes.c_int
    library.producers_done.argtypes = (ctypes.c_void_p,)
    library.producers_stop.restype = None
    library.producers_stop.argtypes = (ctypes.c_void_p,)
    library.producers_join.restype = None
    library.producers_join.argtypes = (ctypes.c_void_p, ctypes.POINTER(_TotalsStruct))
    library.producers_thread_totals.restype = None
    library.producers_thread_totals.argtypes = (
        ctypes.c_void_p,
        ctypes.c_int,
        ctypes.POINTER(_TotalsStruct),
    )
    library.producers_accepted.restype = ctypes.c_uint64
    library.producers_accepted.argtypes = (ctypes.c_void_p, ctypes.c_int)
    library.producers_cost_percentile.restype = ctypes.c_uint64
    library.producers_cost_percentile.argtypes = (ctypes.c_void_p, ctypes.c_double)
    library.producers_free.restype = None
    library.producers_free.argtypes = (ctypes.c_void_p,)
    library.consumer_start.restype = ctypes.c_void_p
    library.consumer_start.argtypes = (
        ctypes.c_void_p,
        ctypes.c_void_p,
        ctypes.c_void_p,
        ctypes.c_void_p,
        ctypes.c_uint64,
    )
    library.consumer_stop.restype = None
    library.consumer_stop.argtypes = (ctypes.c_void_p,)
    library.consumer_join.restype = ctypes.c_int64
    library.consumer_join.argtypes = (ctypes.c_void_p,)
    for name in ("consumer_delay_ns", "consumer_wait_ns"):
        getattr(library, name).restype = ctypes.c_uint64
        getattr(library, name).argtypes = (ctypes.c_void_p, ctypes.c_uint64)
    library.consumer_free.restype = None
    library.consumer_free.argtypes = (ctypes.c_void_p,)
    return library


class ProducerDriver:
    """The loaded driver library (default: the one the package build made)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path if path is not None else Path(__file__).with_name(PRODUCERS_FILENAME)
        self._lib = _load(self.path)

    def start(
        self,
        push_function_address: int,
        context_address: int | None,
        *,
        threads: int,
        events_per_thread: int | Sequence[int],
        payload_len: int = STAMP.size,
        retry_when_full: bool = True,
        record_costs: bool = False,
        on_thread_exit_address: int | None = None,
        interval_ns: int = 0,
        burst: int = 1,
        stagger: bool = False,
        nice: int = 0,
    ) -> ProducerRun:
        """Start ``threads`` pthreads pushing ``events_per_thread`` events each (0: until
        stopped or the ring closes; a sequence: producer i pushes the i-th count).
        ``context_address`` is the push function's first argument (the ring; ignored
        by a callback bridge). ``on_thread_exit_address``
        (``void (*)(void)``, e.g. ``CallbackBridge.detach_address``) runs on each
        producer thread after its last push. ``interval_ns`` > 0 paces each producer
        to one push per interval (for latency at a fixed rate); with ``burst`` > 1 it
        sleeps once per ``burst`` events and pushes them back to back, as a network
        thread does with what one read brought (one wakeup per burst, not per event).
        Paced producers wake at the same instants, or with ``stagger`` producer i a
        fraction i/threads of a period after the first, as independent threads would.
        ``nice`` > 0 runs the producers that much lower in priority than the calling
        thread, which keeps its own (see :func:`_started_lowered`; the caller then waits
        for a short-lived thread to start them)."""
        if burst < 1:
            raise ValueError(f"burst must be at least 1, not {burst}")
        if nice < 0:
            raise ValueError(f"nice must be >= 0 (raising a priority needs privileges), not {nice}")
        if isinstance(events_per_thread, int):
            counts = None if events_per_thread == 0 else [events_per_thread] * threads
        else:
            counts = list(events_per_thread)
            if len(counts) != threads:
                raise ValueError(f"{len(counts)} counts for {threads} producer threads")
        arguments = (
            push_function_address,
            context_address,
            threads,
            None if counts is None else (ctypes.c_uint64 * threads)(*counts),
            payload_len,
            int(retry_when_full),
            int(record_costs),
            interval_ns,
            burst,
            int(stagger),
            on_thread_exit_address,
        )
        start = self._lib.producers_start_counts
        run = (
            _started_lowered(nice, lambda: start(*arguments), self._lib.producers_free)
            if nice
            else start(*arguments)
        )
        if not run:
            raise RuntimeError(f"could not start {threads} native producer threads")
        return ProducerRun(self._lib, run, threads)


def _started_lowered(nice: int, start: Callable[[], int], abandon: Callable[[int], object]) -> int:
    """``start()`` called on a short-lived thread that first lowers its own priority by
    ``nice``: on Linux a thread's nice value is its own, and the pthreads ``start``
    creates inherit it, while the calling thread (a loop thread, say) keeps its own. An
    unprivileged process may lower a priority but not raise it back, so lowering the
    caller and restoring it afterwards is not an option. A Ctrl-C that lands while the
    caller waits lets the start finish and hands what it started to ``abandon`` (stop,
    join and free), so that no producer is left pushing with nobody holding its run."""
    outcome: list[int] = []
    failure: list[BaseException] = []

    def lowered() -> None:
        try:
            thread = threading.get_native_id()
            os.setpriority(os.PRIO_PROCESS, thread, os.getpriority(os.PRIO_PROCESS, thread) + nice)
            outcome.append(start())
        except BaseException as error:  # handed to the caller, whatever it is
            failure.append(error)

    starter = threading.Thread(target=lowered, name="lean-p2p-producers-start")
    starter.start()
    try:
        starter.join()
    except BaseException:
        starter.join()
        if outcome and outcome[0]:
            abandon(outcome[0])
        raise
    if failure:
        raise failure[0]
    return outcome[0]


class ProducerRun:
    """One started set of producer threads."""

    def __init__(self, lib: ctypes.CDLL, run: int, threads: int) -> None:
        self._lib = lib
        self._run: int | None = run
        self.threads = threads
        self._totals: ProducerTotals | None = None

    def done(self) -> bool:
        """True once every producer is past its last push (any thread, never blocks):
        poll it on the loop thread, then :meth:`join` returns at once."""
        return bool(self._lib.producers_done(self._live()))

    def stop(self) -> None:
        """Ask every producer to stop after the push in hand (any thread)."""
        if self._run is not None:
            self._lib.producers_stop(self._run)

    def join(self) -> ProducerTotals:
        """Wait for every producer thread (blocks: never on the loop thread)."""
        if self._totals is None:
            raw = _TotalsStruct()
            self._lib.producers_join(self._live(), ctypes.byref(raw))
            self._totals = _totals(raw)
        return self._totals

    def totals_of(self, producer: int) -> ProducerTotals:
        """One producer's totals (after :meth:`join`)."""
        if not 0 <= producer < self.threads:
            raise IndexError(f"no producer {producer} in a run of {self.threads}")
        raw = _TotalsStruct()
        self._lib.producers_thread_totals(self._live(), producer, ctypes.byref(raw))
        return _totals(raw)

    def accepted_by(self, producer: int) -> int:
        """Events producer ``producer`` had accepted (after :meth:`join`)."""
        return int(self._lib.producers_accepted(self._live(), producer))

    def push_cost_percentile_ns(self, fraction: float) -> int:
        """Push cost percentile over all producers (after :meth:`join`, ``record_costs``)."""
        return int(self._lib.producers_cost_percentile(self._live(), fraction))

    def free(self) -> None:
        """Stop, join and free the run (blocks like :meth:`join`)."""
        run, self._run = self._run, None
        if run is not None:
            self._lib.producers_free(run)

    def _live(self) -> int:
        if self._run is None:
            raise RuntimeError("the producer run was freed")
        return self._run


class RingConsumer:
    """A C thread that is a ring's only consumer: it blocks in ``poll(2)`` on the ring's
    eventfd and drains the ring itself, with no event loop and no Python, until it has
    taken ``expected`` events. Each event's delay runs from its push stamp to the
    moment the consumer read it; its wait, to the start of the drain that took it.

    ``ring_address`` must be a ring that nothing else drains (not a
    :class:`~lean_p2p.native.NativeRing`'s, whose loop drains it): create one with the
    ring library's ``lean_p2p_ring_create`` and destroy it after :meth:`join` and the
    producers' join.
    """

    def __init__(self, ring_address: int, expected: int, driver: ProducerDriver | None = None):
        from lean_p2p.native.library import load_library

        ring_library = load_library()
        self._lib = (driver or ProducerDriver())._lib

        def address(name: str) -> int:
            return function_address(getattr(ring_library, name))

        self._run: int | None = self._lib.consumer_start(
            ring_address,
            address("lean_p2p_ring_eventfd"),
            address("lean_p2p_ring_begin_drain"),
            address("lean_p2p_ring_drain"),
            expected,
        )
        if not self._run:
            raise RuntimeError("could not start the native ring consumer thread")
        self._received: int | None = None

    def stop(self) -> None:
        """Ask the consumer to stop (it notices within 100 ms; any thread)."""
        if self._run is not None:
            self._lib.consumer_stop(self._run)

    def join(self) -> int:
        """Wait for the consumer (blocks: never on the loop thread); returns how many
        events it took. Raises RuntimeError if it met a record it could not read."""
        if self._received is None:
            received = int(self._lib.consumer_join(self._live()))
            if received < 0:
                raise RuntimeError("the native ring consumer met a record without a stamp")
            self._received = received
        return self._received

    def delays_ns(self) -> tuple[list[int], list[int]]:
        """Each event's (delay, wait) in ns, in the order taken (after :meth:`join`)."""
        run = self._live()
        taken = self.join()
        delay = self._lib.consumer_delay_ns
        wait = self._lib.consumer_wait_ns
        return [delay(run, index) for index in range(taken)], [
            wait(run, index) for index in range(taken)
        ]

    def free(self) -> None:
        """Stop, join and free the consumer (blocks like :meth:`join`)."""
        run = self._run
        if run is not None:
            self._lib.consumer_stop(run)
            if self._received is None:  # a thread is joined once
                self._received = max(int(self._lib.consumer_join(run)), 0)
            self._run = None
            self._lib.consumer_free(run)

    def _live(self) -> int:
        if self._run is None:
            raise RuntimeError("the ring consumer was freed")
        return self._run

"""Native producer threads for benchmarks, stress runs and tests.

Any thread, except :meth:`ProducerRun.join`, which blocks and so must not run on the
loop thread (use ``await asyncio.to_thread(run.join)``). Wraps
``bindings/testing/lean_p2p_producers.c``: N pthreads each push M stamped events
through a ``lean_p2p_push_fn`` — the ring's ``lean_p2p_ring_push`` or a
:class:`~lean_p2p.native.callback.CallbackBridge` — exactly as an embedder's
networking threads would.
"""

from __future__ import annotations

import ctypes
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from lean_p2p.native.library import NativeUnavailable

__all__ = [
    "PRODUCERS_FILENAME",
    "STAMP",
    "ProducerDriver",
    "ProducerRun",
    "ProducerTotals",
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
    ) -> ProducerRun:
        """Start ``threads`` pthreads pushing ``events_per_thread`` events each (0: until
        stopped or the ring closes; a sequence: producer i pushes the i-th count).
        ``context_address`` is the push function's first argument (the ring; ignored
        by a callback bridge). ``on_thread_exit_address``
        (``void (*)(void)``, e.g. ``CallbackBridge.detach_address``) runs on each
        producer thread after its last push. ``interval_ns`` > 0 paces each producer
        to one push per interval (for latency at a fixed rate); with ``burst`` > 1 it
        sleeps once per ``burst`` events and pushes them back to back, as a network
        thread does with what one read brought (one wakeup per burst, not per event)."""
        if burst < 1:
            raise ValueError(f"burst must be at least 1, not {burst}")
        if isinstance(events_per_thread, int):
            counts = None if events_per_thread == 0 else [events_per_thread] * threads
        else:
            counts = list(events_per_thread)
            if len(counts) != threads:
                raise ValueError(f"{len(counts)} counts for {threads} producer threads")
        run = self._lib.producers_start_counts(
            push_function_address,
            context_address,
            threads,
            None if counts is None else (ctypes.c_uint64 * threads)(*counts),
            payload_len,
            int(retry_when_full),
            int(record_costs),
            interval_ns,
            burst,
            on_thread_exit_address,
        )
        if not run:
            raise RuntimeError(f"could not start {threads} native producer threads")
        return ProducerRun(self._lib, run, threads)


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

"""The native producer driver (C pthreads) that the benches and stress runs use, and
the C ring consumer that is the native hand-off's floor."""

from __future__ import annotations

import ctypes
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lean_p2p.native.library import load_library
from lean_p2p.tools.native_producers import ProducerDriver, RingConsumer, _started_lowered


@pytest.fixture
def raw_ring() -> Iterator[int]:
    """A ring that no loop drains: the C consumer is its only consumer."""
    library = load_library()
    ring = library.lean_p2p_ring_create(4_096, 0)
    assert ring
    yield ring
    library.lean_p2p_ring_destroy(ring)


def _push_address() -> int:
    address = ctypes.cast(load_library().lean_p2p_ring_push, ctypes.c_void_p).value
    assert address is not None
    return address


def test_a_burst_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="burst must be at least 1"):
        ProducerDriver().start(0, None, threads=1, events_per_thread=1, interval_ns=1, burst=0)


@pytest.mark.parametrize("stagger", [False, True])
def test_the_c_consumer_takes_every_paced_event_and_times_each_one(
    raw_ring: int, stagger: bool
) -> None:
    driver = ProducerDriver()
    consumer = RingConsumer(raw_ring, 4 * 500, driver)
    run = driver.start(
        _push_address(),
        raw_ring,
        threads=4,
        events_per_thread=500,
        interval_ns=4 * 1_000_000_000 // 50_000,
        burst=4,
        stagger=stagger,
    )
    try:
        assert run.join().accepted == 2_000
        assert consumer.join() == 2_000
        delays, waits = consumer.delays_ns()
    finally:
        consumer.free()
        run.free()
    assert len(delays) == len(waits) == 2_000
    assert all(0 <= wait <= delay for delay, wait in zip(delays, waits, strict=True))
    assert all(delay > 0 for delay in delays)


def test_a_stopped_c_consumer_returns_what_it_took(raw_ring: int) -> None:
    consumer = RingConsumer(raw_ring, 10)
    consumer.stop()
    assert consumer.join() == 0  # nothing was pushed: it stops within its poll bound
    assert consumer.delays_ns() == ([], [])
    consumer.free()
    with pytest.raises(RuntimeError, match="freed"):
        consumer.delays_ns()


def _thread_nice_values() -> dict[int, int]:
    """Every thread of this process by id, with its nice value (field 19 of its stat)."""
    values: dict[int, int] = {}
    for task in Path("/proc/self/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except FileNotFoundError:  # the thread ended while we looked
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
        values[int(task.name)] = int(fields[16])
    return values


def test_nice_lowers_the_producers_priority_and_not_the_callers(raw_ring: int) -> None:
    caller = threading.get_native_id()
    own = os.getpriority(os.PRIO_PROCESS, caller)
    before = set(_thread_nice_values())
    # Paced slowly and without an end, so that the threads are alive while we look.
    run = ProducerDriver().start(
        _push_address(), raw_ring, threads=3, events_per_thread=0, interval_ns=10_000_000, nice=5
    )
    try:
        # The short-lived thread that started them may still be on its way out, with the
        # same lowered priority: look until only the 3 producers are new.
        deadline = time.monotonic() + 30
        while True:
            producers = {
                thread: nice
                for thread, nice in _thread_nice_values().items()
                if thread not in before
            }
            if len(producers) == 3 or time.monotonic() > deadline:
                break
            time.sleep(0.001)
    finally:
        run.stop()
        run.join()
        run.free()
    assert sorted(producers.values()) == [own + 5] * 3
    assert os.getpriority(os.PRIO_PROCESS, caller) == own


def test_a_negative_nice_is_refused() -> None:
    with pytest.raises(ValueError, match="nice must be >= 0"):
        ProducerDriver().start(0, None, threads=1, events_per_thread=1, nice=-1)


def test_a_ctrl_c_during_a_lowered_start_takes_its_producers_down(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The interrupt lands while the caller waits for the short-lived thread that
    starts the producers: the start finishes, and its run is stopped and freed."""
    real_join = threading.Thread.join
    interrupted: list[bool] = []

    def join_then_interrupt(self: threading.Thread, timeout: float | None = None) -> None:
        real_join(self, timeout)
        if not interrupted:
            interrupted.append(True)
            raise KeyboardInterrupt  # as if Ctrl-C landed just as the start ended

    monkeypatch.setattr(threading.Thread, "join", join_then_interrupt)
    abandoned: list[int] = []
    with pytest.raises(KeyboardInterrupt):
        _started_lowered(3, lambda: 42, abandoned.append)
    assert abandoned == [42]

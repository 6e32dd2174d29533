"""The native producer driver (C pthreads) that the benches and stress runs use, and
the C ring consumer that is the native hand-off's floor."""

from __future__ import annotations

import ctypes
from collections.abc import Iterator

import pytest

from lean_p2p.native.library import load_library
from lean_p2p.tools.native_producers import ProducerDriver, RingConsumer


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

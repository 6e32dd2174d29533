"""What the native tests share: a sink that keeps every event, the check that each
producer's accepted events arrived once and in order, and a loop kept busy in Python.
Loop thread, all of it (the producers are C pthreads)."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable

from lean_p2p.native import NativeEvent
from lean_p2p.tools.native_producers import ProducerRun, read_stamp


class Collector:
    """A sink that keeps every event (loop thread)."""

    def __init__(self) -> None:
        self.events: list[NativeEvent] = []

    def __call__(self, event: NativeEvent) -> bool:
        self.events.append(event)
        return True

    def sequences_by_producer(self) -> dict[int, list[int]]:
        by_producer: dict[int, list[int]] = defaultdict(list)
        for event in self.events:
            stamp = read_stamp(event.payload)
            by_producer[stamp.producer].append(stamp.sequence)
        return by_producer


def assert_exactly_once_in_order(collector: Collector, run: ProducerRun) -> None:
    """Every accepted event arrived once, and each producer's events in push order."""
    by_producer = collector.sequences_by_producer()
    assert set(by_producer) <= set(range(run.threads))
    for producer in range(run.threads):
        assert by_producer.get(producer, []) == list(range(run.accepted_by(producer)))


async def busy_python(until: Callable[[], bool]) -> None:
    """Keep the loop thread running Python (a few hundred µs per slice), yielding to
    the loop between slices, until ``until()`` holds (bounded: a hang fails)."""
    async with asyncio.timeout(30):
        while not until():
            sum(index * index for index in range(5_000))
            await asyncio.sleep(0)

"""Native producers for ``lean-p2p stress --native N``: C pthreads through the ring.

Threads: the producers are C pthreads (``bindings/testing``) pushing into a
:class:`NativeRing` without the GIL; the ring drains on the loop thread into the stress
run's mailbox; :meth:`NativeProducers.wait` blocks on a worker thread (the stress runner
calls it through ``asyncio.to_thread``).

Two paths from the ring to the mailbox:

- ``direct`` (the default): the one an embedder gets from ``mailbox_sink``: each
  drained batch goes into the lane of the first native producer in one C call
  (admission, take, decode, publish), as native events, beside the Python producers'
  items on that lane. Nothing is dropped: the drain takes no more than the lane has
  room for, so the ring fills and the producers retry on ``LEAN_P2P_FULL`` (counted as
  rejected retries). Before the run closes the mailbox under the producers, the ring
  is closed: the producers race that close, and every push it accepted is handled.
- ``feeder``: a Python sink ``put``s each event on its producer's lane as
  ``(producer_id, sequence)``; when a lane is full it holds the event and tells the
  ring to admit no more until it could hand it over. When the mailbox closes under it,
  it closes the ring.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from lean_p2p.native.records import NativeEvent
from lean_p2p.native.ring import NativeRing, mailbox_sink
from lean_p2p.runtime.mailbox import Mailbox, MailboxClosed
from lean_p2p.tools.native_producers import ProducerDriver, ProducerRun, read_stamp
from lean_p2p.tools.stress import ProducerOutcome

if TYPE_CHECKING:
    from lean_p2p.tools.stress import StressConfig

__all__ = ["NATIVE_PATHS", "NativeProducers"]

#: How the ring hands events to the mailbox (see the module docstring).
NATIVE_PATHS = ("direct", "feeder")

_RING_CAPACITY = 65_536
_UNLIMITED = 1 << 30
_FLUSH_RETRY_S = 0.0005


class _Feeder:
    """Ring sink and admission control (loop thread, except :meth:`expect`)."""

    def __init__(
        self,
        put: Callable[[str, object], bool],
        lane_for: Callable[[int], str],
        first_id: int,
        producers: int,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self._put = put
        self._lanes = [lane_for(first_id + index) for index in range(producers)]
        self._first_id = first_id
        self._loop = loop
        self._held: deque[tuple[str, tuple[int, int]]] = deque()
        self._flush_scheduled = False
        self.delivered = [0] * producers  # items put per producer (in order, so a count)
        self._delivered_total = 0
        self._expected: int | None = None
        self.closed = False
        self.finished = threading.Event()
        self.on_closed: Callable[[], None] | None = None

    def sink(self, event: NativeEvent) -> bool:
        if self.closed:
            return False  # the mailbox closed: not accepted, and counted by the ring
        stamp = read_stamp(event.payload)
        item = (self._first_id + stamp.producer, stamp.sequence)
        lane = self._lanes[stamp.producer]
        # Behind a held event, every later one waits too: per-producer order holds.
        if self._held or not self._hand_over(lane, item):
            self._held.append((lane, item))
            self._schedule_flush()
        return True

    def _schedule_flush(self) -> None:
        # The ring asks admit() only when it drains; once the producers are done it may
        # never drain again, so held events need their own retry.
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_later(_FLUSH_RETRY_S, self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self.admit() == 0:
            self._schedule_flush()

    def admit(self) -> int:
        while self._held:
            lane, item = self._held[0]
            if not self._hand_over(lane, item):
                return 0
            if not self._held:
                break  # the hand-over found the mailbox closed and dropped the backlog
            self._held.popleft()
        # Once closed, take everything: the sink discards it (the ring must empty).
        return _UNLIMITED

    def _hand_over(self, lane: str, item: tuple[int, int]) -> bool:
        try:
            accepted = self._put(lane, item)
        except MailboxClosed:
            self._close()
            return True  # nothing to hold any more
        if accepted:
            self.delivered[item[0] - self._first_id] += 1
            self._delivered_total += 1
            self._check_finished()
        return accepted

    def _close(self) -> None:
        if not self.closed:
            self.closed = True
            self._held.clear()
            if self.on_closed is not None:
                self.on_closed()
            self.finished.set()

    def expect(self, total: int) -> None:
        """Any thread: the producers accepted ``total`` events in all."""
        self._loop.call_soon_threadsafe(self._set_expected, total)

    def _set_expected(self, total: int) -> None:
        self._expected = total
        self._check_finished()

    def _check_finished(self) -> None:
        if self._expected is not None and self._delivered_total >= self._expected:
            self.finished.set()


class NativeProducers:
    """A stress producer group of ``count`` native pthreads (``ProducerGroup``)."""

    kind = "native"

    def __init__(
        self, count: int, *, driver: ProducerDriver | None = None, path: str = "direct"
    ) -> None:
        if path not in NATIVE_PATHS:
            raise ValueError(f"path must be one of {NATIVE_PATHS}, not {path!r}")
        self.count = count
        self.path = path
        self._driver = driver
        self._ring: NativeRing | None = None
        self._run: ProducerRun | None = None
        self._feeder: _Feeder | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._first_id = 0
        self._timeout_s = 600.0
        self._close_task: asyncio.Task[None] | None = None

    def start(
        self,
        mailbox: Mailbox,
        lane_for: Callable[[int], str],
        first_id: int,
        plan: Sequence[int],
        config: StressConfig,
    ) -> None:
        """On the loop thread: make the ring, then start the pthreads."""
        loop = asyncio.get_running_loop()
        driver = self._driver if self._driver is not None else ProducerDriver()
        if self.path == "direct":
            lane = lane_for(first_id)
            sink = mailbox_sink(mailbox, route=lambda _event: lane, route_by_header=True)
            ring = NativeRing(sink, loop=loop, capacity=_RING_CAPACITY)
        else:
            feeder = _Feeder(mailbox.put, lane_for, first_id, len(plan), loop)
            ring = NativeRing(feeder.sink, loop=loop, capacity=_RING_CAPACITY, admit=feeder.admit)
            # A closed mailbox closes the ring, so the producers see LEAN_P2P_ERR_CLOSED
            # and stop, as Python producers stop at MailboxClosed.
            feeder.on_closed = self._close_soon
            self._feeder = feeder
        self._loop, self._ring = loop, ring
        self._first_id = first_id
        self._timeout_s = config.timeout_s
        self._run = driver.start(
            ring.push_function_address,
            ring.address,
            threads=len(plan),
            events_per_thread=list(plan),
            retry_when_full=True,
        )

    async def aclose(self) -> None:
        """Loop thread, before the run closes the mailbox under the producers: on the
        direct path, close the ring now, which hands every push it accepted to the
        mailbox (the feeder closes the ring itself when it meets the closed mailbox)."""
        if self.path == "direct" and self._ring is not None:
            self._close_soon()
            assert self._close_task is not None
            await self._close_task

    def wait(self) -> list[ProducerOutcome]:
        """Off the loop thread: join the pthreads, wait until the mailbox has every
        event they pushed, then close and free the ring."""
        run, feeder, ring, loop = self._run, self._feeder, self._ring, self._loop
        if (
            run is None
            or ring is None
            or loop is None
            or (feeder is None) != (self.path == "direct")
        ):
            raise RuntimeError("wait() before start()")
        deadline = time.monotonic() + self._timeout_s
        timed_out = False
        while not run.done():
            if time.monotonic() > deadline:
                run.stop()  # e.g. the loop stopped draining: do not spin forever
                timed_out = True
                break
            time.sleep(0.01)
        totals = run.join()
        if feeder is None:
            handed_over = _wait_until_handed_over(ring, totals.accepted, deadline)
        else:
            feeder.expect(totals.accepted)
            handed_over = feeder.finished.wait(max(0.0, deadline - time.monotonic()))
        timed_out = timed_out or not handed_over
        asyncio.run_coroutine_threadsafe(self._close_ring(ring), loop).result()
        outcomes = []
        for index in range(run.threads):
            own = run.totals_of(index)
            outcomes.append(
                ProducerOutcome(
                    producer_id=self._first_id + index,
                    kind=self.kind,
                    # direct: the ring's OK, each of which must be handled; the feeder:
                    # what it put, which stops short when the mailbox closes under it
                    accepted=own.accepted if feeder is None else feeder.delivered[index],
                    rejected_retries=own.full,
                    stopped_early=timed_out
                    or own.closed > 0
                    or (feeder is not None and feeder.closed),
                )
            )
        run.free()
        return outcomes

    def _close_soon(self) -> None:
        # Loop thread (the feeder saw MailboxClosed).
        if self._close_task is None and self._ring is not None:
            self._close_task = asyncio.get_running_loop().create_task(
                self._ring.aclose(), name="native-ring-close"
            )

    async def _close_ring(self, ring: NativeRing) -> None:
        if self._close_task is not None:
            await self._close_task  # the close the mailbox's closing started
        await ring.aclose()
        ring.release()  # the producers were joined: nothing can touch it any more


def _wait_until_handed_over(ring: NativeRing, accepted: int, deadline: float) -> bool:
    """Any thread: wait until ``accepted`` pushes have left the ring for the mailbox (or
    were counted as not handed over, which the run then reports as lost); False at the
    deadline."""
    while True:
        statistics = ring.statistics()
        settled = statistics.delivered + statistics.sink_errors + statistics.sink_rejected
        if settled >= accepted:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.001)

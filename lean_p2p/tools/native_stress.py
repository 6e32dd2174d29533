"""Native producers for ``lean-p2p stress --native N``: C pthreads through the ring.

Threads: the producers are C pthreads (``bindings/testing``) pushing into a
:class:`NativeRing` without the GIL; the ring drains on the loop thread into a feeder
that ``put``s each event on the stress run's mailbox as ``(producer_id, sequence)``;
:meth:`NativeProducers.wait` blocks on a worker thread (the stress runner calls it
through ``asyncio.to_thread``).

The path under test is the one an embedder uses: native push, eventfd wakeup, batched
drain, mailbox lanes. Nothing is dropped: when a mailbox lane is full the feeder holds
the event and tells the ring to admit no more until it could hand it over, so the ring
fills and the producers retry on ``LEAN_P2P_FULL`` (counted as rejected retries).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from lean_p2p.native.records import NativeEvent
from lean_p2p.native.ring import NativeRing
from lean_p2p.runtime.mailbox import MailboxClosed
from lean_p2p.tools.native_producers import ProducerDriver, ProducerRun, read_stamp
from lean_p2p.tools.stress import ProducerOutcome

if TYPE_CHECKING:
    from lean_p2p.tools.stress import StressConfig

__all__ = ["NativeProducers"]

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

    def __init__(self, count: int, *, driver: ProducerDriver | None = None) -> None:
        self.count = count
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
        put: Callable[[str, object], bool],
        lane_for: Callable[[int], str],
        first_id: int,
        plan: Sequence[int],
        config: StressConfig,
    ) -> None:
        """On the loop thread: make the ring, then start the pthreads."""
        loop = asyncio.get_running_loop()
        driver = self._driver if self._driver is not None else ProducerDriver()
        feeder = _Feeder(put, lane_for, first_id, len(plan), loop)
        ring = NativeRing(feeder.sink, loop=loop, capacity=_RING_CAPACITY, admit=feeder.admit)
        # A closed mailbox closes the ring, so the producers see LEAN_P2P_ERR_CLOSED and
        # stop, as Python producers stop at MailboxClosed.
        feeder.on_closed = self._close_soon
        self._loop, self._feeder, self._ring = loop, feeder, ring
        self._first_id = first_id
        self._timeout_s = config.timeout_s
        self._run = driver.start(
            ring.push_function_address,
            ring.address,
            threads=len(plan),
            events_per_thread=list(plan),
            retry_when_full=True,
        )

    def wait(self) -> list[ProducerOutcome]:
        """Off the loop thread: join the pthreads, wait until the mailbox has every
        event they pushed, then close and free the ring."""
        run, feeder, ring, loop = self._run, self._feeder, self._ring, self._loop
        if run is None or feeder is None or ring is None or loop is None:
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
        feeder.expect(totals.accepted)
        remaining = max(0.0, deadline - time.monotonic())
        timed_out = not feeder.finished.wait(remaining) or timed_out
        asyncio.run_coroutine_threadsafe(self._close_ring(ring), loop).result()
        outcomes = []
        for index in range(run.threads):
            own = run.totals_of(index)
            outcomes.append(
                ProducerOutcome(
                    producer_id=self._first_id + index,
                    kind=self.kind,
                    accepted=feeder.delivered[index],
                    rejected_retries=own.full,
                    stopped_early=timed_out or feeder.closed or own.closed > 0,
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

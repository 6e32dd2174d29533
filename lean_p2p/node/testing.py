"""Test doubles for embedders: a fake network driver and a manual clock.

:class:`ManualClock` runs on the loop thread (it is the node's clock; callbacks fire
inside :meth:`ManualClock.advance`). :class:`FakeDriver` plays the driver's two sides:
the node calls :meth:`FakeDriver.start` / :meth:`FakeDriver.send` / :meth:`FakeDriver.stop`
on the loop thread, and a test injects events with :meth:`FakeDriver.inject` from any
thread, exactly as the real driver's trio thread would.

Example::

    clock = ManualClock(genesis_time)
    driver = FakeDriver()
    async with Node(config, driver=driver, clock=clock) as node:
        driver.inject(GossipBlock(peer_id="peer", message_id=b"...", block=signed_block))
        clock.advance(4.0)  # one slot: the node ticks its intervals
        await node.wait_idle()
        assert isinstance(driver.sent[-1], Publish)
"""

from __future__ import annotations

import heapq
import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from lean_p2p.net.commands import Command
from lean_p2p.net.events import DriverStarted, DriverStopped, Event

__all__ = ["FakeDriver", "FakeDriverNotStarted", "ManualClock"]


@dataclass(order=True)
class _Timer:
    when: float
    sequence: int
    callback: Callable[[], None] = field(compare=False)
    cancelled: bool = field(default=False, compare=False)

    def cancel(self) -> None:
        self.cancelled = True


class ManualClock:
    """A :class:`lean_p2p.node.clock.Clock` that moves only when told to."""

    def __init__(self, now: float = 0.0) -> None:
        self._now = now
        self._timers: list[_Timer] = []
        self._sequence = itertools.count()

    def now(self) -> float:
        return self._now

    def call_at(self, when: float, callback: Callable[[], None]) -> _Timer:
        timer = _Timer(when, next(self._sequence), callback)
        heapq.heappush(self._timers, timer)
        return timer

    def advance(self, seconds: float) -> int:
        """Move time forward, firing due callbacks in time order; returns how many fired.

        A callback that schedules another due callback sees it fire in the same call.
        """
        if seconds < 0:
            raise ValueError("time never moves backwards")
        target = self._now + seconds
        fired = 0
        while self._timers and self._timers[0].when <= target:
            timer = heapq.heappop(self._timers)
            if timer.cancelled:
                continue
            self._now = max(self._now, timer.when)
            timer.callback()
            fired += 1
        self._now = target
        return fired

    def set(self, now: float) -> int:
        """Jump to ``now`` (not earlier than the current time)."""
        return self.advance(now - self._now)

    @property
    def pending(self) -> int:
        return sum(1 for timer in self._timers if not timer.cancelled)


class FakeDriverNotStarted(RuntimeError):
    """An event was injected before the node started the driver (or after it stopped)."""


class FakeDriver:
    """A network driver without a network: records commands, injects events."""

    def __init__(self, peer_id: str = "16Uiu2FakeDriver", *, announce: bool = True) -> None:
        self.peer_id = peer_id
        self.sent: list[Command] = []
        self._emit: Callable[[Event], None] | None = None
        self._announce = announce
        self._lock = threading.Lock()  # guards only the fake's own command list
        self.started = False
        self.stopped = False

    def start(self, emit: Callable[[Event], None]) -> None:
        self._emit = emit
        self.started = True
        if self._announce:
            emit(DriverStarted(self.peer_id, ("/ip4/127.0.0.1/udp/0/quic-v1",)))

    def send(self, command: Command) -> None:
        with self._lock:
            self.sent.append(command)

    async def stop(self) -> None:
        emit, self._emit = self._emit, None
        self.stopped = True
        if emit is not None and self._announce:
            emit(DriverStopped("stopped"))

    def inject(self, event: Event) -> None:
        """Deliver ``event`` to the node as the driver thread would (any thread)."""
        emit = self._emit
        if emit is None:
            raise FakeDriverNotStarted("the node has not started this driver")
        emit(event)

    def take_sent(self) -> list[Command]:
        """The commands sent since the last call (and forget them)."""
        with self._lock:
            sent, self.sent = self.sent, []
        return sent

"""Clocks the node schedules its slot ticks and timers with. Loop thread.

The node never reads time inside a handler: a clock callback enqueues a control event
carrying ``now`` into the mailbox, and handlers take time from that event. That is what
makes a recording replayable: time is part of the recorded input.

:class:`SystemClock` is wall-clock time on the running loop; tests use
:class:`lean_p2p.node.testing.ManualClock`, which implements the same :class:`Clock`
protocol and only moves when told to.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Protocol

__all__ = ["Clock", "ScheduledCall", "SystemClock"]


class ScheduledCall(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    """Wall time in Unix seconds, and callbacks at a wall time (loop thread only)."""

    def now(self) -> float: ...

    def call_at(self, when: float, callback: Callable[[], None]) -> ScheduledCall: ...


class SystemClock:
    """Unix time, ``skew_s`` seconds ahead (behind, if negative): a node whose clock is
    off, for fault scenarios (``lean-p2p node --clock-skew``). Callbacks scheduled on the
    running loop's monotonic timer."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop | None = None, *, skew_s: float = 0.0
    ) -> None:
        self._loop = loop
        self.skew_s = skew_s

    def now(self) -> float:
        return time.time() + self.skew_s

    def call_at(self, when: float, callback: Callable[[], None]) -> ScheduledCall:
        loop = self._loop or asyncio.get_running_loop()
        # Convert through the delay, not the absolute value: the loop's clock is
        # monotonic and unrelated to Unix time.
        delay = max(0.0, when - self.now())
        return loop.call_at(loop.time() + delay, callback)

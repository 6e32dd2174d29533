"""Deadlines for one owner, backed by a single armed ``loop.call_at``.

Loop thread only. An actor (or a sans-IO core's shell) keeps many deadlines but never a
task or a ``call_at`` per deadline: a heap holds them, and exactly one ``call_at`` is
armed for the earliest. Scheduling something later than the armed deadline costs a heap
push; only an earlier deadline re-arms. Cancelling is lazy (the entry is marked and
skipped), with a compaction when cancelled entries dominate the heap, so cancel is O(1)
and memory stays proportional to the live timers.

A deadline never fires early: if the loop calls back a little before it (the loop's
clock resolution), the queue re-arms for the exact deadline instead.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from lean_p2p.runtime.affinity import LoopAffinity, loop_only

__all__ = ["Cancellable", "DeadlineTimer", "TimerHandle", "TimerQueue", "TimerStatistics"]

logger = logging.getLogger(__name__)

_COMPACT_MIN_CANCELLED = 64


class TimerHandle:
    """A scheduled message; :meth:`cancel` stops it from firing (loop thread)."""

    __slots__ = ("_queue", "cancelled", "deadline", "fired", "message")

    def __init__(self, queue: TimerQueue, deadline: float, message: object) -> None:
        self._queue = queue
        self.deadline = deadline
        self.message = message
        self.cancelled = False
        self.fired = False

    def cancel(self) -> bool:
        """Cancel; True if this call stopped it (False if already fired or cancelled)."""
        if self.cancelled or self.fired:
            return False
        self.cancelled = True
        self._queue._on_cancel()
        return True


@dataclass(frozen=True, slots=True)
class TimerStatistics:
    pending: int
    fired: int
    cancelled: int
    #: how many times a ``call_at`` was armed (re-arms only when the earliest changes)
    arms: int
    #: deliveries whose ``fire`` callback raised (logged; the other timers still fired)
    fire_errors: int


class TimerQueue:
    """Many deadlines, one armed ``call_at``; ``fire(message)`` runs on the loop thread."""

    def __init__(
        self, fire: Callable[[object], None], *, loop: asyncio.AbstractEventLoop | None = None
    ) -> None:
        self._loop = loop if loop is not None else asyncio.get_running_loop()
        self._fire = fire
        self._heap: list[tuple[float, int, TimerHandle]] = []
        self._sequence = itertools.count()
        self._armed: asyncio.TimerHandle | None = None
        self._armed_deadline = float("inf")
        self._pending = 0
        self._cancelled_in_heap = 0
        self._fired = 0
        self._cancelled = 0
        self._arms = 0
        self._fire_errors = 0
        self._closed = False
        self.affinity = LoopAffinity("TimerQueue", "Actor.send (then schedule on the loop)")

    @loop_only
    def schedule_after(self, delay: float, message: object) -> TimerHandle:
        """Fire ``message`` after ``delay`` seconds (>= 0)."""
        if delay < 0:
            raise ValueError(f"delay must be >= 0, not {delay}")
        return self.schedule_at(self._loop.time() + delay, message)

    @loop_only
    def schedule_at(self, deadline: float, message: object) -> TimerHandle:
        """Fire ``message`` at ``deadline`` (``loop.time()`` clock)."""
        if self._closed:
            raise RuntimeError("timer queue is closed")
        handle = TimerHandle(self, deadline, message)
        heapq.heappush(self._heap, (deadline, next(self._sequence), handle))
        self._pending += 1
        if deadline < self._armed_deadline:
            self._arm(deadline)
        return handle

    @loop_only
    def cancel_all(self) -> int:
        """Cancel every pending timer and disarm; returns how many were cancelled."""
        cancelled = sum(handle.cancel() for _, _, handle in self._heap)
        self._heap.clear()
        self._cancelled_in_heap = 0
        self._disarm()
        return cancelled

    @loop_only
    def close(self) -> int:
        """Cancel everything and refuse new timers; returns how many were cancelled."""
        self._closed = True
        return self.cancel_all()

    def next_deadline(self) -> float | None:
        self._drop_cancelled_head()
        return self._heap[0][0] if self._heap else None

    def statistics(self) -> TimerStatistics:
        return TimerStatistics(
            pending=self._pending,
            fired=self._fired,
            cancelled=self._cancelled,
            arms=self._arms,
            fire_errors=self._fire_errors,
        )

    def _on_cancel(self) -> None:
        self._pending -= 1
        self._cancelled += 1
        self._cancelled_in_heap += 1
        if self._cancelled_in_heap >= _COMPACT_MIN_CANCELLED and self._cancelled_in_heap * 2 > len(
            self._heap
        ):
            self._heap = [entry for entry in self._heap if not entry[2].cancelled]
            heapq.heapify(self._heap)
            self._cancelled_in_heap = 0
        # The armed call_at may now point at a cancelled entry; it will fire, find
        # nothing due and re-arm for the next live deadline. Cheaper than re-arming now.

    def _drop_cancelled_head(self) -> None:
        heap = self._heap
        while heap and heap[0][2].cancelled:
            heapq.heappop(heap)
            self._cancelled_in_heap -= 1

    def _arm(self, deadline: float) -> None:
        self._disarm()
        self._armed_deadline = deadline
        self._armed = self._loop.call_at(deadline, self._on_alarm)
        self._arms += 1

    def _disarm(self) -> None:
        if self._armed is not None:
            self._armed.cancel()
            self._armed = None
        self._armed_deadline = float("inf")

    def _on_alarm(self) -> None:
        self.affinity.check()
        self._armed = None
        self._armed_deadline = float("inf")
        now = self._loop.time()
        heap = self._heap
        # Collect first, then fire: a fired message may schedule new timers.
        due: list[TimerHandle] = []
        while heap and heap[0][0] <= now:
            handle = heapq.heappop(heap)[2]
            if handle.cancelled:
                self._cancelled_in_heap -= 1
                continue
            handle.fired = True
            self._pending -= 1
            self._fired += 1
            due.append(handle)
        try:
            for handle in due:
                try:
                    self._fire(handle.message)
                except Exception:
                    # Loud, counted, and the other due timers still fire.
                    self._fire_errors += 1
                    logger.exception(
                        "timer delivery failed", extra={"timer_message": repr(handle.message)[:200]}
                    )
        finally:
            upcoming = self.next_deadline()
            if upcoming is not None and upcoming < self._armed_deadline:
                self._arm(upcoming)


class Cancellable(Protocol):
    def cancel(self) -> object: ...


_Handle = TypeVar("_Handle", bound=Cancellable)


class DeadlineTimer(Generic[_Handle]):
    """The one armed timer of a sans-IO core's shell, at the core's next deadline.

    Loop thread only. ``schedule(deadline)`` arms the owner's timer (``loop.call_at``,
    a clock's ``call_at``, an actor's ``send_after``) and returns its handle.
    :meth:`arm` re-arms only when the deadline moved, so a core that reports the same
    deadline after every event costs nothing; :meth:`forget` is for the owner's expiry
    path (the handle fired and must not be cancelled, the next :meth:`arm` schedules
    anew).
    """

    __slots__ = ("_deadline", "_handle", "_schedule")

    def __init__(self, schedule: Callable[[float], _Handle]) -> None:
        self._schedule = schedule
        self._handle: _Handle | None = None
        self._deadline: float | None = None

    @property
    def handle(self) -> _Handle | None:
        return self._handle

    @property
    def deadline(self) -> float | None:
        return self._deadline

    def arm(self, deadline: float | None) -> None:
        """Keep exactly one timer, at ``deadline`` (None: no timer)."""
        if deadline == self._deadline:
            return
        self.cancel()
        self._deadline = deadline
        if deadline is not None:
            self._handle = self._schedule(deadline)

    def forget(self) -> None:
        """The armed timer fired: drop it without cancelling."""
        self._handle = None
        self._deadline = None

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self.forget()

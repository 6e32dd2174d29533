"""A janus-backed mailbox for producers that are allowed to block.

Threads: :meth:`BlockingMailbox.put` runs on any thread EXCEPT the loop thread (it
blocks while the mailbox is full); :meth:`BlockingMailbox.put_nowait` runs on any
thread; the consumer task, the handler and :meth:`BlockingMailbox.aclose` run on the
loop thread.

When to use which:

- :class:`~lean_p2p.runtime.mailbox.Mailbox` — every producer that must never block:
  network callbacks, native threads, the trio driver. Lock-free, one wakeup per drain
  cycle, bounded lanes that drop (and count) instead of waiting.
- :class:`BlockingMailbox` — a producer thread that may wait for room (backpressure),
  for example a file importer or a request/reply worker thread that must not lose an
  item. It takes a lock and notifies the loop for every put (janus), so it is several
  times slower than the mailbox (see ``docs/bench-bridge.md``) and its lanes are labels
  for statistics, served in arrival order (no priorities).

The producer interface matches :class:`~lean_p2p.runtime.mailbox.Mailbox`:
``put(lane, item) -> bool``, where False means the optional timeout expired (counted),
and :class:`~lean_p2p.runtime.mailbox.MailboxClosed` after close. The close contract
is the same: every put that returned True is handled before :meth:`aclose` returns
(janus's non-immediate shutdown refuses new puts, wakes blocked producers with an
error, and lets the consumer drain what was accepted).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import janus

from lean_p2p.runtime.affinity import LoopAffinity, WrongThreadError, loop_only
from lean_p2p.runtime.mailbox import (
    HandlerFailure,
    MailboxClosed,
    UnknownLaneError,
    _Counter,
    _log_handler_failure,
)

__all__ = ["BlockingMailbox", "BlockingMailboxStatistics"]


@dataclass(frozen=True, slots=True)
class BlockingMailboxStatistics:
    capacity: int
    depth: int
    accepted: dict[str, int]
    handled: dict[str, int]
    timed_out: dict[str, int]
    rejected_full: dict[str, int]
    handler_errors: int
    closed: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "capacity": self.capacity,
            "depth": self.depth,
            "accepted": self.accepted,
            "handled": self.handled,
            "timed_out": self.timed_out,
            "rejected_full": self.rejected_full,
            "handler_errors": self.handler_errors,
            "closed": self.closed,
        }


class BlockingMailbox:
    """A bounded FIFO of ``(lane, item)`` with blocking puts; construct on the loop thread.

    ``put_timeout`` is the default wait for room (None: wait forever).
    """

    def __init__(
        self,
        lanes: Sequence[str],
        handler: Callable[[str, object], None],
        *,
        capacity: int = 65_536,
        put_timeout: float | None = None,
        on_handler_error: Callable[[HandlerFailure], None] = _log_handler_failure,
    ) -> None:
        if not lanes or len(set(lanes)) != len(lanes):
            raise ValueError(f"lanes must be a non-empty list of unique names: {lanes}")
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, not {capacity}")
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._queue: janus.Queue[tuple[str, object]] = janus.Queue(maxsize=capacity)
        self._handler = handler
        self._on_handler_error = on_handler_error
        self._capacity = capacity
        self._put_timeout = put_timeout
        self._lanes = tuple(lanes)
        # Producer-side counters are bumped by many threads after put returns, so they
        # are lock-free atomic counters, as in the lock-free mailbox.
        self._accepted = {lane: _Counter() for lane in lanes}
        self._timed_out = {lane: _Counter() for lane in lanes}
        self._rejected_full = {lane: _Counter() for lane in lanes}
        self._handled = dict.fromkeys(lanes, 0)
        self._handler_errors = 0
        self._closed = False
        self.affinity = LoopAffinity("BlockingMailbox (consumer, aclose)", "BlockingMailbox.put")
        self.affinity.bind()
        self._consumer = self._loop.create_task(self._consume(), name="blocking-mailbox-consumer")

    def put(self, lane: str, item: object, timeout: float | None = None) -> bool:
        """Enqueue, waiting for room up to ``timeout`` (default: the mailbox's).

        True when accepted; False when the wait timed out (counted). Raises
        :class:`MailboxClosed` once closing has begun, and
        :class:`~lean_p2p.runtime.affinity.WrongThreadError` on the loop thread, where
        waiting would deadlock: use :meth:`put_nowait` there.
        """
        if threading.get_ident() == self._loop_thread:
            raise WrongThreadError(
                "BlockingMailbox.put would block the loop thread; use put_nowait there"
            )
        self._check_lane(lane)
        wait = self._put_timeout if timeout is None else timeout
        try:
            self._queue.sync_q.put((lane, item), timeout=wait)
        except janus.SyncQueueFull:
            self._timed_out[lane].increment()
            return False
        except janus.SyncQueueShutDown as error:
            raise MailboxClosed(f"mailbox is closed; {lane!r} item not accepted") from error
        self._accepted[lane].increment()
        return True

    def put_nowait(self, lane: str, item: object) -> bool:
        """Enqueue without waiting; False if full (counted). Any thread."""
        self._check_lane(lane)
        try:
            self._queue.sync_q.put_nowait((lane, item))
        except janus.SyncQueueFull:
            self._rejected_full[lane].increment()
            return False
        except janus.SyncQueueShutDown as error:
            raise MailboxClosed(f"mailbox is closed; {lane!r} item not accepted") from error
        self._accepted[lane].increment()
        return True

    def _check_lane(self, lane: str) -> None:
        if lane not in self._accepted:
            raise UnknownLaneError(f"no lane {lane!r}; lanes are {list(self._lanes)}")

    @property
    def closed(self) -> bool:
        return self._closed

    def statistics(self) -> BlockingMailboxStatistics:
        return BlockingMailboxStatistics(
            capacity=self._capacity,
            depth=self._queue.sync_q.qsize(),
            accepted={lane: counter.value for lane, counter in self._accepted.items()},
            handled=dict(self._handled),
            timed_out={lane: counter.value for lane, counter in self._timed_out.items()},
            rejected_full={lane: counter.value for lane, counter in self._rejected_full.items()},
            handler_errors=self._handler_errors,
            closed=self._closed,
        )

    async def _consume(self) -> None:
        queue = self._queue.async_q
        while True:
            try:
                lane, item = await queue.get()
            except janus.AsyncQueueShutDown:
                return
            self._handle(lane, item)
            # Take what is already there without a suspension per item.
            for _ in range(1_023):
                try:
                    lane, item = queue.get_nowait()
                except (janus.AsyncQueueEmpty, janus.AsyncQueueShutDown):
                    break
                self._handle(lane, item)

    def _handle(self, lane: str, item: object) -> None:
        self._handled[lane] += 1
        try:
            self._handler(lane, item)
        except Exception as error:
            self._handler_errors += 1
            try:
                self._on_handler_error(HandlerFailure(lane, item, error))
            except Exception:
                _log_handler_failure(HandlerFailure(lane, item, error))

    @loop_only
    async def aclose(self) -> None:
        """Refuse new puts (blocked producers get MailboxClosed), handle what was accepted."""
        self._closed = True
        self._queue.shutdown(immediate=False)
        await self._consumer
        await self._queue.wait_closed()

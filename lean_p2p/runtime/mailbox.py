"""The mailbox: a lock-free, bounded, multi-lane hand-off from any thread into one loop.

Threads: :meth:`Mailbox.put` runs on ANY thread (Python threads, threads entering
through ctypes, the loop thread itself) and never blocks. Everything else — the drain,
the handler, :meth:`Mailbox.aclose` — runs on the loop thread.

Algorithm (the ``xev.Async`` analogue)::

    put(lane, item)                  # any thread
        lane.append(item)            # 1. publish first (after the overflow policy)
        if idle_token.pop():         # 2. then test-and-set "armed"
            loop.call_soon_threadsafe(drain)

    drain()                          # loop thread
        idle_token.append()          # 3. clear "armed" BEFORE reading the lanes
        serve lanes in priority order, a quantum per lane per round, up to a budget
        if work remains and idle_token.pop():
            loop.call_soon(drain)    # 4. re-arm ourselves; I/O and timers run between
        (optionally re-armed for ``linger_s`` after a batch: passes, no syscall)

A yielding sender (``sender(lane, yield_to_loop_s=...)``) is the same two steps; only
after them, outside the close bracket below (where there is one), the put that won the
test-and-set waits (the GIL released, bounded) until a drain has ended. The wait
changes nothing above: the item is published and the drain scheduled before it begins.

``put_many(lane, items)`` is the same two steps for a whole batch: every item is
published (one ``deque.extend``) before the single test-and-set, so the argument below
holds for each item of the batch exactly as for an item put alone.

A put on the loop's own thread (the native ring's drain) that wins the test-and-set
schedules the drain with ``call_soon`` instead: the loop is awake, so it needs no
self-wakeup. Only the primitive changes; the order of the steps, and so the argument
below, does not. The native ring's drain publishes a routed batch to several lanes
with one C call (:meth:`Mailbox.lanes_publisher`): every lane's items first, then one
test-and-set, the same two steps again.

"Armed" is the absence of a single token in a one-slot list. ``list.pop`` and
``list.append`` are atomic (under the GIL, and under free-threaded CPython's per-object
locks), so exactly one producer wins the test-and-set per drain cycle: one
``call_soon_threadsafe`` per cycle, never one per event, and never two drains pending.

Why no wakeup is lost. Invariant: the token is absent exactly while one drain is
scheduled that has not yet executed step 3. Take any item a producer publishes at step
1. That producer then tests the token at step 2:

- token present: it takes it and schedules a drain itself; that drain's step 3 and its
  reading of the lanes happen after the publish, so it sees the item;
- token absent: by the invariant a drain is scheduled whose step 3 has not run yet; its
  step 3 — and therefore its reading of the lanes — comes after the publish, so it sees
  the item.

"Sees" means the item is served by that drain or, if the budget runs out first, the
drain finds work remaining and re-arms (step 4), so a later drain serves it. Reverse
either order and the argument breaks: testing the token before publishing lets a drain
scheduled earlier run its step 3 and read empty lanes in between (the item is stranded
until some unrelated put); clearing the token after reading the lanes lets a producer
find the token absent, skip the wakeup, and publish after that drain read the lanes.
``tests/runtime/test_lost_wakeup.py`` widens both windows and shows the right order
holds and both wrong orders strand events.

Close contract. A put that starts after :meth:`Mailbox.aclose` began raises
:class:`MailboxClosed`. Every put that returned normally has its item handled (or,
for an evicting lane, evicted and counted) before ``aclose`` returns. ``aclose`` sets
the closed flag, waits until no put is between its closed test and its publish, then
drains to empty; every item published before the flag was set is in a lane by then.
There are two ways a put keeps its test and its publish together:

- atomic (a sender's put, where the C extension ``lean_p2p.runtime._publish`` is built
  and CPython has a GIL): the closed test, the capacity test and the append run in C
  with no Python code between them and the GIL never let go, so no other thread runs
  between them. Either the flag was unset and the item is in the lane before ``aclose``
  sets it, or the put raises having published nothing. Nothing is in flight for
  ``aclose`` to wait for. Its test-and-set (step 2) may come after ``aclose`` has
  finished, the item already handled; if the loop is closed by then, the put returns
  True (it was handled) instead of raising. A sender that does not yield is the whole
  put in one C call (``Publisher.send``): the publish, the lane's policy if it was
  full (Python, after a publish that appended nothing, as in the Python put), then the
  idle token's pre-check and the test-and-set (Python), in that order.
- bracketed (``put_wait``, ``put_many``, the race-hook sender, and every put where the
  extension is not built): two lock-free counters, entered and left, around the test,
  the publish and the test-and-set; ``aclose`` waits until they are equal (reading
  "left" first: if equal, no put was inside at that moment).

The bracket costs as much as the rest of a put: on one thread a sender's put took
94-99 ns atomic and 203-211 ns bracketed; the whole put in one C call took about
two thirds of the atomic Python put's time (docs/runtime.md).

A handler that raises is counted, reported with its lane and item to
``on_handler_error`` (default: logged), and the drain continues with the next item; a
node makes handler errors fatal by passing a callback that starts its shutdown. Close
the mailbox before its loop: once the loop is closed, a put that has to wake it raises
:class:`MailboxClosed`, but a put that finds a drain already pending cannot tell that
the drain will never run.

When to use which: this mailbox for every producer that must never block — network
callbacks, native threads, the trio driver. :class:`lean_p2p.runtime.blocking.BlockingMailbox`
(janus) for a producer that is allowed to block and wants backpressure instead of drops.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import itertools
import logging
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import repeat, starmap
from typing import TYPE_CHECKING, Any

from lean_p2p.runtime.affinity import LoopAffinity, WrongThreadError, loop_only

if TYPE_CHECKING:
    from lean_p2p.runtime._publish import LanesPublisher, Publisher

#: ``serve(pop, limit, handler, name) -> (served, item, error)``: lean_p2p.runtime._publish
ServeFunction = Callable[
    [Callable[[], object], int, Callable[[str, object], None], str],
    tuple[int, object, BaseException | None],
]

__all__ = [
    "ATOMIC_PUBLISH_AVAILABLE",
    "DEFAULT_BUDGET",
    "DEFAULT_LINGER_S",
    "DEFAULT_TIME_BUDGET_S",
    "DEFAULT_YIELD_TO_LOOP_S",
    "LINGER_MIN_BATCH",
    "HandlerFailure",
    "LaneSpec",
    "LaneStatistics",
    "Mailbox",
    "MailboxClosed",
    "MailboxStatistics",
    "OverflowPolicy",
    "UnknownLaneError",
]

logger = logging.getLogger(__name__)

#: Items one drain serves before it yields back to the loop (step 4 above).
DEFAULT_BUDGET = 1024
#: How long one drain runs before it yields back to the loop, checked after each lane's
#: quantum: a slow handler (milliseconds an item) would otherwise hold timers and I/O
#: for a whole item budget, seconds. At under 2 us an item a full budget takes under
#: 2 ms, so it costs fast handlers nothing.
DEFAULT_TIME_BUDGET_S = 0.005
#: The clock of the time budget (a name of its own so tests can drive it).
_drain_clock = time.perf_counter
#: How long a drain stays armed (call_soon passes) after a batch (see _should_linger). Off
#: by default: on CPython the polling loop thread holds the GIL that producers need, which
#: cost more CPU and a worse latency tail than the wakeups it saved (docs/runtime.md).
DEFAULT_LINGER_S = 0.0
#: A drain that served at least this many items counts as a batch and starts a linger.
LINGER_MIN_BATCH = 4
#: A lane holding at least this many items has its round's share popped at once; with
#: fewer, items are popped and handled one at a time, which measured a shorter latency
#: tail at low rates (docs/runtime.md, "Close contract").
_BATCH_POP_MIN = 32
#: How long a producer that woke the loop through a yielding sender (``sender(lane,
#: yield_to_loop_s=...)``) waits for the drain it scheduled, at most. Measured in
#: docs/latency.md: it took the driver's hand-off tail from milliseconds to under one.
DEFAULT_YIELD_TO_LOOP_S = 0.0005
#: Free-threaded CPython has no GIL to hand over: yielding senders do not wait there.
_GIL_ENABLED: bool = getattr(sys, "_is_gil_enabled", lambda: True)()


def _publisher_class() -> type[Publisher] | None:
    """The C publish step (``bindings/lean_p2p_publish.c``), where it is built and a GIL
    makes one C call atomic; else None, and puts bracket their publish instead."""
    if not _GIL_ENABLED:
        return None
    try:
        from lean_p2p.runtime._publish import Publisher
    except ImportError:  # not built: no C compiler at install time
        return None
    return Publisher


def _lanes_publisher_class() -> type[LanesPublisher] | None:
    """The C publish step of a routed batch, where :func:`_publisher_class` has one."""
    if _publisher_class() is None:
        return None
    from lean_p2p.runtime._publish import LanesPublisher

    return LanesPublisher


def serve_in_python(
    pop: Callable[[], object], limit: int, handler: Callable[[str, object], None], name: str
) -> tuple[int, object, BaseException | None]:
    """Loop thread: up to ``limit`` times, ``pop()`` an item and call ``handler(name,
    item)``; stop where the lane runs empty (IndexError) or the handler raises. Returns
    (served, the item whose handler raised, its exception) or (served, None, None);
    served counts the item that raised. ``_publish.serve`` is the same loop in C."""
    served = 0
    while served < limit:
        try:
            item = pop()
        except IndexError:  # emptied (an evicting producer shed the last item)
            break
        served += 1
        try:
            handler(name, item)
        except BaseException as error:  # handed back: the caller reports or re-raises
            return served, item, error
    return served, None, None


def _serve_function() -> ServeFunction:
    """The serving of a few items: ``_publish.serve`` where :func:`_publisher_class` has
    its extension, else :func:`serve_in_python`. Not the extension on a free-threaded
    CPython either: importing it there would turn the GIL back on."""
    if _publisher_class() is None:
        return serve_in_python
    from lean_p2p.runtime._publish import serve

    return serve


_PUBLISHER = _publisher_class()
_LANES_PUBLISHER = _lanes_publisher_class()
_SERVE = _serve_function()
#: Whether :class:`Mailbox` puts publish through one C call by default (see its docs).
ATOMIC_PUBLISH_AVAILABLE = _PUBLISHER is not None


class MailboxClosed(RuntimeError):
    """``put`` was called after the mailbox began closing; the item was not accepted."""


class UnknownLaneError(ValueError):
    """``put`` named a lane the mailbox does not have."""


class OverflowPolicy(enum.Enum):
    """What a full lane does with one more item, and the order it is served in."""

    #: FIFO; a full lane rejects the new item (``put`` returns False, counted "full").
    REJECT_NEWEST = "reject_newest"
    #: LIFO (freshest first); a full lane evicts its oldest item (counted "evicted").
    EVICT_OLDEST = "evict_oldest"
    #: FIFO; never drops (control lane: stop, ticks, timers). Capacity is advisory:
    #: puts past it are accepted, counted (``over_capacity``) and warned about once, since
    #: the lane's memory is then unbounded. Only the runtime's own low-rate messages
    #: should use it; a producer that must not lose an item and may wait uses a bounded
    #: lane with :meth:`Mailbox.put_wait` (backpressure) instead.
    NEVER_DROP = "never_drop"


@dataclass(frozen=True, slots=True)
class LaneSpec:
    """One lane: its name, bound, overflow policy and per-round quantum."""

    name: str
    capacity: int
    policy: OverflowPolicy
    quantum: int

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("lane name must not be empty")
        if self.capacity < 1:
            raise ValueError(f"lane {self.name!r}: capacity must be >= 1, not {self.capacity}")
        if self.quantum < 1:
            raise ValueError(f"lane {self.name!r}: quantum must be >= 1, not {self.quantum}")


@dataclass(frozen=True, slots=True)
class HandlerFailure:
    """A handler raised while handling ``item`` from ``lane``."""

    lane: str
    item: object
    error: Exception


@dataclass(frozen=True, slots=True)
class LaneStatistics:
    name: str
    policy: OverflowPolicy
    capacity: int
    quantum: int
    depth: int
    #: Highest depth seen, sampled by the loop whenever a drain starts serving the lane
    #: and by ``statistics()``: a peak reached and drained within one drain is missed.
    high_water: int
    accepted: int
    handled: int
    rejected_full: int
    evicted: int
    handler_errors: int
    handling_time_s: float
    #: ``never_drop`` lanes: puts accepted while the lane already held its capacity
    over_capacity: int = 0

    @property
    def dropped(self) -> int:
        return self.rejected_full + self.evicted

    def drops_by_reason(self) -> dict[str, int]:
        return {"full": self.rejected_full, "evicted": self.evicted}

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "policy": self.policy.value,
            "capacity": self.capacity,
            "quantum": self.quantum,
            "depth": self.depth,
            "high_water": self.high_water,
            "accepted": self.accepted,
            "handled": self.handled,
            "dropped": self.drops_by_reason(),
            "handler_errors": self.handler_errors,
            "handling_time_s": self.handling_time_s,
            "over_capacity": self.over_capacity,
        }


@dataclass(frozen=True, slots=True)
class MailboxStatistics:
    lanes: tuple[LaneStatistics, ...]
    #: drain callbacks run on the loop
    drains: int
    #: ``call_soon_threadsafe`` calls made by producers (at most one per drain cycle)
    wakeups: int
    #: drains that stopped at the budget (items or time) with work left and re-armed
    #: with ``call_soon``
    budget_exhausted: int
    closed: bool

    @property
    def accepted(self) -> int:
        return sum(lane.accepted for lane in self.lanes)

    @property
    def handled(self) -> int:
        return sum(lane.handled for lane in self.lanes)

    @property
    def dropped(self) -> int:
        return sum(lane.dropped for lane in self.lanes)

    @property
    def depth(self) -> int:
        return sum(lane.depth for lane in self.lanes)

    @property
    def handler_errors(self) -> int:
        return sum(lane.handler_errors for lane in self.lanes)

    @property
    def handling_time_s(self) -> float:
        return sum(lane.handling_time_s for lane in self.lanes)

    def lane(self, name: str) -> LaneStatistics:
        for lane in self.lanes:
            if lane.name == name:
                return lane
        raise UnknownLaneError(name)

    def as_dict(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "handled": self.handled,
            "dropped": self.dropped,
            "depth": self.depth,
            "drains": self.drains,
            "wakeups": self.wakeups,
            "budget_exhausted": self.budget_exhausted,
            "handler_errors": self.handler_errors,
            "handling_time_s": self.handling_time_s,
            "closed": self.closed,
            "lanes": [lane.as_dict() for lane in self.lanes],
        }


class _Counter:
    """A counter any thread may increment without a lock.

    ``next()`` on an ``itertools.count`` is a single C call, so concurrent increments
    are never lost (``x += 1`` on an attribute can be). Its ``repr`` reads the current
    value without incrementing.
    """

    __slots__ = ("_count", "increment")

    def __init__(self) -> None:
        self._count = itertools.count()
        self.increment: Callable[[], object] = self._count.__next__

    def add(self, amount: int) -> None:
        """Increment ``amount`` times in one C loop (each step as atomic as ``next``)."""
        deque(itertools.islice(self._count, amount), maxlen=0)

    @property
    def value(self) -> int:
        return int(repr(self._count)[len("count(") : -1])


class _Lane:
    """A lane's queue and counters. ``make_room`` runs on any thread; the rest on the loop.

    Accepted items are not counted on the hot path: every accepted item is handled,
    still queued or evicted, so ``accepted = handled + depth + evicted`` (exact once
    producers are quiet; a snapshot under load may be off by the puts in flight).
    """

    __slots__ = (
        "_evict",
        "_over_capacity",
        "_reject_full",
        "_warnings",
        "capacity",
        "handled",
        "handler_errors",
        "handling_time_s",
        "high_water",
        "items",
        "name",
        "serve_one",
        "spec",
    )

    def __init__(self, spec: LaneSpec) -> None:
        self.spec = spec
        self.name = spec.name
        self.capacity = spec.capacity
        self.items: deque[object] = deque()
        # FIFO lanes serve the oldest item; evicting lanes serve the freshest (LIFO) and
        # shed from the old end, so a producer's eviction and the loop's pop never
        # contend for the same end when the lane holds more than one item.
        self.serve_one = (
            self.items.pop if spec.policy is OverflowPolicy.EVICT_OLDEST else self.items.popleft
        )
        self._reject_full = _Counter()
        self._evict = _Counter()
        self.high_water = 0
        self._over_capacity = _Counter()
        # next() is atomic: exactly one producer sees 0 and warns, however many race.
        self._warnings = itertools.count()
        # Loop-thread-only counters: plain ints are exact there.
        self.handled = 0
        self.handler_errors = 0
        self.handling_time_s = 0.0

    def take(self, limit: int) -> list[object]:
        """Loop thread: pop up to ``limit`` items in serving order, as one list.

        A FIFO lane's producers only append, so its length is a lower bound on what the
        loop can pop, and that many pops run as one C loop (``starmap``), about 12 ns
        per item against about 38 for a Python loop. On an evicting lane producers pop
        too (they shed the oldest), so each pop may find the lane empty.
        """
        if self.spec.policy is not OverflowPolicy.EVICT_OLDEST:
            return list(starmap(self.serve_one, repeat((), min(limit, len(self.items)))))
        taken: list[object] = []
        serve_one = self.serve_one
        for _ in range(limit):
            try:
                taken.append(serve_one())
            except IndexError:  # emptied (an evicting producer shed the last item)
                break
        return taken

    def give_back(self, items: list[object]) -> None:
        """Loop thread: return items :meth:`take` took but nobody handled, to the end
        they would be served from next, in their order (only when a BaseException
        such as KeyboardInterrupt leaves a drain early: no accepted item is lost)."""
        if self.spec.policy is OverflowPolicy.EVICT_OLDEST:
            self.items.extend(reversed(items))  # served from the right, freshest first
        else:
            self.items.extendleft(reversed(items))

    def make_room(self) -> bool:
        """The lane looked full to a producer: apply the policy; True if it may append.

        The length check and the append are two steps, so concurrent producers may
        overshoot the capacity by at most (number of producers - 1) items: memory stays
        bounded, and no lock is taken.
        """
        policy = self.spec.policy
        if policy is OverflowPolicy.REJECT_NEWEST:
            self._reject_full.increment()
            return False
        if policy is OverflowPolicy.EVICT_OLDEST:
            try:
                self.items.popleft()
            except IndexError:  # the loop emptied the lane meanwhile: nothing to shed
                pass
            else:
                self._evict.increment()
            return True
        # NEVER_DROP: accepted past the capacity. Count it, and say so once: the lane's
        # memory is unbounded from here on.
        self._over_capacity.increment()
        if next(self._warnings) == 0:
            logger.warning(
                "never_drop lane %r holds %d items, past its capacity %d: it never refuses, "
                "so its memory is unbounded; route high-rate traffic to a bounded lane, and "
                "use Mailbox.put_wait where a producer must not lose items (every put past "
                "the capacity is counted as over_capacity)",
                self.name,
                len(self.items),
                self.capacity,
                extra={"lane": self.name, "capacity": self.capacity},
            )
        return True

    def reject(self, count: int) -> None:
        """Count ``count`` items a full ``reject_newest`` lane turned away (any thread)."""
        self._reject_full.add(count)

    def shed_excess(self) -> None:
        """Evict the oldest items beyond the capacity (any thread; ``evict_oldest``).

        Sheds from the old end, as :meth:`make_room` does, so the result is the one the
        same items put one by one would leave.
        """
        items = self.items
        while len(items) > self.capacity:
            try:
                items.popleft()
            except IndexError:  # the loop emptied the lane meanwhile
                return
            self._evict.increment()

    def statistics(self) -> LaneStatistics:
        spec = self.spec
        depth = len(self.items)
        evicted = self._evict.value
        return LaneStatistics(
            name=spec.name,
            policy=spec.policy,
            capacity=spec.capacity,
            quantum=spec.quantum,
            depth=depth,
            high_water=max(self.high_water, depth),
            accepted=self.handled + depth + evicted,
            handled=self.handled,
            rejected_full=self._reject_full.value,
            evicted=evicted,
            handler_errors=self.handler_errors,
            handling_time_s=self.handling_time_s,
            over_capacity=self._over_capacity.value,
        )


#: Called between publishing and testing the flag in ``put`` with ``"published"``, and
#: between clearing the flag and reading the lanes in the drain with ``"cleared"``.
#: Tests use it to widen the race windows; production leaves it None.
RaceHook = Callable[[str], None]


def _log_handler_failure(failure: HandlerFailure) -> None:
    logger.error(
        "mailbox handler failed",
        exc_info=failure.error,
        extra={"lane": failure.lane, "item": repr(failure.item)[:200]},
    )


class Mailbox:
    """Bounded lanes drained on one loop thread; ``put`` from any thread.

    ``lanes`` are in priority order (first = served first each round). ``handler`` is
    called on the loop thread as ``handler(lane_name, item)`` for every accepted item;
    a handler that has a ``handle_many(lane_name, items)`` method is instead handed each
    lane's share of a drain round (at most the lane's quantum) as one list, in serving
    order. A batch handler deals with its items' errors itself: if it raises, the
    failure (counted once, reported with the whole list as its item) ends only that
    batch, whose items count as handled.
    ``loop`` defaults to the running loop (so construct on the loop thread, or pass it).
    ``budget`` caps the items one drain handles before yielding to the loop, and
    ``time_budget_s`` the time it runs: a drain that has run that long when a lane's
    quantum ends yields too, so a slow handler delays timers and I/O by at most one
    quantum past it, not by a whole budget.
    ``linger_s`` is how long the drain stays armed after a batch (at least
    ``LINGER_MIN_BATCH`` items), polling with cheap ``call_soon`` passes (0 = go idle at
    once): fewer threadsafe wakeups at high rates, for the price of that much loop time
    per batch; at low rates batches are small and the loop never polls.
    ``atomic_publish`` makes a sender's closed test, capacity test and append one C
    call, atomic under the GIL, in place of a bracket of two in-flight counters around
    them: about half the cost of a put (module docstring, "Close contract"). None (the
    default) uses it where the C extension is built and CPython has a GIL
    (``ATOMIC_PUBLISH_AVAILABLE``); True requires it (ValueError where it cannot be
    had); False keeps the bracket, to compare the two.
    """

    def __init__(
        self,
        lanes: Sequence[LaneSpec],
        handler: Callable[[str, object], None],
        *,
        loop: asyncio.AbstractEventLoop | None = None,
        budget: int = DEFAULT_BUDGET,
        time_budget_s: float = DEFAULT_TIME_BUDGET_S,
        on_handler_error: Callable[[HandlerFailure], None] = _log_handler_failure,
        race_hook: RaceHook | None = None,
        linger_s: float = DEFAULT_LINGER_S,
        atomic_publish: bool | None = None,
    ) -> None:
        if not lanes:
            raise ValueError("a mailbox needs at least one lane")
        names = [spec.name for spec in lanes]
        if len(set(names)) != len(names):
            raise ValueError(f"lane names must be unique: {names}")
        if budget < 1:
            raise ValueError(f"budget must be >= 1, not {budget}")
        if not time_budget_s > 0:
            raise ValueError(f"time_budget_s must be > 0, not {time_budget_s}")
        if linger_s < 0:
            raise ValueError(f"linger_s must be >= 0, not {linger_s}")
        if atomic_publish and _PUBLISHER is None:
            raise ValueError(
                "atomic_publish needs the C extension lean_p2p.runtime._publish (not built: "
                "reinstall with a C compiler) and a GIL"
            )
        self._publisher = _PUBLISHER if atomic_publish is not False else None
        self._loop = loop if loop is not None else asyncio.get_running_loop()
        self._handler = handler
        # A handler with handle_many(lane, items) takes each lane's share of a round
        # as one list: no Python call per item between the lane and the handler.
        self._handle_many: Callable[[str, list[object]], None] | None = getattr(
            handler, "handle_many", None
        )
        self._on_handler_error = on_handler_error
        self._budget = budget
        self._time_budget_s = time_budget_s
        #: set by _serve when the time budget, not the item budget or empty lanes, ended it
        self._out_of_time = False
        self._lanes = tuple(_Lane(spec) for spec in lanes)
        self._lanes_by_name = {lane.name: lane for lane in self._lanes}
        # One token present = idle (not armed). See the module docstring.
        self._idle_token: list[None] = [None]
        self._wakeups = _Counter()
        self._puts_entered_counter = _Counter()
        self._puts_left_counter = _Counter()
        # Bound increments: one C call each on the hot path.
        self._puts_entered = self._puts_entered_counter.increment
        self._puts_left = self._puts_left_counter.increment
        self._closed = False
        #: [True] from the moment closing begins (what the senders test; see _make_sender)
        self._closed_flag: list[bool] = []
        self._close_finished = False
        self._drains = 0
        self._budget_exhausted = 0
        self._race_hook = race_hook
        self._linger_s = linger_s
        self._last_batch = float("-inf")
        self.affinity = LoopAffinity("Mailbox (drain, aclose)", "Mailbox.put")
        # Yielding senders: cleared by one that wakes the loop, set when a drain ends.
        self._drained = threading.Event()
        self._drained.set()
        #: whether a yielding sender exists: only then does a drain's end set _drained
        self._yielding_senders = False
        #: [None] while a drain a caller_drains lanes publisher armed is owed
        self._drain_owed: list[None] = []
        self._senders = {lane.name: self._make_sender(lane) for lane in self._lanes}
        # put_wait's backpressure: producers that found their lane full wait on _room
        # for the next drain. The lock guards only this waiting, never a lane or any
        # loop-owned state; the loop takes it only when someone waits.
        self._room = threading.Condition(threading.Lock())
        self._room_waiters = 0
        self._drain_generation = 0

    # -- any thread -------------------------------------------------------------------

    def put(self, lane: str, item: object) -> bool:
        """Enqueue ``item`` on ``lane``; any thread, never blocks.

        Returns True if accepted (it will be handled, or on an evicting lane possibly
        evicted later and counted), False if the lane was full and rejected it (counted).
        Raises :class:`MailboxClosed` once closing has begun, :class:`UnknownLaneError`
        for a lane the mailbox does not have. A producer that puts on one lane again
        and again saves the lane lookup with :meth:`sender`.
        """
        send = self._senders.get(lane)
        if send is None:
            raise self._unknown_lane(lane)
        return send(item)

    def sender(self, lane: str, *, yield_to_loop_s: float = 0.0) -> Callable[[object], bool]:
        """``put`` bound to ``lane`` (any thread): ``sender(lane)(item)`` does what
        ``put(lane, item)`` does, without looking the lane up on every call. Raises
        :class:`UnknownLaneError` for a lane the mailbox does not have.

        ``yield_to_loop_s`` > 0 makes a *yielding* sender, for a producer thread that
        goes on running Python after it hands an event over (a network driver): a put
        that wakes the loop (the first after a drain) then waits, the GIL released,
        until the drain it scheduled has ended, or at most that long. Without it the
        loop can wait milliseconds for the GIL: such a producer releases the GIL around
        each system call and takes it straight back, before the woken loop thread gets
        to it, and every release restarts the loop's switch-interval timer, so the
        interpreter never forces the hand-over (measured in docs/latency.md). Only the
        put that woke the loop waits, never one on the loop's own thread, never inside
        the put's close bracket, and not on free-threaded CPython. DEFAULT_YIELD_TO_LOOP_S
        is the measured choice.
        """
        if yield_to_loop_s < 0:
            raise ValueError(f"yield_to_loop_s must be >= 0, not {yield_to_loop_s}")
        send = self._senders.get(lane)
        if send is None:
            raise self._unknown_lane(lane)
        if yield_to_loop_s and _GIL_ENABLED:
            self._yielding_senders = True  # before the sender exists, so before its puts
            return self._make_sender(self._lanes_by_name[lane], yield_to_loop_s)
        return send

    def _make_sender(self, target: _Lane, wait_s: float = 0.0) -> Callable[[object], bool]:
        """The put of one lane, with everything it reads bound once in a closure; with
        ``wait_s``, a yielding sender (see :meth:`sender`).

        The hot path of every producer: each name below is a local or a cell, not an
        attribute lookup, which is where a third of a put's time went. The closed
        flag is read through ``self._closed_flag``, a list that is empty until
        closing begins (a cell read and a truth test, no attribute lookup)."""
        if self._race_hook is not None:
            return self._make_hooked_sender(target, self._race_hook, wait_s)
        if self._publisher is not None:
            return self._make_atomic_sender(target, self._publisher, wait_s)
        name = target.name
        items = target.items
        append = items.append
        capacity = target.capacity
        make_room = target.make_room
        closed = self._closed_flag
        idle_token = self._idle_token
        # True only from a yielding sender's arm that woke the loop from another thread
        arm: Callable[[], bool | None] = (
            self._arm_and_expect_drain if wait_s else self._arm_from_producer
        )
        wait_for_drain = self._drained.wait
        entered = self._puts_entered
        left = self._puts_left

        def send(item: object) -> bool:
            # Entered/left bracket the put so aclose can wait until no put is between
            # its closed-check and its publish; otherwise a put could pass the check,
            # close could finish, and the item would be published after the final
            # drain.
            entered()
            try:
                if closed:
                    raise MailboxClosed(f"mailbox is closed; {name!r} item not accepted")
                if len(items) >= capacity and not make_room():
                    return False  # rejected and counted; the queued items have a drain
                append(item)  # 1. publish first ...
                # cheap pre-check; the pop in arm is the test-and-set (2. ... then arm)
                if not idle_token or not arm():
                    return True
            finally:
                left()
            # A yielding put woke the loop. Outside the bracket, so aclose never waits
            # for this: let the loop thread take the GIL and drain, instead of racing it.
            wait_for_drain(wait_s)
            return True

        return send

    def _make_atomic_sender(
        self, target: _Lane, publisher_class: type[Publisher], wait_s: float
    ) -> Callable[[object], bool]:
        """:meth:`_make_sender` with the publish step in C: the closed test, the
        capacity test and the append are one call that runs no Python code and keeps
        the GIL, so no other thread (``aclose`` included) runs between them, and the
        put needs no in-flight bracket (module docstring, "Close contract")."""
        make_room = target.make_room
        idle_token = self._idle_token
        publisher = publisher_class(
            target.items,
            target.capacity,
            self._closed_flag,
            MailboxClosed,
            target.name,
            make_room=make_room,
            idle_token=idle_token,
            arm=self._arm_from_producer,
        )
        if not wait_s:
            # The whole put in C: the publish step, the policy when full, the pre-check
            # and the test-and-set's call, in the order of the Python one below. About
            # two thirds of the time of a Python function making the same calls.
            return publisher.send
        publish = publisher.put  # False: the lane is full, nothing appended
        force = publisher.force  # the overflow policy made room, or allows the item
        arm = self._arm_and_expect_drain
        wait_for_drain = self._drained.wait

        def send_and_yield(item: object) -> bool:
            if not publish(item) and not (make_room() and force(item)):
                return False  # rejected and counted; the queued items have a drain
            # 1. published ... (2. then the cheap pre-check and the test-and-set)
            if not idle_token or not arm():
                return True
            wait_for_drain(wait_s)  # a yielding put woke the loop: let it drain
            return True

        return send_and_yield

    def _arm_and_expect_drain(self) -> bool:
        """:meth:`_arm_from_producer` for a yielding sender: True if this put woke the
        loop from another thread, and should now wait for the drain to end."""
        try:
            self._idle_token.pop()
        except IndexError:  # another producer (or the drain's re-arm) won the race
            return False
        self._wakeups.increment()
        on_loop_thread = asyncio._get_running_loop() is self._loop
        if not on_loop_thread:
            # Cleared before the drain is scheduled, so that drain's set cannot come
            # first. A drain still running now (it gave the token back when it began)
            # may end and set it before that: the wait is shorter, never stuck.
            self._drained.clear()
        try:
            scheduled = self._schedule_drain(on_loop_thread)
        except MailboxClosed:
            self._drained.set()
            raise
        if not scheduled:
            self._drained.set()
        return scheduled and not on_loop_thread

    def _make_hooked_sender(
        self, target: _Lane, race_hook: RaceHook, wait_s: float
    ) -> Callable[[object], bool]:
        """The sender with the race hook between publish and test (tests only)."""
        arm = self._arm_and_expect_drain if wait_s else self._arm_from_producer

        def send(item: object) -> bool:
            self._puts_entered()
            try:
                if self._closed:
                    raise MailboxClosed(f"mailbox is closed; {target.name!r} item not accepted")
                if len(target.items) >= target.capacity and not target.make_room():
                    return False
                target.items.append(item)
                race_hook("published")
                if not self._idle_token or not arm():
                    return True
            finally:
                self._puts_left()
            self._drained.wait(wait_s)
            return True

        return send

    def put_wait(self, lane: str, item: object, timeout: float | None = None) -> bool:
        """Enqueue ``item`` on ``lane``, waiting while the lane is full: backpressure.

        Any thread but the loop's (there it would wait for itself: WrongThreadError).
        For a producer that must not lose an item and may wait, on a bounded lane: it
        never exceeds the capacity and never counts a drop. Returns True once accepted,
        False if ``timeout`` seconds passed first (the item was not accepted; the caller
        still holds it). Raises :class:`MailboxClosed` once closing has begun, also
        while waiting.
        """
        try:
            on_loop = asyncio.get_running_loop() is self._loop
        except RuntimeError:  # no loop runs in this thread
            on_loop = False
        if on_loop or self.affinity.is_current():
            raise WrongThreadError("Mailbox.put_wait on the loop thread would wait forever")
        target = self._lanes_by_name.get(lane)
        if target is None:
            target = self._lane(lane)  # raises UnknownLaneError naming the lanes
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            # The generation is read BEFORE looking for room: a drain that frees room
            # after the look changes it, so the wait below cannot miss that drain.
            generation = self._drain_generation
            self._puts_entered()  # the same bracket as put(): aclose waits for it
            try:
                if self._closed:
                    raise MailboxClosed(f"mailbox is closed; {lane!r} item not accepted")
                if len(target.items) < target.capacity:
                    target.items.append(item)  # publish, then arm (as in put)
                    if self._idle_token:
                        self._arm_from_producer()
                    return True
            finally:
                self._puts_left()
            with self._room:
                self._room_waiters += 1
                try:
                    while self._drain_generation == generation and not self._closed:
                        remaining = None if deadline is None else deadline - time.monotonic()
                        if remaining is not None and remaining <= 0:
                            return False
                        self._room.wait(remaining)
                finally:
                    self._room_waiters -= 1

    def put_many(self, lane: str, items: Sequence[object]) -> int:
        """Enqueue ``items`` on ``lane`` in order; any thread, never blocks.

        The batch form of :meth:`put` for a producer that already holds many items (the
        native ring's drain): one closed check, one publish and at most one wakeup per
        batch instead of per item. Returns how many were accepted: all of them unless
        the lane is ``reject_newest`` and fills up, in which case the first ones that
        fit are accepted and the rest rejected (counted as ``full``), exactly as the
        same items put one by one. An evicting lane accepts all and sheds its oldest
        items beyond the capacity (counted as ``evicted``). Raises like :meth:`put`,
        before anything is published.
        """
        target = self._lanes_by_name.get(lane)
        if target is None:
            target = self._lane(lane)  # raises UnknownLaneError naming the lanes
        self._puts_entered()  # the same bracket as put(): aclose waits for it
        try:
            if self._closed:
                raise MailboxClosed(f"mailbox is closed; {len(items)} {lane!r} items not accepted")
            queue = target.items
            accepted = len(items)
            room = target.capacity - len(queue)
            if accepted > room and target.spec.policy is OverflowPolicy.REJECT_NEWEST:
                accepted = max(room, 0)
                target.reject(len(items) - accepted)
            if accepted == 0:
                return 0  # nothing published: the queued items already have a drain
            queue.extend(items if accepted == len(items) else items[:accepted])  # 1. publish
            if target.spec.policy is OverflowPolicy.EVICT_OLDEST:
                target.shed_excess()
            if self._race_hook is not None:
                self._race_hook("published")
            if self._idle_token:
                self._arm_from_producer()  # 2. ... then test-and-set, once for the batch
            return accepted
        finally:
            self._puts_left()

    def _arm_from_producer(self) -> None:
        try:
            self._idle_token.pop()
        except IndexError:  # another producer (or the drain's re-arm) won the race
            return
        self._wakeups.increment()
        self._schedule_drain(asyncio._get_running_loop() is self._loop)

    def _schedule_drain(self, on_loop_thread: bool) -> bool:
        """Schedule the drain a won test-and-set owes; False if none is needed. On the
        loop's own thread (the native ring's drain, a timer) the loop is awake, so
        ``call_soon`` suffices: no self-wakeup (on uvloop an eventfd write and one more
        callback; on asyncio a self-pipe write and read). Raises MailboxClosed if the
        loop is closed, unless aclose has finished."""
        if on_loop_thread:
            self._loop.call_soon(self._drain)
            return True
        try:
            self._loop.call_soon_threadsafe(self._drain)
        except RuntimeError as error:  # the loop is closed: nothing can ever drain
            if self._close_finished:
                # An atomic put published before the closed flag was set (else it would
                # have raised) and lost the GIL before this test-and-set; aclose, which
                # set the flag and then drained to empty, has handled its item.
                return False
            raise MailboxClosed(f"the mailbox's event loop is closed: {error}") from error
        return True

    def depth(self, lane: str) -> int:
        """Items waiting in ``lane`` (a snapshot; any thread)."""
        return len(self._lane(lane).items)

    def headroom(self, lane: str) -> int:
        """Free slots in ``lane`` (a snapshot; any thread): lets a requester stop asking."""
        target = self._lane(lane)
        return max(0, target.capacity - len(target.items))

    def room_probe(self, lanes: Sequence[str]) -> Callable[[], int]:
        """A function that returns the least free room among ``lanes`` now: what
        :meth:`headroom` of each would say, with the lanes looked up once, here, rather
        than on every call (any thread; a snapshot). Raises :class:`UnknownLaneError`
        for a lane the mailbox does not have, ValueError for no lane."""
        if not lanes:
            raise ValueError("a room probe needs at least one lane")
        targets = tuple((target.items, target.capacity) for target in map(self._lane, lanes))
        if len(targets) == 1:
            ((items, capacity),) = targets

            def room_of_one() -> int:
                room = capacity - len(items)
                return room if room > 0 else 0

            return room_of_one

        def least_room() -> int:
            room = min([capacity - len(items) for items, capacity in targets])
            return room if room > 0 else 0

        return least_room

    def lanes_publisher(
        self, lanes: Sequence[str], *, caller_drains: bool = False
    ) -> LanesPublisher | None:
        """The C publish step of a batch routed to ``lanes``, for the native ring's
        drain (loop thread only: a won test-and-set schedules the drain with
        ``call_soon``), or None where puts do not publish in C (the extension is
        not built, there is no GIL, or ``atomic_publish=False``).

        ``caller_drains``: a won test-and-set does not schedule the drain but leaves it
        owed, and the caller runs it with :meth:`run_owed_drain` as soon as its
        callback's own work is done, in a ``finally``: the events are handled in the
        same loop callback that published them, one loop iteration sooner (on asyncio a
        whole pass of its Python loop).

        ``room()`` is the least free room among the bounded ones of ``lanes`` (what
        :meth:`room_probe` of them says; ``sys.maxsize`` once closing has begun, so a
        drain takes every event and each fails at once, counted). ``publish(groups)``
        appends each lane's list (in ``lanes``' order) without testing the capacity
        (``room()`` admitted them in the same C call), then runs the test-and-set once;
        -1, with nothing published, once closing has begun: the close contract of an
        atomic put. Raises :class:`UnknownLaneError` for a lane the mailbox does not have,
        ValueError for no lane.
        """
        if not lanes:
            raise ValueError("a lanes publisher needs at least one lane")
        targets = tuple(map(self._lane, lanes))
        if self._publisher is None or _LANES_PUBLISHER is None:
            return None
        return _LANES_PUBLISHER(
            tuple(
                (
                    target.items,
                    None if target.spec.policy is OverflowPolicy.NEVER_DROP else target.capacity,
                )
                for target in targets
            ),
            self._closed_flag,
            self._idle_token,
            self._wakeups.increment,
            (
                functools.partial(self._drain_owed.append, None)
                if caller_drains
                else functools.partial(self._loop.call_soon, self._drain)
            ),
        )

    def run_owed_drain(self) -> None:
        """Run the drain that a ``caller_drains`` lanes publisher's test-and-set owes,
        if it owes one (loop thread). The token stays taken until then, so every put
        meanwhile finds the drain armed, as it is: this drain serves their items."""
        if self._drain_owed:
            self._drain_owed.clear()
            self._drain()

    def _lane(self, name: str) -> _Lane:
        target = self._lanes_by_name.get(name)
        if target is None:
            raise self._unknown_lane(name)
        return target

    def _unknown_lane(self, name: str) -> UnknownLaneError:
        return UnknownLaneError(f"no lane {name!r}; lanes are {list(self._lanes_by_name)}")

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def lane_names(self) -> tuple[str, ...]:
        return tuple(lane.name for lane in self._lanes)

    @property
    def lane_specs(self) -> tuple[LaneSpec, ...]:
        return tuple(lane.spec for lane in self._lanes)

    def statistics(self) -> MailboxStatistics:
        """A snapshot of every counter (any thread; exact once producers are quiet)."""
        return MailboxStatistics(
            lanes=tuple(lane.statistics() for lane in self._lanes),
            drains=self._drains,
            wakeups=self._wakeups.value,
            budget_exhausted=self._budget_exhausted,
            closed=self._closed,
        )

    # -- loop thread ------------------------------------------------------------------

    def _drain(self) -> None:
        # Written flat, as is _serve: a drain of a few items is mostly Python calls, and
        # on a loop thread that slept since the last one each costs about a microsecond.
        self.affinity.check()
        self._idle_token.append(None)  # 3. clear "armed" BEFORE reading the lanes
        if self._race_hook is not None:
            self._race_hook("cleared")
        self._drains += 1
        served = 0
        try:
            served = self._budget - self._serve(self._budget)
        finally:
            # 4. work left (budget spent, or a put landed after we read a lane): re-arm
            # with call_soon so I/O and timers run first. If a producer already took the
            # token, its drain is pending and covers the work.
            for lane in self._lanes:
                if lane.items:
                    if served == self._budget or self._out_of_time:
                        self._budget_exhausted += 1
                    self._rearm_from_loop()
                    break
            else:
                if self._linger_s and self._should_linger(served):
                    self._rearm_from_loop()
            if served:
                # _wake_waiting_producers with its test inlined: the generation first
                self._drain_generation += 1
                if self._room_waiters:
                    self._notify_room_waiters()
            if self._yielding_senders and not self._drained.is_set():
                self._drained.set()  # a yielding sender waits for this (see sender)

    def _wake_waiting_producers(self) -> None:
        """Tell put_wait's producers that a drain made room. Publish, then wake: the
        generation moves first, so a producer that registers after the read of the
        waiter count below sees the new generation and does not wait."""
        self._drain_generation += 1
        if self._room_waiters:
            self._notify_room_waiters()

    def _notify_room_waiters(self) -> None:
        with self._room:
            self._room.notify_all()

    def _should_linger(self, served: int) -> bool:
        """Stay armed a little longer (cheap call_soon passes, no syscall)?

        Only while events arrive in batches: a drain that found at least
        ``LINGER_MIN_BATCH`` items starts a linger of ``linger_s``, during which passes
        poll for the events arriving right behind it instead of each needing a
        ``call_soon_threadsafe`` (a syscall on stock asyncio). At low rates batches are
        small, so the loop never polls and sleeps as soon as the lanes are empty.
        """
        now = time.perf_counter()
        if served >= LINGER_MIN_BATCH:
            self._last_batch = now
            return True
        return now - self._last_batch < self._linger_s

    def _rearm_from_loop(self) -> None:
        try:
            self._idle_token.pop()
        except IndexError:
            return
        self._loop.call_soon(self._drain)

    def _has_work(self) -> bool:
        return any(lane.items for lane in self._lanes)

    def _serve(self, budget: int) -> int:
        """Serve lanes in priority order, a quantum each per round, until the item
        budget is spent, the time budget has run out (checked after each quantum) or
        the lanes are empty; returns the item budget left."""
        handler = self._handler
        clock = _drain_clock
        deadline = clock() + self._time_budget_s
        self._out_of_time = False
        while budget > 0:
            budget_at_round_start = budget
            for lane in self._lanes:
                depth = len(lane.items)
                if not depth:
                    continue
                # the high-water mark, sampled when served; stored only when it grows
                if depth > lane.high_water:  # noqa: PLR1730
                    lane.high_water = depth
                limit = min(lane.spec.quantum, budget)
                if self._handle_many is None and depth < _BATCH_POP_MIN:
                    budget -= self._serve_lane_items(lane, limit, handler)
                else:
                    budget -= self._serve_lane(lane, limit, handler)
                if budget == 0:
                    return 0
                if clock() >= deadline:
                    self._out_of_time = True
                    return budget
            if budget == budget_at_round_start:  # every lane empty
                break
        return budget

    def _serve_lane(self, lane: _Lane, limit: int, handler: Callable[[str, object], None]) -> int:
        """Pop the lane's share of a round as one list and hand it over: to
        ``handle_many`` at once, else item by item."""
        name = lane.name
        started = time.perf_counter()
        batch = lane.take(limit)
        handled = 0
        try:
            handle_many = self._handle_many
            if handle_many is not None:
                handled = len(batch)
                try:
                    handle_many(name, batch)
                except Exception as error:
                    lane.handler_errors += 1
                    self._report(HandlerFailure(name, batch, error))
            else:
                for item in batch:
                    handled += 1
                    try:
                        handler(name, item)
                    except Exception as error:
                        lane.handler_errors += 1
                        self._report(HandlerFailure(name, item, error))
        finally:
            if handled < len(batch):
                # A BaseException (KeyboardInterrupt) left the batch half done: what was
                # not handed to the handler goes back, to be served first next time.
                lane.give_back(batch[handled:])
            lane.handled += handled
            lane.handling_time_s += time.perf_counter() - started
        return handled

    def _serve_lane_items(
        self, lane: _Lane, limit: int, handler: Callable[[str, object], None]
    ) -> int:
        """A few items: popped and handled one at a time (no list, no iterator), by
        ``_SERVE``: one C call where the extension is built (``_publish.serve``), else
        :func:`serve_in_python`. Either stops at a handler's exception and hands it back;
        an Exception is reported here and the serving goes on, anything else
        (KeyboardInterrupt) is raised once the served items are counted. Items not yet
        popped stay in the lane, so no stop loses one."""
        serve = _SERVE
        name = lane.name
        serve_one = lane.serve_one
        served = 0
        started = time.perf_counter()
        try:
            while served < limit:
                count, item, error = serve(serve_one, limit - served, handler, name)
                served += count
                if error is None:  # the limit, or the lane ran empty
                    break
                if not isinstance(error, Exception):
                    raise error
                lane.handler_errors += 1
                self._report(HandlerFailure(name, item, error))
        finally:
            lane.handled += served
            lane.handling_time_s += time.perf_counter() - started
        return served

    def _report(self, failure: HandlerFailure) -> None:
        try:
            self._on_handler_error(failure)
        except Exception:
            # The error callback itself failed: still never strand the other items.
            logger.exception(
                "mailbox on_handler_error callback failed", extra={"lane": failure.lane}
            )

    @loop_only
    async def aclose(self) -> None:
        """Refuse new puts, then handle every accepted item; returns when all are done.

        Idempotent: a second call waits for the same guarantee.
        """
        self._closed = True
        if not self._closed_flag:
            self._closed_flag.append(True)  # what the senders test
        self._wake_waiting_producers()  # put_wait's waiters see the close and raise
        # Wait until no put is between its closed-check and its publish. A put entering
        # from now on sees _closed and raises. Read "left" before "entered": if they are
        # equal, no put was in flight at the moment "left" was read.
        spins = 0
        while self._puts_left_counter.value != self._puts_entered_counter.value:
            spins += 1
            # Yield the GIL as well as the loop: the in-flight producer needs to run.
            await asyncio.sleep(0 if spins < 16 else 0.001)
        while self._has_work():
            self._serve(self._budget)
            await asyncio.sleep(0)  # keep I/O and timers alive between batches
        self._close_finished = True

    @property
    def close_finished(self) -> bool:
        return self._close_finished

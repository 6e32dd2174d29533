"""The loop-thread side of the native ring: eventfd wakeup, batched drain, close.

Loop thread, except where a method says otherwise, and the C close, which
:meth:`NativeRing.aclose` hands to a worker thread (lean_p2p.h allows that while the
consumer does not drain, and :meth:`NativeRing._drain_once` checks it).

Native threads push with the C function ``lean_p2p_ring_push`` (``bindings/lean_p2p.h``)
without the GIL; the first push after a drain writes the ring's eventfd, which the
loop watches with ``loop.add_reader``. Each wakeup drains the ring in batches: the C
side packs up to ``batch`` events into one buffer, and ``sink`` gets them in the first
way it offers:

- ``direct_route`` (a :class:`DirectRoute`): the lanes themselves. The
  :func:`mailbox_sink` offers it where both C extensions are built and its route reads
  only the header: then admission, the take from the ring, the decode, the routing and
  the publish into the lanes (with the one test-and-set that wakes the mailbox's drain)
  are a single C call per batch (``lean_p2p.native._records.drain_to_lanes``), and no
  Python runs between the ring and the lanes but the call's own bookkeeping; the
  mailbox's drain follows in the same loop callback (``DirectRoute.run_drain``);
- ``put_records(buffer, used, count)``: the packed records themselves. The
  :func:`mailbox_sink` has it: it decodes them straight into per-lane lists (in C,
  one call per batch, where ``lean_p2p.native._records`` is built) and puts each
  lane's share with one ``Mailbox.put_many``;
- ``put_batch(events)`` (:class:`BatchSink`): the batch decoded into
  :class:`NativeEvent` values (:func:`~lean_p2p.native.records.decode_records_from`);
- ``sink(event)``: one event per call.

A full batch re-schedules the drain with ``call_soon`` so timers and I/O run between
batches, and marks the ring pending meanwhile so producers skip the eventfd write.

The loop thread's work per event is what bounds the ring's throughput (producers pay
tens of nanoseconds), so the decode and the hand-off are written for it: no copy of
the drain buffer, no Python per event between the ring and the lane, one publish per
lane and batch (``lean-p2p bench native`` measures it in its ``drain`` table). The
drain's own calls into the ring never let the GIL go: none of them waits, and a loop
thread that let it go could wait a whole switch interval to get it back from another
Python thread; taking the wakeup and the batch is one C call where the records
extension is built.

An embedder hands :attr:`NativeRing.address` (the ``lean_p2p_ring *``) and
:attr:`NativeRing.push_function_address` (``lean_p2p_ring_push``) to its native
library, whose threads then push directly.
"""

from __future__ import annotations

import asyncio
import ctypes
import functools
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from lean_p2p.native.library import (
    EventStruct,
    RingStatsStruct,
    function_address,
    holding_gil,
    load_library,
    push_holding_gil,
)
from lean_p2p.native.records import (
    EventKind,
    NativeEvent,
    PushResult,
    RouteTable,
    UnroutableEvent,
    c_records,
    decode_records_from,
    lean_lane_for,
)
from lean_p2p.runtime.affinity import LoopAffinity, loop_only
from lean_p2p.runtime.mailbox import Mailbox, MailboxClosed, OverflowPolicy

if TYPE_CHECKING:
    from typing_extensions import Buffer  # collections.abc.Buffer from Python 3.12

__all__ = [
    "DEFAULT_BATCH",
    "DEFAULT_CAPACITY",
    "DEFAULT_MAX_PAYLOAD",
    "BatchSink",
    "DirectRoute",
    "MailboxSink",
    "NativeRing",
    "NativeRingClosed",
    "NativeRingStatistics",
    "mailbox_sink",
]

logger = logging.getLogger(__name__)

DEFAULT_CAPACITY = 16_384
DEFAULT_MAX_PAYLOAD = 10 * 1024 * 1024
#: Events per drain call before the drain yields back to the loop.
DEFAULT_BATCH = 1_024
_INITIAL_BUFFER = 256 * 1024
_DROP_LOG_INTERVAL_S = 1.0
#: How soon a drain that ``admit`` turned away tries again.
_ADMIT_RETRY_S = 0.0005
_ADMIT_ALL = 1 << 30

Sink = Callable[[NativeEvent], object]


class NativeRingClosed(RuntimeError):
    """The ring was closed or released; nothing more can be pushed or drained."""


@dataclass(frozen=True, slots=True)
class NativeRingStatistics:
    """Counters of the C ring and of the Python drain (a snapshot)."""

    capacity: int
    max_payload: int
    accepted: int
    drained: int
    queued: int
    refused_full: int
    rejected_invalid: int
    rejected_too_large: int
    rejected_no_memory: int
    rejected_closed: int
    wakeups: int
    drains: int
    delivered: int
    sink_rejected: int
    sink_errors: int
    closed: bool

    @property
    def refused(self) -> int:
        """Every push that did not enqueue, for whatever reason. Each was answered with
        its reason, so the producer kept the event: these are refusals, not losses (an
        accepted push is always delivered), and a retried event counts once per try."""
        return (
            self.refused_full
            + self.rejected_invalid
            + self.rejected_too_large
            + self.rejected_no_memory
            + self.rejected_closed
        )

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__} | {"refused": self.refused}


class BatchSink(Protocol):
    """A sink that also takes a whole drained batch at once (see :class:`NativeRing`)."""

    def __call__(self, event: NativeEvent) -> object: ...

    def put_batch(self, events: Sequence[NativeEvent]) -> tuple[int, int]:
        """Hand over ``events`` (in drain order); returns ``(accepted, failed)``.

        Events neither accepted nor failed were rejected (counted as ``sink_rejected``);
        failed ones count as ``sink_errors``. Must not raise for a single bad event.
        """
        ...


class DirectRoute(NamedTuple):
    """What the ring's drain needs to put a batch straight into mailbox lanes in one C
    call (loop thread): the route as a table, and the lanes' admission and publish."""

    #: one byte per (kind, column): an index into the lanes, or 255 for unroutable
    cells: bytes
    #: columns per kind in ``cells``
    width: int
    #: the lanes ``cells`` indexes, in order
    lanes: tuple[str, ...]
    #: how many events the lanes can take now (``LanesPublisher.room``)
    room: Callable[[], int]
    #: appends each lane's list to its lane, then arms the drain; -1 if closed
    #: (``LanesPublisher.publish``)
    publish: Callable[[list[list[NativeEvent]]], int]
    #: runs the drain ``publish`` armed, if it did (``Mailbox.run_owed_drain``): the
    #: ring calls it right after each batch, in the same loop callback
    run_drain: Callable[[], None]


class MailboxSink:
    """Puts native events on the mailbox lanes ``route`` names (loop thread).

    Called per event it returns what ``Mailbox.put`` returns (False: the lane was full;
    the mailbox counts it). :meth:`put_batch` routes a whole drained batch and hands
    each lane its events with one ``Mailbox.put_many``: one publish and at most one
    wakeup per lane and batch instead of per event. Per-lane order is drain order
    either way. An event no lane is meant for is logged and rejected.

    ``route_by_header`` says that ``route`` decides on an event's kind and channel
    alone (the default for :func:`lean_lane_for`; pass True for a route of your own
    that does too). The sink then turns it into a :class:`RouteTable` once, and
    :meth:`put_records` decodes each drained batch straight into per-lane lists.

    :meth:`admit` is the ring's admission control (a :class:`NativeRing` uses it
    unless given another): the drain takes no more events than the fullest bounded
    lane has room for, so a full lane leaves events in the ring, the ring fills, and
    producers get ``LEAN_P2P_FULL``. An "OK" from the ring then means the event will be
    handled: two bounded queues in series never drop between them.

    :attr:`direct_route`, where both C extensions are built and the route reads only
    the header, lets the ring do all of that in one C call per batch; the admission
    then covers the lanes the route can reach, and the publish needs no second room
    check, since only the decode runs between the two (``docs/runtime.md``, "Close
    contract", says what a collection during the decode could change). The mailbox's
    drain then runs in the ring's own callback, right after the batch.
    """

    __slots__ = (
        "_bounded",
        "_held",
        "_least_room",
        "_mailbox",
        "_put",
        "_put_many",
        "_room_of",
        "_route",
        "_table",
        "direct_route",
        "lost_at_close",
    )

    def __init__(
        self,
        mailbox: Mailbox,
        route: Callable[[NativeEvent], str] = lean_lane_for,
        *,
        route_by_header: bool | None = None,
    ) -> None:
        self._mailbox = mailbox
        self._route = route
        if route_by_header is None:
            route_by_header = route is lean_lane_for
        # A route that reads only kind and channel becomes a table the decoder applies
        # as it goes (put_records), instead of a Python call per event.
        self._table = RouteTable.from_route(route) if route_by_header else None
        #: the ring's one-call drain into the lanes, where the C extensions are built
        self.direct_route = self._direct_route(mailbox, self._table)
        self._put = mailbox.put
        self._put_many = mailbox.put_many
        # Lanes that refuse or evict when full (a never-drop lane takes anything).
        self._bounded = tuple(
            spec.name for spec in mailbox.lane_specs if spec.policy is not OverflowPolicy.NEVER_DROP
        )
        # Bound once: admission runs on every drain, the per-lane room on every hand-over.
        self._least_room = mailbox.room_probe(self._bounded) if self._bounded else None
        self._room_of = {lane: mailbox.room_probe((lane,)) for lane in self._bounded}
        #: events a lane refused after admission (another producer filled it first),
        #: by lane, in drain order: handed over before anything newer
        self._held: dict[str, list[NativeEvent]] = {}
        #: held events the mailbox closed on (logged): the only way an admitted event
        #: is not delivered
        self.lost_at_close = 0

    @staticmethod
    def _direct_route(mailbox: Mailbox, table: RouteTable | None) -> DirectRoute | None:
        if table is None or not table.lanes or c_records() is None:
            return None
        if not set(table.lanes) <= set(mailbox.lane_names):
            # A route to a lane the mailbox lacks: put_records fails those events one
            # lane at a time, counted and logged, and keeps the others.
            return None
        # The mailbox's drain runs right after each batch, in the ring's own callback:
        # measured, it took a loop iteration off the latency (docs/latency.md).
        publisher = mailbox.lanes_publisher(table.lanes, caller_drains=True)
        if publisher is None:
            return None
        return DirectRoute(
            table.cells,
            table.WIDTH,
            table.lanes,
            publisher.room,
            publisher.publish,
            mailbox.run_owed_drain,
        )

    def settle_direct(
        self,
        unpublished: list[list[NativeEvent]] | None,
        unroutable: list[NativeEvent] | None,
    ) -> tuple[int, int]:
        """After a drain through :attr:`direct_route`: the events it did not publish,
        each lane's list if the mailbox was closed (counted as failed, and logged, as
        :meth:`put_records` does) and the events no lane is meant for (logged and
        rejected). Returns ``(accepted, failed)`` of these."""
        accepted = failed = 0
        if unpublished is not None:
            assert self.direct_route is not None
            lanes = self.direct_route.lanes
            accepted, failed = self._put_groups(zip(lanes, unpublished, strict=True))
        for event in unroutable or ():
            self._reject_unroutable(event)
        return accepted, failed

    def admit(self) -> int:
        """How many events the drain may take now: the least room in a bounded lane
        (any lane may be the next event's), and none while refused events wait. A
        closed mailbox admits everything: each event then fails at once and is
        counted, rather than waiting forever."""
        mailbox = self._mailbox
        if self._held and not self._place_held():
            return 0
        least_room = self._least_room
        if mailbox.closed or least_room is None:
            return _ADMIT_ALL
        return least_room()

    def _place_held(self) -> bool:
        """Hand the held events over, oldest first; True when none is left."""
        headroom = self._mailbox.headroom
        for lane in list(self._held):
            group = self._held[lane]
            try:
                # Only what fits: a refused put would count as a drop in the lane.
                room = headroom(lane)
                placed = self._put_many(lane, group[:room]) if room else 0
            except MailboxClosed:
                self.lost_at_close += len(group)
                logger.error(
                    "native events admitted but not handled: the mailbox closed",
                    extra={"lane": lane, "events": len(group)},
                )
                placed = len(group)
            if placed < len(group):
                del group[:placed]
            else:
                del self._held[lane]
        return not self._held

    def __call__(self, event: NativeEvent) -> bool:
        try:
            lane = self._route(event)
        except UnroutableEvent as error:
            _log_unroutable(event, error)
            return False
        return self._put(lane, event)

    def put_records(self, buffer: Buffer, used: int, count: int) -> tuple[int, int]:
        """:meth:`put_batch` for ``count`` packed records still in the ring's drain
        buffer (its first ``used`` bytes; read before this returns). With a route
        that reads only the header, the events are decoded straight into their
        lanes' lists, in C where it is built: no Python runs per event."""
        table = self._table
        if table is None:
            return self.put_batch(decode_records_from(buffer, used, count))
        by_lane, unroutable = table.decode(buffer, used, count)
        for event in unroutable:
            self._reject_unroutable(event)
        return self._put_groups(zip(table.lanes, by_lane, strict=True))

    def put_batch(self, events: Sequence[NativeEvent]) -> tuple[int, int]:
        route = self._route
        by_lane: dict[str, list[NativeEvent]] = {}
        for event in events:
            try:
                lane = route(event)
            except UnroutableEvent as error:
                _log_unroutable(event, error)
                continue
            group = by_lane.get(lane)
            if group is None:
                by_lane[lane] = [event]
            else:
                group.append(event)
        return self._put_groups(by_lane.items())

    def _reject_unroutable(self, event: NativeEvent) -> None:
        try:
            self._route(event)  # for the reason, in the route's own words
        except UnroutableEvent as error:
            _log_unroutable(event, error)
        else:  # pragma: no cover - the table and the route disagree: a broken table
            raise AssertionError(f"route table rejected a routable event: {event!r}")

    def _put_groups(self, groups: Iterable[tuple[str, list[NativeEvent]]]) -> tuple[int, int]:
        """Each lane's events with one ``put_many``; returns ``(accepted, failed)``."""
        accepted = failed = 0
        room_of = self._room_of
        for lane, group in groups:
            if not group:
                continue
            try:
                # Admission left room for the batch unless another producer took it
                # meanwhile: put only what fits now (a refused put counts as a drop).
                room_now = room_of.get(lane)
                room = room_now() if room_now is not None else len(group)
                placed = self._put_many(lane, group if room >= len(group) else group[:room])
            except Exception:
                # put_many raises before publishing anything (closed mailbox, unknown
                # lane): the whole group failed, the other lanes are unaffected.
                failed += len(group)
                logger.exception(
                    "native events not accepted by the mailbox",
                    extra={"lane": lane, "events": len(group)},
                )
                continue
            if placed < len(group):
                # Admitted, then refused: another producer filled the lane meanwhile.
                # Held, and handed over before anything newer (admit says 0 till then).
                self._held.setdefault(lane, []).extend(group[placed:])
            accepted += len(group)
        return accepted, failed


#: ``take(ring, buffer, limit, begin) -> (count, used, needed)``: optionally
#: ``lean_p2p_ring_begin_drain``, then ``lean_p2p_ring_drain`` into ``buffer``.
TakeFunction = Callable[[int, Any, int, bool], tuple[int, int, int]]


def _take_function(library: ctypes.CDLL) -> TakeFunction:
    """The drain call, the GIL held: one C call of the records extension where it is
    built (ctypes spent microseconds converting the arguments of each drain), else
    the two ring functions through ctypes."""
    c_take = _records_take()
    if c_take is not None:
        begin_address = function_address(library.lean_p2p_ring_begin_drain)
        drain_address = function_address(library.lean_p2p_ring_drain)

        def take_in_c(ring: int, buffer: Any, limit: int, begin: bool) -> tuple[int, int, int]:
            return c_take(begin_address if begin else 0, drain_address, ring, buffer, limit)

        return take_in_c
    begin_drain = holding_gil("lean_p2p_ring_begin_drain")
    drain = holding_gil("lean_p2p_ring_drain")
    used = ctypes.c_size_t()
    needed = ctypes.c_size_t()
    used_pointer = ctypes.byref(used)
    needed_pointer = ctypes.byref(needed)

    def take_with_ctypes(ring: int, buffer: Any, limit: int, begin: bool) -> tuple[int, int, int]:
        if begin:
            begin_drain(ring)
        count: int = drain(ring, buffer, len(buffer), limit, used_pointer, needed_pointer)
        return count, used.value, needed.value

    return take_with_ctypes


#: ``direct(ring, buffer, limit, begin) -> (count, needed, limit, published,
#: unpublished, unroutable, error)``: ``lean_p2p.native._records.drain_to_lanes`` with
#: the ring's functions and the route bound.
DirectFunction = Callable[
    [int, Any, int, bool],
    tuple[
        int,
        int,
        int,
        int,
        list[list[NativeEvent]] | None,
        list[NativeEvent] | None,
        BaseException | None,
    ],
]


def _direct_function(library: ctypes.CDLL, route: DirectRoute) -> DirectFunction | None:
    """The one-call drain into the lanes, or None where the records extension is not
    built (``route`` exists only where it is, but a sink of one's own may offer one)."""
    records = c_records()
    if records is None:
        return None
    return functools.partial(
        records.drain_to_lanes,
        function_address(library.lean_p2p_ring_begin_drain),
        function_address(library.lean_p2p_ring_drain),
        route.cells,
        route.width,
        len(route.lanes),
        route.room,
        route.publish,
    )


def _records_take() -> Callable[[int, int, int, Any, int], tuple[int, int, int]] | None:
    try:
        from lean_p2p.native._records import take
    except ImportError:  # the extension is not built: ctypes does it
        return None
    return take


def _nothing() -> None:
    pass


def _settle_nothing(
    unpublished: list[list[NativeEvent]] | None, unroutable: list[NativeEvent] | None
) -> tuple[int, int]:
    """A sink without ``settle_direct``: what a direct drain could not place counts as
    rejected (never the case for :class:`MailboxSink`, which has it)."""
    return 0, 0


def _log_unroutable(event: NativeEvent, error: UnroutableEvent) -> None:
    logger.warning(
        "native event rejected: %s",
        error,
        extra={"kind": event.kind.name, "channel": event.channel},
    )


def mailbox_sink(
    mailbox: Mailbox,
    route: Callable[[NativeEvent], str] = lean_lane_for,
    *,
    route_by_header: bool | None = None,
) -> MailboxSink:
    """A sink that puts each event on the mailbox lane ``route`` names.

    Per event it returns what ``put`` returns (False: the lane was full; the mailbox
    counts it). An event no lane is meant for is logged and rejected (counted by the
    ring as ``sink_rejected``). A :class:`NativeRing` given this sink hands it whole
    batches (:meth:`MailboxSink.put_records`); ``route_by_header`` as for
    :class:`MailboxSink`.
    """
    return MailboxSink(mailbox, route, route_by_header=route_by_header)


class NativeRing:
    """A native event ring whose eventfd this loop watches; drains into ``sink``.

    Construct on the loop thread (``loop`` defaults to the running loop, and registering
    the eventfd reader is a loop-thread operation). ``capacity`` is rounded up to a
    power of two; ``max_payload`` bounds one event's payload (larger pushes are rejected
    with ``LEAN_P2P_ERR_TOO_LARGE`` and counted). ``sink(event)`` returning False counts
    the event as rejected by the sink; raising counts and logs it; either way the drain
    goes on.

    ``admit()``, if given (by default the sink's own ``admit``, which
    :class:`MailboxSink` has), says how many events the consumer can take right now;
    the drain takes no more (retrying shortly when it says 0). Events it leaves in the
    ring fill it, and producers then get ``LEAN_P2P_FULL``: backpressure instead of
    loss, so an accepted push is a delivered one.
    """

    def __init__(
        self,
        sink: Sink,
        *,
        loop: asyncio.AbstractEventLoop | None = None,
        capacity: int = DEFAULT_CAPACITY,
        max_payload: int = DEFAULT_MAX_PAYLOAD,
        batch: int = DEFAULT_BATCH,
        admit: Callable[[], int] | None = None,
    ) -> None:
        if capacity < 1 or capacity > 1 << 30:
            raise ValueError(f"capacity must be in 1..2**30, not {capacity}")
        if max_payload < 1 or max_payload >= 1 << 32:
            raise ValueError(f"max_payload must be in 1..2**32-1, not {max_payload}")
        if batch < 1:
            raise ValueError(f"batch must be >= 1, not {batch}")
        self._lib = load_library()
        self._loop = loop if loop is not None else asyncio.get_running_loop()
        self._sink = sink
        # A sink that takes whole batches gets them: one hand-off per drained batch.
        self._put_batch: Callable[[Sequence[NativeEvent]], tuple[int, int]] | None = getattr(
            sink, "put_batch", None
        )
        # One that takes the packed records themselves decodes them its own way.
        self._put_records: Callable[[Buffer, int, int], tuple[int, int]] | None = getattr(
            sink, "put_records", None
        )
        self._batch = batch
        self._admit = admit if admit is not None else getattr(sink, "admit", None)
        ring = self._lib.lean_p2p_ring_create(capacity, max_payload)
        if not ring:
            raise MemoryError(f"lean_p2p_ring_create({capacity}, {max_payload}) failed")
        # A sink that offers the lanes themselves gets each batch in one C call, which
        # does the sink's own admission; an admit() given here is honoured instead.
        route: DirectRoute | None = getattr(sink, "direct_route", None) if admit is None else None
        self._direct = _direct_function(self._lib, route) if route is not None else None
        self._run_drain = route.run_drain if route is not None else _nothing
        self._settle_direct: Callable[
            [list[list[NativeEvent]] | None, list[NativeEvent] | None], tuple[int, int]
        ] = getattr(sink, "settle_direct", _settle_nothing)
        self._ring: int | None = ring
        self._capacity: int = self._lib.lean_p2p_ring_capacity(ring)
        self._max_payload: int = self._lib.lean_p2p_ring_max_payload(ring)
        self._final_counters = RingStatsStruct()  # kept at release()
        self._event_fd: int = self._lib.lean_p2p_ring_eventfd(ring)
        self._buffer = ctypes.create_string_buffer(_INITIAL_BUFFER)
        # The drain's calls keep the GIL (they never wait): a loop thread that let it go
        # could wait a whole switch interval for it behind another Python thread.
        self._begin_drain = holding_gil("lean_p2p_ring_begin_drain")
        self._mark_pending = holding_gil("lean_p2p_ring_mark_pending")
        self._take = _take_function(self._lib)
        self._drains = 0
        self._delivered = 0
        self._sink_rejected = 0
        self._sink_errors = 0
        self._continue_scheduled = False
        self._closed = False
        self._close_finished = False
        #: True while lean_p2p_ring_close runs on a worker thread: no drain may run then
        self._c_close_running = False
        self._refusals_logged = 0
        self._drop_log_due = 0.0
        # Binds on first use, which is the first drain: on the loop thread by construction.
        self.affinity = LoopAffinity("NativeRing (drain, aclose)", "lean_p2p_ring_push")
        self._loop.add_reader(self._event_fd, self._drain_batch)

    # -- any thread -------------------------------------------------------------------

    @property
    def address(self) -> int:
        """The ``lean_p2p_ring *`` to hand to a native library (any thread)."""
        return self._live_ring()

    @property
    def push_function_address(self) -> int:
        """The address of ``lean_p2p_ring_push`` (a ``lean_p2p_push_fn``)."""
        return function_address(self._lib.lean_p2p_ring_push)

    @property
    def closed(self) -> bool:
        return self._closed

    def push_threadsafe(
        self,
        kind: EventKind,
        *,
        channel: int = 0,
        request_id: int = 0,
        peer_id: bytes = b"",
        payload: bytes = b"",
    ) -> PushResult:
        """Push from Python (any thread; the ~35 ns C call keeps the GIL, see
        :func:`lean_p2p.native.library.push_holding_gil`).

        For Python producers that want the same path as native ones; a Python producer
        is usually better served by ``Mailbox.put`` directly.
        """
        event = EventStruct(
            kind,
            channel,
            request_id,
            ctypes.cast(ctypes.c_char_p(peer_id), ctypes.c_void_p),
            len(peer_id),
            ctypes.cast(ctypes.c_char_p(payload), ctypes.c_void_p),
            len(payload),
        )
        return PushResult(push_holding_gil()(self._live_ring(), ctypes.byref(event)))

    def statistics(self) -> NativeRingStatistics:
        """A snapshot of every counter (any thread; exact once producers are quiet)."""
        ring = self._ring
        if ring is None:
            raw = self._final_counters
        else:
            raw = RingStatsStruct()
            self._lib.lean_p2p_ring_stats_read(ring, ctypes.byref(raw))
        return NativeRingStatistics(
            capacity=self._capacity,
            max_payload=self._max_payload,
            accepted=raw.accepted,
            drained=raw.drained,
            queued=raw.queued,
            refused_full=raw.refused_full,
            rejected_invalid=raw.rejected_invalid,
            rejected_too_large=raw.rejected_too_large,
            rejected_no_memory=raw.rejected_no_memory,
            rejected_closed=raw.rejected_closed,
            wakeups=raw.wakeups,
            drains=self._drains,
            delivered=self._delivered,
            sink_rejected=self._sink_rejected,
            sink_errors=self._sink_errors,
            closed=self._closed,
        )

    def _live_ring(self) -> int:
        ring = self._ring
        if ring is None:
            raise NativeRingClosed("the native ring was released")
        return ring

    # -- loop thread ------------------------------------------------------------------

    def _on_continue(self) -> None:
        self._continue_scheduled = False
        if not self._closed:
            self._drain_batch()

    def _drain_batch(self) -> None:
        """The eventfd's reader, and the continuation of a drain that left events.

        Written flat, and the direct path first: on a loop thread that slept since the
        last burst each Python call costs about a microsecond."""
        self.affinity.check()
        ring = self._live_ring()
        if self._direct is not None:
            admitted, more = self._drain_direct(ring, begin=True)
        else:
            admitted, more = self._drain_step(ring, begin=True)
        if not admitted:
            self._schedule_continue(_ADMIT_RETRY_S)  # the wakeup is taken; the retry drains
        elif more:
            # More is waiting: come back after timers and I/O had their turn.
            self._schedule_continue(0.0)
        if self._loop.time() >= self._drop_log_due:
            self._log_new_refusals()

    def _drain_step(self, ring: int, *, begin: bool) -> tuple[bool, bool]:
        """One batch, through the sink's lanes directly where it offers them; returns
        (admitted, more): whether admission let the drain take anything, and whether
        more is waiting. ``begin`` takes the wakeup first, admitted or not."""
        if self._direct is not None:
            return self._drain_direct(ring, begin=begin)
        limit = self._admitted(self._batch)
        if limit == 0:
            if begin:
                self._begin_drain(ring)
            return False, False
        return True, self._drain_once(ring, limit, begin=begin)

    def _admitted(self, limit: int) -> int:
        return limit if self._admit is None else max(0, min(limit, self._admit()))

    def _drain_direct(self, ring: int, *, begin: bool) -> tuple[bool, bool]:
        """:meth:`_drain_step` through the sink's :class:`DirectRoute`: admission, the
        take, the decode and the publish are one C call."""
        if self._c_close_running:
            raise RuntimeError("native ring drained while its close runs on another thread")
        direct = self._direct
        assert direct is not None
        try:
            count, needed, limit, published, unpublished, unroutable, error = direct(
                ring, self._buffer, self._batch, begin
            )
            if count == 0 and needed:
                # One event larger than the buffer (up to the payload limit): grow, retry.
                self._buffer = ctypes.create_string_buffer(needed)
                count, needed, limit, published, unpublished, unroutable, error = direct(
                    ring, self._buffer, self._batch, False
                )
            if limit == 0:
                return False, False
            self._drains += 1
            if error is not None:
                # Out of the ring, and not known to be in a lane (a failed allocation,
                # say): counted as failed as a whole, as a batch sink that raised.
                self._sink_errors += count
                logger.error(
                    "native batch not handed over", exc_info=error, extra={"events": count}
                )
            elif count:
                accepted, failed = published, 0
                if unpublished is not None or unroutable is not None:
                    settled, failed = self._settle_direct(unpublished, unroutable)
                    accepted += settled
                self._delivered += accepted
                self._sink_errors += failed
                self._sink_rejected += count - accepted - failed
            return True, count == limit or needed != 0
        finally:
            # The mailbox's drain the publish armed, here rather than a loop iteration
            # later; in a finally, since until it runs the mailbox's token stays taken.
            self._run_drain()

    def _schedule_continue(self, delay: float) -> None:
        if self._continue_scheduled:
            return
        # Until the scheduled drain runs, producers need not write the eventfd.
        self._mark_pending(self._live_ring())
        self._continue_scheduled = True
        if delay:
            self._loop.call_later(delay, self._on_continue)
        else:
            self._loop.call_soon(self._on_continue)

    def _drain_once(self, ring: int, limit: int, *, begin: bool = False) -> bool:
        """Drain up to ``limit`` events into the sink; True if more are waiting.

        ``begin`` first takes the wakeup (``lean_p2p_ring_begin_drain``), in the same
        call: it clears the pending flag BEFORE the slots are read (the C side explains
        why)."""
        if self._c_close_running:
            # lean_p2p.h: never drain while close runs on the thread acting for us.
            raise RuntimeError("native ring drained while its close runs on another thread")
        count, used, needed = self._take(ring, self._buffer, limit, begin)
        if count == 0 and needed:
            # One event larger than the buffer (up to the payload limit): grow and retry.
            self._buffer = ctypes.create_string_buffer(needed)
            count, used, needed = self._take(ring, self._buffer, limit, False)
        self._drains += 1
        if count:
            self._deliver(used, count)
        return count == limit or needed != 0

    def _deliver(self, used: int, count: int) -> None:
        put_records = self._put_records
        if put_records is not None:
            # The sink decodes straight from the drain buffer (no copy of it).
            self._deliver_batch(lambda: put_records(self._buffer, used, count), count)
            return
        events = decode_records_from(self._buffer, used, count)
        put_batch = self._put_batch
        if put_batch is not None:
            self._deliver_batch(lambda: put_batch(events), count)
            return
        sink = self._sink
        for event in events:
            try:
                accepted = sink(event)
            except Exception:
                self._sink_errors += 1
                logger.exception(
                    "native event sink failed",
                    extra={"kind": event.kind.name, "request_id": event.request_id},
                )
                continue
            if accepted is False:
                self._sink_rejected += 1
            else:
                self._delivered += 1

    def _deliver_batch(self, hand_over: Callable[[], tuple[int, int]], count: int) -> None:
        try:
            accepted, failed = hand_over()
        except Exception:
            # A batch sink must not raise for one event; if it does, the batch's fate is
            # unknown, so it is counted as failed as a whole (and logged).
            self._sink_errors += count
            logger.exception("native batch sink failed", extra={"events": count})
            return
        self._delivered += accepted
        self._sink_errors += failed
        self._sink_rejected += count - accepted - failed

    def _log_new_refusals(self, *, final: bool = False) -> None:
        # Drops happen on native threads that cannot log; report them from here, at
        # most once a second (and once more at close), with the count since the last
        # report. The counters are read only when a report is due: reading them on
        # every drain cost more than the rest of a small batch's drain.
        now = self._loop.time()
        if now < self._drop_log_due and not final:
            return
        self._drop_log_due = now + _DROP_LOG_INTERVAL_S
        statistics = self.statistics()
        new_refusals = statistics.refused - self._refusals_logged
        if new_refusals > 0:
            self._refusals_logged = statistics.refused
            logger.warning(
                "native ring refused %d pushes: each producer was told (FULL or an "
                "error) and kept its event; a retried event is refused once per attempt",
                new_refusals,
                extra={
                    "refused_full": statistics.refused_full,
                    "rejected_invalid": statistics.rejected_invalid,
                    "rejected_too_large": statistics.rejected_too_large,
                    "rejected_no_memory": statistics.rejected_no_memory,
                    "rejected_closed": statistics.rejected_closed,
                },
            )

    @loop_only
    async def aclose(self) -> None:
        """Close the ring: later pushes fail with ``LEAN_P2P_ERR_CLOSED``, and every
        push that was accepted is delivered to the sink before this returns.

        The memory stays valid (pushes keep failing cleanly) until :meth:`release`.
        """
        if self._closed:
            return
        ring = self._live_ring()
        self._closed = True
        self._loop.remove_reader(self._event_fd)
        # lean_p2p_ring_close waits for pushes that claimed a slot to finish writing
        # it; that is a copy's time unless a producer was preempted, so it runs off the
        # loop thread rather than stall it.
        # lean_p2p.h allows that only while the consumer does not drain: the reader is
        # gone and _closed stops every other drain path, and _drain_once checks it.
        self._c_close_running = True
        try:
            await asyncio.to_thread(self._lib.lean_p2p_ring_close, ring)
        finally:
            self._c_close_running = False
        while True:
            admitted, more = self._drain_step(ring, begin=False)
            if not admitted:
                await asyncio.sleep(_ADMIT_RETRY_S)
                continue
            if not more:
                break
            await asyncio.sleep(0)  # let timers and I/O run between batches
        self._close_finished = True
        self._log_new_refusals(final=True)

    @loop_only
    def release(self) -> None:
        """Free the ring. Only after :meth:`aclose`, and only once every native thread
        that was given the ring has returned from its last push (lean_p2p.h)."""
        if not self._close_finished:
            # Also while aclose() is still running: its C close may be reading slots.
            raise RuntimeError("release() before aclose() finished: close the ring first")
        ring = self._ring
        if ring is None:
            return
        self._lib.lean_p2p_ring_stats_read(ring, ctypes.byref(self._final_counters))
        self._ring = None
        self._lib.lean_p2p_ring_destroy(ring)

"""NativeRing: native pthreads push through the C ring while the loop thread is busy.

The tests run on the loop thread (pytest-asyncio); producers are C pthreads from the
driver in bindings/testing, compiled by the tests.
"""

from __future__ import annotations

import asyncio
import ctypes
import dataclasses
import functools
import logging
import threading
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest

from lean_p2p.native import (
    EventKind,
    NativeEvent,
    NativeRing,
    NativeRingClosed,
    PushResult,
    mailbox_sink,
)
from lean_p2p.native import ring as ring_module
from lean_p2p.native.library import (
    EventStruct,
    RingStatsStruct,
    function_address,
    holding_gil,
    load_library,
)
from lean_p2p.native.records import RouteTable, c_records, lean_lane_for
from lean_p2p.native.ring import DirectRoute, MailboxSink
from lean_p2p.runtime import LEAN_LANES, LaneSpec, Mailbox, OverflowPolicy
from lean_p2p.runtime import mailbox as mailbox_module
from lean_p2p.tools.native_producers import ProducerDriver
from tests.native.conftest import native_build_hint
from tests.native.delivery import Collector, assert_exactly_once_in_order, busy_python

TEN_MIB = 10 * 1024 * 1024


@pytest.fixture(params=["c", "ctypes"])
def take_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The drain call: the records extension's ``take``, or ctypes where it is not built."""
    path: str = request.param
    if path == "c" and ring_module._records_take() is None:
        pytest.skip("lean_p2p.native._records is not built")
    if path == "ctypes":
        monkeypatch.setattr(ring_module, "_records_take", lambda: None)
    return path


@pytest.fixture(params=["direct", "records", "per-event"])
def sink_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """How a mailbox sink takes each drained batch: straight into the lanes in one C
    call (``direct``: a route that reads only the header, where both extensions are
    built, the default), decoded by its route table and put from Python (``records``),
    or routed event by event (``per-event``: a route that reads more than the header)."""
    path: str = request.param
    if path == "direct" and (c_records() is None or mailbox_module._LANES_PUBLISHER is None):
        pytest.fail(f"the one-call drain is not built: {native_build_hint()}")
    if path == "records":
        monkeypatch.setattr(MailboxSink, "_direct_route", staticmethod(lambda *_: None))
    return path


def path_sink(
    mailbox: Mailbox, sink_path: str, route: Callable[[NativeEvent], str] = lean_lane_for
) -> MailboxSink:
    """``mailbox_sink(mailbox, route)`` taking batches the way ``sink_path`` says."""
    sink = mailbox_sink(mailbox, route, route_by_header=sink_path != "per-event")
    assert (sink.direct_route is not None) == (sink_path == "direct")
    return sink


def test_the_drain_calls_keep_the_gil() -> None:
    for name in ("lean_p2p_ring_begin_drain", "lean_p2p_ring_drain", "lean_p2p_ring_mark_pending"):
        assert holding_gil(name)._flags_ & ctypes._FUNCFLAG_PYTHONAPI  # type: ignore[attr-defined]
    # load_library()'s own functions let it go (for callers that may wait, as close does)
    assert not load_library().lean_p2p_ring_drain._flags_ & ctypes._FUNCFLAG_PYTHONAPI  # type: ignore[attr-defined]


def test_the_c_take_refuses_a_null_ring_and_a_negative_limit() -> None:
    take = ring_module._records_take()
    if take is None:
        pytest.skip("lean_p2p.native._records is not built")
    drain = ctypes.cast(load_library().lean_p2p_ring_drain, ctypes.c_void_p).value or 0
    buffer = ctypes.create_string_buffer(64)
    with pytest.raises(ValueError, match="null"):
        take(0, drain, 0, buffer, 1)
    ring = load_library().lean_p2p_ring_create(16, 64)
    try:
        with pytest.raises(ValueError, match="negative"):
            take(0, drain, ring, buffer, -1)
        assert take(0, drain, ring, buffer, 8) == (0, 0, 0)  # empty: nothing taken
    finally:
        load_library().lean_p2p_ring_destroy(ring)


class OneCallDrain:
    """``drain_to_lanes`` on a raw ring, with ``room`` and ``publish`` of the test's
    own, routing by ``lean_lane_for``."""

    def __init__(self) -> None:
        if c_records() is None:
            pytest.fail(f"the C record decoder is not built: {native_build_hint()}")
        self.library = load_library()
        self.ring = self.library.lean_p2p_ring_create(64, 1024)
        self.table = RouteTable.from_route(lean_lane_for)
        self.room_left = 1 << 20
        self.answer: int | None = None  # publish()'s answer; None: how many it got
        self.published: list[list[list[int]]] = []
        self.drain = self.call()

    def call(
        self,
        *,
        width: int | None = None,
        publish: Callable[[list[list[NativeEvent]]], int] | None = None,
    ) -> Callable[..., tuple[Any, ...]]:
        """``drain_to_lanes`` bound to this ring's functions and route (``width`` and
        ``publish`` replaced if given): call it with ``(ring, buffer, limit, begin)``."""
        return functools.partial(
            c_records().drain_to_lanes,
            function_address(self.library.lean_p2p_ring_begin_drain),
            function_address(self.library.lean_p2p_ring_drain),
            self.table.cells,
            self.table.WIDTH if width is None else width,
            len(self.table.lanes),
            lambda: self.room_left,
            self.publish if publish is None else publish,
        )

    def publish(self, groups: list[list[NativeEvent]]) -> int:
        self.published.append([[event.request_id for event in group] for group in groups])
        if self.answer is not None:
            return self.answer
        return sum(map(len, groups))

    def push(self, kind: EventKind, channel: int, request_id: int) -> None:
        event = _event(kind=kind, channel=channel, request_id=request_id)
        assert self.library.lean_p2p_ring_push(self.ring, ctypes.byref(event)) == PushResult.OK

    def queued(self) -> int:
        stats = RingStatsStruct()
        self.library.lean_p2p_ring_stats_read(self.ring, ctypes.byref(stats))
        return int(stats.queued)

    def lane(self, name: str) -> int:
        return self.table.lanes.index(name)

    def close(self) -> None:
        self.library.lean_p2p_ring_close(self.ring)
        self.library.lean_p2p_ring_destroy(self.ring)


@pytest.fixture
def one_call_drain() -> Iterator[OneCallDrain]:
    drain = OneCallDrain()
    yield drain
    drain.close()


def test_the_one_call_drain_takes_what_the_lanes_have_room_for(
    one_call_drain: OneCallDrain,
) -> None:
    for request_id in range(5):
        one_call_drain.push(EventKind.GOSSIP, 1, request_id)  # blocks
    one_call_drain.push(EventKind.GOSSIP, 2, 5)  # attestations
    buffer = ctypes.create_string_buffer(4096)
    one_call_drain.room_left = 0
    assert one_call_drain.drain(one_call_drain.ring, buffer, 16, True) == (
        0, 0, 0, 0, None, None, None
    )  # fmt: skip
    assert one_call_drain.queued() == 6 and one_call_drain.published == []
    one_call_drain.room_left = 3
    assert one_call_drain.drain(one_call_drain.ring, buffer, 16, True) == (
        3, 0, 3, 3, None, None, None
    )  # fmt: skip
    one_call_drain.room_left = 1 << 20
    assert one_call_drain.drain(one_call_drain.ring, buffer, 16, False)[:4] == (3, 0, 16, 3)
    blocks, attestations = one_call_drain.lane("blocks"), one_call_drain.lane("attestations")
    first, second = one_call_drain.published
    assert first[blocks] == [0, 1, 2] and second[blocks] == [3, 4]
    assert second[attestations] == [5]
    assert one_call_drain.queued() == 0


def test_the_one_call_drain_returns_what_it_could_not_publish(
    one_call_drain: OneCallDrain,
) -> None:
    one_call_drain.push(EventKind.GOSSIP, 1, 0)
    one_call_drain.push(EventKind.GOSSIP, 77, 1)  # no such topic
    one_call_drain.push(EventKind.PEER_CONNECTED, 0, 2)
    one_call_drain.answer = -1  # the mailbox is closed
    buffer = ctypes.create_string_buffer(4096)
    count, needed, limit, published, unpublished, unroutable, error = one_call_drain.drain(
        one_call_drain.ring, buffer, 16, True
    )
    assert (count, needed, limit, published, error) == (3, 0, 16, 0, None)
    assert unpublished is not None and unroutable is not None
    by_lane = dict(zip(one_call_drain.table.lanes, unpublished, strict=True))
    assert [event.request_id for event in by_lane["blocks"]] == [0]
    assert [event.request_id for event in by_lane["control"]] == [2]
    assert [(event.channel, event.request_id) for event in unroutable] == [(77, 1)]


def test_the_one_call_drain_reports_a_failed_publish_with_its_count(
    one_call_drain: OneCallDrain,
) -> None:
    for request_id in range(4):
        one_call_drain.push(EventKind.GOSSIP, 2, request_id)

    def fail(_groups: object) -> int:
        raise MemoryError("no room for the batch")

    drain = one_call_drain.call(publish=fail)
    buffer = ctypes.create_string_buffer(4096)
    count, _needed, _limit, published, _unpublished, _unroutable, error = drain(
        one_call_drain.ring, buffer, 16, True
    )
    assert (count, published) == (4, 0)  # out of the ring, and said so
    assert isinstance(error, MemoryError) and error.__traceback__ is not None


def test_the_one_call_drain_checks_its_arguments_before_anything_leaves_the_ring(
    one_call_drain: OneCallDrain,
) -> None:
    one_call_drain.push(EventKind.GOSSIP, 1, 0)
    buffer = ctypes.create_string_buffer(4096)
    bad_width = one_call_drain.call(width=one_call_drain.table.WIDTH + 1)
    with pytest.raises(ValueError, match="routing table"):
        bad_width(one_call_drain.ring, buffer, 16, True)
    with pytest.raises(ValueError, match="negative"):
        one_call_drain.drain(one_call_drain.ring, buffer, -1, True)
    with pytest.raises(ValueError, match="null"):
        one_call_drain.drain(0, buffer, 16, True)
    assert one_call_drain.queued() == 1


@pytest.mark.stress
async def test_eight_pthreads_exactly_once_in_order_while_loop_busy(
    producer_driver: ProducerDriver, take_path: str
) -> None:
    collector = Collector()
    ring = NativeRing(collector, capacity=1024, batch=256)
    run = producer_driver.start(
        ring.push_function_address, ring.address, threads=8, events_per_thread=20_000
    )
    await busy_python(run.done)
    totals = run.join()
    await busy_python(lambda: len(collector.events) >= totals.accepted)
    await ring.aclose()

    assert totals.accepted == 8 * 20_000  # producers retried every FULL
    assert_exactly_once_in_order(collector, run)
    statistics = ring.statistics()
    assert statistics.accepted == statistics.drained == statistics.delivered == totals.accepted
    assert statistics.refused_full == totals.full  # every FULL answer counted
    assert statistics.wakeups <= statistics.drains
    ring.release()
    run.free()


async def test_full_ring_drops_are_counted_and_reported(
    producer_driver: ProducerDriver, caplog: pytest.LogCaptureFixture
) -> None:
    collector = Collector()
    ring = NativeRing(collector, capacity=64)
    run = producer_driver.start(
        ring.push_function_address,
        ring.address,
        threads=4,
        events_per_thread=1_000,
        retry_when_full=False,
    )
    # Joining ON the loop thread blocks every drain until the producers are done, so
    # exactly the ring's capacity is accepted and the rest must be counted as FULL.
    totals = run.join()
    assert totals.accepted == 64
    assert totals.full == 4_000 - 64
    with caplog.at_level(logging.WARNING, logger="lean_p2p.native.ring"):
        await busy_python(lambda: len(collector.events) == 64)
    assert ring.statistics().refused_full == 4_000 - 64
    assert ring.statistics().delivered == 64
    assert "native ring refused 3936 pushes" in caplog.text
    assert_exactly_once_in_order(collector, run)
    await ring.aclose()
    ring.release()


def _holds_at_least(collector: Collector, count: int) -> bool:
    return len(collector.events) >= count


async def test_refusals_after_a_report_are_reported_at_close(
    producer_driver: ProducerDriver, caplog: pytest.LogCaptureFixture
) -> None:
    # The counters are read at most once a second while draining, and once more at
    # close, so no refusal goes unreported however soon after a report it comes.
    collector = Collector()
    ring = NativeRing(collector, capacity=64)
    with caplog.at_level(logging.WARNING, logger="lean_p2p.native.ring"):
        for _ in range(2):
            run = producer_driver.start(
                ring.push_function_address,
                ring.address,
                threads=1,
                events_per_thread=1_000,
                retry_when_full=False,
            )
            totals = run.join()  # on the loop thread: no drain until all are pushed
            assert totals.full == 1_000 - 64
            await busy_python(
                functools.partial(_holds_at_least, collector, len(collector.events) + 64)
            )
            run.free()
        await ring.aclose()
    reports = [r.getMessage() for r in caplog.records if "native ring refused" in r.getMessage()]
    assert len(reports) == 2
    assert all(report.startswith("native ring refused 936 pushes") for report in reports)
    assert ring.statistics().refused_full == 2 * 936
    ring.release()
    run.free()


async def test_one_wakeup_per_drain_not_per_push() -> None:
    collector = Collector()
    ring = NativeRing(collector, capacity=2048)
    # All pushed from the loop thread itself: no drain can run in between.
    for sequence in range(1_000):
        assert ring.push_threadsafe(EventKind.CUSTOM, request_id=sequence) is PushResult.OK
    assert ring.statistics().wakeups == 1
    await busy_python(lambda: len(collector.events) == 1_000)
    assert [event.request_id for event in collector.events] == list(range(1_000))
    await ring.aclose()
    ring.release()


async def test_small_batches_continue_without_new_wakeups() -> None:
    collector = Collector()
    ring = NativeRing(collector, capacity=2048, batch=16)
    for sequence in range(500):
        ring.push_threadsafe(EventKind.CUSTOM, request_id=sequence)
    await busy_python(lambda: len(collector.events) == 500)
    statistics = ring.statistics()
    assert statistics.wakeups == 1
    assert statistics.drains >= 500 // 16
    assert [event.request_id for event in collector.events] == list(range(500))
    await ring.aclose()
    ring.release()


@pytest.mark.stress
async def test_close_with_producers_still_pushing_delivers_every_accepted_push(
    producer_driver: ProducerDriver,
) -> None:
    collector = Collector()
    ring = NativeRing(collector, capacity=512, batch=128)
    # events_per_thread=0: push until the ring says it is closed.
    run = producer_driver.start(
        ring.push_function_address, ring.address, threads=6, events_per_thread=0
    )
    await busy_python(lambda: len(collector.events) >= 20_000)
    await ring.aclose()  # producers are still pushing now
    await busy_python(run.done)
    totals = run.join()

    assert totals.closed == 6  # each producer saw CLOSED once, then stopped
    assert totals.other_errors == 0
    assert len(collector.events) == totals.accepted  # nothing accepted was lost
    assert_exactly_once_in_order(collector, run)
    statistics = ring.statistics()
    assert statistics.rejected_closed == 6
    assert statistics.queued == 0
    ring.release()
    run.free()


async def test_close_into_a_small_lane_hands_every_accepted_push_to_the_handler(
    producer_driver: ProducerDriver, sink_path: str
) -> None:
    """At close, what the ring still holds goes to the mailbox as the lane makes room:
    nothing the ring accepted is discarded (the mailbox closes after the ring)."""
    collector = Collector()
    lane = LaneSpec("blocks", capacity=64, policy=OverflowPolicy.REJECT_NEWEST, quantum=16)
    mailbox = Mailbox([lane], lambda _lane, event: collector(event))  # type: ignore[arg-type]
    ring = NativeRing(path_sink(mailbox, sink_path, route=lambda _event: "blocks"), capacity=4096)
    run = producer_driver.start(
        ring.push_function_address, ring.address, threads=6, events_per_thread=0
    )
    await busy_python(lambda: len(collector.events) >= 5_000)
    await ring.aclose()  # producers still pushing, the ring holding more than the lane takes
    await busy_python(run.done)
    totals = run.join()
    await mailbox.aclose()
    assert totals.closed == 6
    assert len(collector.events) == totals.accepted
    assert_exactly_once_in_order(collector, run)
    assert ring.statistics().sink_rejected == ring.statistics().sink_errors == 0
    assert mailbox.statistics().lane("blocks").rejected_full == 0
    ring.release()
    run.free()


async def test_push_after_close_is_rejected_and_counted() -> None:
    ring = NativeRing(Collector())
    await ring.aclose()
    assert ring.push_threadsafe(EventKind.CUSTOM) is PushResult.ERR_CLOSED
    assert ring.statistics().rejected_closed == 1
    ring.release()
    with pytest.raises(NativeRingClosed):
        ring.push_threadsafe(EventKind.CUSTOM)
    with pytest.raises(NativeRingClosed):
        _ = ring.address
    assert ring.statistics().rejected_closed == 1  # kept after release


async def test_release_before_close_is_refused() -> None:
    ring = NativeRing(Collector())
    with pytest.raises(RuntimeError, match="aclose"):
        ring.release()
    closing = asyncio.ensure_future(ring.aclose())
    await asyncio.sleep(0)  # aclose has begun (closed is set) but not finished
    assert ring.closed
    with pytest.raises(RuntimeError, match="aclose"):
        ring.release()
    await closing
    ring.release()
    ring.release()  # idempotent


async def test_a_drain_while_the_close_runs_on_its_worker_thread_is_refused() -> None:
    # lean_p2p.h lets the close run on a thread acting for the consumer only while the
    # consumer does not drain; the ring enforces that instead of trusting it.
    ring = NativeRing(Collector())
    closing = asyncio.ensure_future(ring.aclose())
    await asyncio.sleep(0)  # aclose has handed the C close to its worker thread
    assert ring._c_close_running
    with pytest.raises(RuntimeError, match="close runs on another thread"):
        ring._drain_once(ring.address, 1)
    await closing
    assert ring.statistics().queued == 0
    ring.release()


async def test_zero_byte_and_ten_mib_payloads_arrive_intact() -> None:
    collector = Collector()
    ring = NativeRing(collector)
    big = bytes(range(256)) * (TEN_MIB // 256)
    assert len(big) == TEN_MIB
    assert ring.push_threadsafe(EventKind.GOSSIP, channel=1, payload=b"") is PushResult.OK
    assert ring.push_threadsafe(EventKind.GOSSIP, channel=1, payload=big) is PushResult.OK
    assert ring.push_threadsafe(EventKind.GOSSIP, channel=1, payload=big + b"!") is (
        PushResult.ERR_TOO_LARGE
    )
    await busy_python(lambda: len(collector.events) == 2)
    assert collector.events[0].payload == b""
    assert collector.events[1].payload == big
    assert ring.statistics().rejected_too_large == 1
    await ring.aclose()
    ring.release()


async def test_events_larger_than_the_drain_buffer_grow_it(take_path: str) -> None:
    collector = Collector()
    ring = NativeRing(collector, max_payload=2 * 1024 * 1024)
    assert ring._take.__name__ == {"c": "take_in_c", "ctypes": "take_with_ctypes"}[take_path]
    payloads = [bytes([index]) * (1024 * 1024 + index) for index in range(3)]
    for payload in payloads:
        ring.push_threadsafe(EventKind.RESPONSE_CHUNK, channel=2, payload=payload)
    await busy_python(lambda: len(collector.events) == 3)
    assert [event.payload for event in collector.events] == payloads
    await ring.aclose()
    ring.release()


async def test_events_larger_than_the_drain_buffer_grow_it_on_every_sink_path(
    sink_path: str,
) -> None:
    received: list[bytes] = []
    mailbox = Mailbox(LEAN_LANES, lambda _lane, item: received.append(item.payload))  # type: ignore[attr-defined]
    ring = NativeRing(path_sink(mailbox, sink_path), max_payload=2 * 1024 * 1024)
    payloads = [bytes([index]) * (1024 * 1024 + index) for index in range(3)]
    for payload in payloads:
        ring.push_threadsafe(EventKind.RESPONSE_CHUNK, channel=2, payload=payload)
    await busy_python(lambda: len(received) == 3)
    assert received == payloads
    statistics = ring.statistics()
    assert (statistics.delivered, statistics.sink_errors, statistics.sink_rejected) == (3, 0, 0)
    await ring.aclose()
    ring.release()
    await mailbox.aclose()


def _raw_push(ring: NativeRing, event: EventStruct | None) -> int:
    push = load_library().lean_p2p_ring_push
    result: int = push(ring.address, ctypes.byref(event) if event is not None else None)
    return result


def _event(**fields: int | None) -> EventStruct:
    event = EventStruct()
    event.kind = EventKind.GOSSIP
    event.channel = 1
    for name, value in fields.items():
        setattr(event, name, value)
    return event


_PEER_ID = ctypes.create_string_buffer(b"p" * 200)
_PEER_ADDRESS = ctypes.addressof(_PEER_ID)


@pytest.mark.parametrize(
    ("event", "expected", "counter"),
    [
        pytest.param(None, PushResult.ERR_INVALID, "rejected_invalid", id="null-event"),
        pytest.param(_event(kind=0), PushResult.ERR_INVALID, "rejected_invalid", id="kind-0"),
        pytest.param(_event(kind=9), PushResult.ERR_INVALID, "rejected_invalid", id="kind-9"),
        pytest.param(
            _event(peer_id=None, peer_id_len=5),
            PushResult.ERR_INVALID,
            "rejected_invalid",
            id="null-peer-id-with-length",
        ),
        pytest.param(
            _event(payload=None, payload_len=5),
            PushResult.ERR_INVALID,
            "rejected_invalid",
            id="null-payload-with-length",
        ),
        pytest.param(
            _event(peer_id=_PEER_ADDRESS, peer_id_len=129),
            PushResult.ERR_TOO_LARGE,
            "rejected_too_large",
            id="peer-id-over-128",
        ),
        pytest.param(
            # The length alone is checked against the limit before any byte is read.
            _event(payload=_PEER_ADDRESS, payload_len=2**40),
            PushResult.ERR_TOO_LARGE,
            "rejected_too_large",
            id="payload-length-over-limit",
        ),
    ],
)
async def test_malformed_records_are_rejected_with_a_code_and_counted(
    event: EventStruct | None, expected: PushResult, counter: str
) -> None:
    collector = Collector()
    ring = NativeRing(collector)
    assert _raw_push(ring, event) == expected
    assert getattr(ring.statistics(), counter) == 1
    assert ring.statistics().refused == 1
    # The ring still works after the rejection.
    assert _raw_push(ring, _event(peer_id=_PEER_ADDRESS, peer_id_len=128)) == PushResult.OK
    await busy_python(lambda: len(collector.events) == 1)
    assert collector.events[0].peer_id == b"p" * 128
    await ring.aclose()
    ring.release()


def test_null_ring_is_rejected_without_a_crash() -> None:
    push = load_library().lean_p2p_ring_push
    assert push(None, ctypes.byref(_event())) == PushResult.ERR_INVALID


async def test_sink_errors_and_rejections_are_counted_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    delivered: list[int] = []

    def sink(event: NativeEvent) -> bool:
        if event.request_id == 1:
            raise ValueError("handler bug")
        if event.request_id == 2:
            return False
        delivered.append(event.request_id)
        return True

    ring = NativeRing(sink)
    for request_id in range(4):
        ring.push_threadsafe(EventKind.CUSTOM, request_id=request_id)
    with caplog.at_level(logging.ERROR, logger="lean_p2p.native.ring"):
        await busy_python(lambda: ring.statistics().drained == 4)
    assert delivered == [0, 3]
    statistics = ring.statistics()
    assert (statistics.sink_errors, statistics.sink_rejected, statistics.delivered) == (1, 1, 2)
    assert "native event sink failed" in caplog.text
    await ring.aclose()
    ring.release()


async def test_mailbox_sink_routes_kinds_to_lean_lanes(sink_path: str) -> None:
    seen: list[tuple[str, EventKind]] = []

    def handler(lane: str, item: object) -> None:
        assert isinstance(item, NativeEvent)
        seen.append((lane, item.kind))

    mailbox = Mailbox(LEAN_LANES, handler)
    ring = NativeRing(path_sink(mailbox, sink_path))
    pushes = [
        (EventKind.GOSSIP, 1, "blocks"),
        (EventKind.GOSSIP, 2, "attestations"),
        (EventKind.GOSSIP, 3, "aggregates"),
        (EventKind.REQUEST, 2, "peer_requests"),
        (EventKind.RESPONSE_CHUNK, 2, "responses"),
        (EventKind.PEER_CONNECTED, 0, "control"),
    ]
    for kind, channel, _lane in pushes:
        ring.push_threadsafe(kind, channel=channel)
    ring.push_threadsafe(EventKind.GOSSIP, channel=77)  # no such topic
    await busy_python(lambda: len(seen) == len(pushes) and ring.statistics().drained == 7)
    assert sorted(seen, key=lambda pair: pair[0]) == sorted(
        ((lane, kind) for kind, _channel, lane in pushes), key=lambda pair: pair[0]
    )
    assert ring.statistics().sink_rejected == 1
    await ring.aclose()
    ring.release()
    await mailbox.aclose()


async def test_a_header_route_of_ones_own_is_applied_as_a_table_in_drain_order() -> None:
    """route_by_header=True: the sink asks the route once per kind and channel column
    and then routes by table as it decodes; the lanes see drain order."""
    seen: list[tuple[str, int]] = []
    lanes = [
        LaneSpec("gossip", capacity=64, policy=OverflowPolicy.REJECT_NEWEST, quantum=8),
        LaneSpec("rest", capacity=64, policy=OverflowPolicy.REJECT_NEWEST, quantum=8),
    ]
    mailbox = Mailbox(lanes, lambda lane, item: seen.append((lane, item.request_id)))  # type: ignore[attr-defined]
    asked: list[tuple[EventKind, int]] = []

    def route(event: NativeEvent) -> str:
        asked.append((event.kind, event.channel))
        return "gossip" if event.kind is EventKind.GOSSIP else "rest"

    ring = NativeRing(mailbox_sink(mailbox, route=route, route_by_header=True))
    asked_at_construction = len(asked)
    kinds = [EventKind.GOSSIP, EventKind.CUSTOM, EventKind.REQUEST] * 20
    for request_id, kind in enumerate(kinds):
        ring.push_threadsafe(kind, channel=request_id % 3 + 1, request_id=request_id)
    await busy_python(lambda: len(seen) == len(kinds))
    assert len(asked) == asked_at_construction  # no call per event
    for lane in ("gossip", "rest"):
        assert [request_id for name, request_id in seen if name == lane] == [
            request_id
            for request_id, kind in enumerate(kinds)
            if (kind is EventKind.GOSSIP) == (lane == "gossip")
        ]
    await ring.aclose()
    ring.release()
    await mailbox.aclose()


async def test_mailbox_sink_takes_no_more_than_the_lane_has_room_for(sink_path: str) -> None:
    """A full lane leaves events in the ring (the drain admits what fits): every event
    the ring accepted is handled, in push order, none refused by the lane."""
    handled: list[int] = []
    lane = LaneSpec("native", capacity=5, policy=OverflowPolicy.REJECT_NEWEST, quantum=64)
    mailbox = Mailbox([lane], lambda _lane, item: handled.append(item.request_id))  # type: ignore[attr-defined]
    ring = NativeRing(path_sink(mailbox, sink_path, route=lambda _event: "native"))
    for request_id in range(8):  # all pushed before the loop drains
        ring.push_threadsafe(EventKind.CUSTOM, request_id=request_id)
    await busy_python(lambda: len(handled) == 8)
    assert handled == list(range(8))
    statistics = ring.statistics()
    assert (statistics.delivered, statistics.sink_rejected, statistics.sink_errors) == (8, 0, 0)
    assert statistics.drains >= 2  # five fitted, the rest waited in the ring
    assert mailbox.statistics().lane("native").rejected_full == 0
    await ring.aclose()
    ring.release()
    await mailbox.aclose()


async def test_events_a_lane_refused_after_admission_are_held_and_handed_over_first() -> None:
    """Another producer may fill the lane between the drain's admission and its put:
    the refused events wait in the sink, ahead of anything newer, and are delivered."""
    handled: list[object] = []
    lane = LaneSpec("native", capacity=4, policy=OverflowPolicy.REJECT_NEWEST, quantum=64)
    mailbox = Mailbox([lane], lambda _lane, item: handled.append(item))
    sink = mailbox_sink(mailbox, route=lambda _event: "native")
    events = [NativeEvent(EventKind.CUSTOM, 0, request_id, b"", b"") for request_id in range(4)]
    assert sink.admit() == 4
    assert mailbox.put("native", "python producer")  # fills one slot after admission
    assert sink.put_batch(events) == (4, 0)  # taken: three placed, one held
    assert sink.admit() == 0  # nothing more until the held one is placed
    await busy_python(lambda: len(handled) == 4)
    assert sink.admit() == 3  # the held event went in first; room for three more
    await busy_python(lambda: len(handled) == 5)
    assert handled[0] == "python producer"
    assert [item.request_id for item in handled[1:]] == [0, 1, 2, 3]  # type: ignore[attr-defined]
    assert mailbox.statistics().lane("native").rejected_full == 0  # held, never refused
    await mailbox.aclose()


@pytest.mark.stress
async def test_native_producers_retrying_on_full_deliver_every_event_through_a_small_lane(
    producer_driver: ProducerDriver, sink_path: str
) -> None:
    """The embedder's path (docs/embedding-native.md): pthreads push, retrying on FULL;
    the ring drains into a lane far smaller than the stream. "OK" means handled."""
    collector = Collector()
    lane = LaneSpec("blocks", capacity=256, policy=OverflowPolicy.REJECT_NEWEST, quantum=64)
    mailbox = Mailbox([lane], lambda _lane, event: collector(event))  # type: ignore[arg-type]
    ring = NativeRing(path_sink(mailbox, sink_path, route=lambda _event: "blocks"), capacity=1024)
    run = producer_driver.start(
        ring.push_function_address, ring.address, threads=8, events_per_thread=25_000
    )
    await busy_python(run.done)
    totals = run.join()
    await busy_python(lambda: len(collector.events) >= totals.accepted)
    await ring.aclose()
    await mailbox.aclose()
    assert totals.accepted == 8 * 25_000
    assert_exactly_once_in_order(collector, run)
    assert ring.statistics().sink_rejected == 0
    assert mailbox.statistics().lane("blocks").rejected_full == 0
    ring.release()
    run.free()


async def test_a_closed_mailbox_counts_the_batch_as_sink_errors_and_logs_it(
    caplog: pytest.LogCaptureFixture, sink_path: str
) -> None:
    mailbox = Mailbox(LEAN_LANES, lambda _lane, _item: None)
    await mailbox.aclose()
    ring = NativeRing(path_sink(mailbox, sink_path))
    for _ in range(3):
        ring.push_threadsafe(EventKind.PEER_CONNECTED)
    ring.push_threadsafe(EventKind.GOSSIP, channel=77)  # unroutable: rejected, not an error
    with caplog.at_level(logging.WARNING, logger="lean_p2p.native.ring"):
        await busy_python(lambda: ring.statistics().drained == 4)
    statistics = ring.statistics()
    assert (statistics.sink_errors, statistics.sink_rejected, statistics.delivered) == (3, 1, 0)
    assert "native events not accepted by the mailbox" in caplog.text
    assert "unknown topic code 77" in caplog.text
    await ring.aclose()
    ring.release()


class BatchCollector:
    """A batch sink (loop thread): accepts even request ids, fails ids 3 mod 4,
    rejects the rest; or raises for a whole batch when ``explode`` is set."""

    def __init__(self, *, explode: bool = False) -> None:
        self.explode = explode
        self.batches: list[list[int]] = []

    def __call__(self, event: NativeEvent) -> bool:
        raise AssertionError("a batch sink is handed batches, never single events")

    def put_batch(self, events: Sequence[NativeEvent]) -> tuple[int, int]:
        if self.explode:
            raise RuntimeError("batch sink bug")
        self.batches.append([event.request_id for event in events])
        accepted = sum(1 for event in events if event.request_id % 2 == 0)
        failed = sum(1 for event in events if event.request_id % 4 == 3)
        return accepted, failed


async def test_a_batch_sink_gets_whole_batches_and_its_counts(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sink = BatchCollector()
    ring = NativeRing(sink, batch=4)
    for request_id in range(10):
        ring.push_threadsafe(EventKind.CUSTOM, request_id=request_id)
    await busy_python(lambda: ring.statistics().drained == 10)
    assert sink.batches == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    statistics = ring.statistics()
    # accepted: 0 2 4 6 8; failed: 3 7; rejected: 1 5 9
    assert (statistics.delivered, statistics.sink_errors, statistics.sink_rejected) == (5, 2, 3)
    sink.explode = True
    ring.push_threadsafe(EventKind.CUSTOM, request_id=10)
    ring.push_threadsafe(EventKind.CUSTOM, request_id=11)
    with caplog.at_level(logging.ERROR, logger="lean_p2p.native.ring"):
        await busy_python(lambda: ring.statistics().drained == 12)
    assert ring.statistics().sink_errors == 4  # the whole raising batch
    assert "native batch sink failed" in caplog.text
    await ring.aclose()
    ring.release()


def test_ring_under_uvloop(producer_driver: ProducerDriver) -> None:
    uvloop = pytest.importorskip("uvloop")

    async def scenario() -> None:
        collector = Collector()
        ring = NativeRing(collector, capacity=256)
        run = producer_driver.start(
            ring.push_function_address, ring.address, threads=4, events_per_thread=5_000
        )
        await busy_python(run.done)
        totals = run.join()
        await busy_python(lambda: len(collector.events) == totals.accepted)
        await ring.aclose()
        assert totals.accepted == 20_000
        assert_exactly_once_in_order(collector, run)
        ring.release()
        run.free()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(scenario())


@pytest.mark.parametrize(("capacity", "batch"), [(0, 1), (1 << 31, 1), (16, 0)])
async def test_bad_configuration_is_a_value_error(capacity: int, batch: int) -> None:
    with pytest.raises(ValueError):
        NativeRing(Collector(), capacity=capacity, batch=batch)


async def test_admit_holds_events_in_the_ring_as_backpressure() -> None:
    collector = Collector()
    allowed = [0]

    def sink(event: NativeEvent) -> bool:
        allowed[0] -= 1
        return collector(event)

    ring = NativeRing(sink, capacity=64, admit=lambda: allowed[0])
    for sequence in range(64):
        assert ring.push_threadsafe(EventKind.CUSTOM, request_id=sequence) is PushResult.OK
    assert ring.push_threadsafe(EventKind.CUSTOM, request_id=64) is PushResult.FULL
    for _ in range(20):  # the drain is turned away; the events stay in the ring
        await asyncio.sleep(0.001)
    assert collector.events == []
    allowed[0] = 10
    await busy_python(lambda: len(collector.events) == 10)
    allowed[0] = 1_000
    await busy_python(lambda: len(collector.events) == 64)
    assert [event.request_id for event in collector.events] == list(range(64))
    assert ring.statistics().refused_full == 1
    await ring.aclose()
    ring.release()


async def test_python_threads_may_push_too() -> None:
    collector = Collector()
    ring = NativeRing(collector, capacity=16_384)

    def produce(producer: int) -> None:
        for sequence in range(2_000):
            result = ring.push_threadsafe(EventKind.CUSTOM, request_id=(producer << 40) | sequence)
            assert result is PushResult.OK

    threads = [threading.Thread(target=produce, args=(index,)) for index in range(4)]
    for thread in threads:
        thread.start()
    await busy_python(lambda: len(collector.events) == 8_000)
    for thread in threads:
        thread.join()
    by_producer: dict[int, list[int]] = defaultdict(list)
    for event in collector.events:
        by_producer[event.request_id >> 40].append(event.request_id & ((1 << 40) - 1))
    assert by_producer == {index: list(range(2_000)) for index in range(4)}
    await ring.aclose()
    ring.release()


async def test_mailbox_sink_called_per_event_puts_rejects_and_logs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The per-event form (what a CallbackBridge calls) keeps put's answers."""
    handled: list[tuple[str, int]] = []
    lanes = [
        LaneSpec("blocks", capacity=1, policy=OverflowPolicy.REJECT_NEWEST, quantum=8),
        LaneSpec("other", capacity=8, policy=OverflowPolicy.REJECT_NEWEST, quantum=8),
    ]
    mailbox = Mailbox(lanes, lambda lane, item: handled.append((lane, item.request_id)))  # type: ignore[attr-defined]

    def route(event: NativeEvent) -> str:
        return "blocks" if event.kind is EventKind.GOSSIP else "other"

    sink = mailbox_sink(mailbox, route=route)
    assert sink(NativeEvent(EventKind.GOSSIP, 1, 1, b"", b"")) is True
    assert sink(NativeEvent(EventKind.GOSSIP, 1, 2, b"", b"")) is False  # lane full
    assert sink(NativeEvent(EventKind.CUSTOM, 0, 3, b"", b"")) is True
    default_sink = mailbox_sink(mailbox)  # lean_lane_for: topic 9 is nobody's
    with caplog.at_level(logging.WARNING, logger="lean_p2p.native.ring"):
        assert default_sink(NativeEvent(EventKind.GOSSIP, 9, 4, b"", b"")) is False
    assert "unknown topic code 9" in caplog.text
    await mailbox.aclose()
    assert sorted(handled) == [("blocks", 1), ("other", 3)]
    assert mailbox.statistics().lane("blocks").rejected_full == 1


async def test_a_header_route_drains_into_the_lanes_in_one_c_call_per_batch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The default sink: no Python decode, route or put per batch; the counters and the
    per-lane order are those of the other paths."""
    seen: list[tuple[str, int]] = []
    # The lean lanes, each served oldest first (evicting lanes serve the freshest).
    fifo = [dataclasses.replace(spec, policy=OverflowPolicy.REJECT_NEWEST) for spec in LEAN_LANES]
    mailbox = Mailbox(fifo, lambda lane, item: seen.append((lane, item.request_id)))  # type: ignore[attr-defined]
    sink = mailbox_sink(mailbox)
    calls: list[int] = []
    assert sink.direct_route is not None, native_build_hint()

    def no_python_hand_over(*_args: object) -> tuple[int, int]:
        raise AssertionError("a batch went through Python")

    monkeypatch.setattr(MailboxSink, "put_records", no_python_hand_over)
    monkeypatch.setattr(MailboxSink, "put_batch", no_python_hand_over)
    publish = sink.direct_route.publish

    def counting_publish(groups: list[list[NativeEvent]]) -> int:
        calls.append(sum(map(len, groups)))
        return publish(groups)

    sink.direct_route = sink.direct_route._replace(publish=counting_publish)
    ring = NativeRing(sink, batch=8)
    channels = [1, 2, 3] * 6  # blocks, attestations, aggregates
    for request_id, channel in enumerate(channels):
        ring.push_threadsafe(EventKind.GOSSIP, channel=channel, request_id=request_id)
    await busy_python(lambda: len(seen) == len(channels))
    assert calls == [8, 8, 2]  # one publish per drained batch
    for lane, channel in (("blocks", 1), ("attestations", 2), ("aggregates", 3)):
        assert [request_id for name, request_id in seen if name == lane] == [
            request_id for request_id, sent in enumerate(channels) if sent == channel
        ]
    statistics = ring.statistics()
    assert (statistics.delivered, statistics.sink_rejected, statistics.sink_errors) == (18, 0, 0)
    assert statistics.drains == 3
    await ring.aclose()
    ring.release()
    await mailbox.aclose()


class FailingRoute:
    """A sink offering a direct route whose first publish fails (a failed allocation,
    say), then puts every event on one lane."""

    def __init__(self, mailbox: Mailbox) -> None:
        table = RouteTable.from_route(lambda _event: "native")
        publisher = mailbox.lanes_publisher(table.lanes, caller_drains=True)
        assert publisher is not None, native_build_hint()
        self._publish = publisher.publish
        self.failures = 1
        self.direct_route = DirectRoute(
            table.cells,
            table.WIDTH,
            table.lanes,
            publisher.room,
            self.publish,
            mailbox.run_owed_drain,
        )

    def __call__(self, event: NativeEvent) -> bool:
        raise AssertionError("a direct route is handed batches")

    def publish(self, groups: list[list[NativeEvent]]) -> int:
        if self.failures:
            self.failures -= 1
            raise MemoryError("no memory for the batch")
        return self._publish(groups)


async def test_a_batch_whose_direct_hand_over_failed_is_counted_logged_and_the_drain_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    handled: list[int] = []
    lane = LaneSpec("native", capacity=64, policy=OverflowPolicy.REJECT_NEWEST, quantum=8)
    mailbox = Mailbox([lane], lambda _lane, item: handled.append(item.request_id))  # type: ignore[attr-defined]
    ring = NativeRing(FailingRoute(mailbox), batch=4)
    for request_id in range(6):
        ring.push_threadsafe(EventKind.CUSTOM, request_id=request_id)
    with caplog.at_level(logging.ERROR, logger="lean_p2p.native.ring"):
        await busy_python(lambda: ring.statistics().drained == 6 and len(handled) == 2)
    statistics = ring.statistics()
    assert (statistics.sink_errors, statistics.delivered, statistics.sink_rejected) == (4, 2, 0)
    assert handled == [4, 5]
    assert "native batch not handed over" in caplog.text and "MemoryError" in caplog.text
    await ring.aclose()
    ring.release()
    await mailbox.aclose()


async def test_an_admit_of_ones_own_turns_the_direct_route_off() -> None:
    mailbox = Mailbox(LEAN_LANES, lambda _lane, _item: None)
    sink = mailbox_sink(mailbox)
    assert sink.direct_route is not None, native_build_hint()
    assert NativeRing(sink)._direct is not None
    admitted = NativeRing(sink, admit=lambda: 1)
    assert admitted._direct is None  # its admit() decides, in Python
    await admitted.aclose()
    admitted.release()
    await mailbox.aclose()


async def test_a_route_to_a_lane_the_mailbox_lacks_takes_the_python_path() -> None:
    """Its events fail one lane at a time, counted and logged; the other lanes' arrive."""
    lanes = [LaneSpec("blocks", capacity=8, policy=OverflowPolicy.REJECT_NEWEST, quantum=8)]
    handled: list[int] = []
    mailbox = Mailbox(lanes, lambda _lane, item: handled.append(item.request_id))  # type: ignore[attr-defined]
    sink = mailbox_sink(
        mailbox, lambda event: "blocks" if event.channel == 1 else "missing", route_by_header=True
    )
    assert sink.direct_route is None
    ring = NativeRing(sink)
    ring.push_threadsafe(EventKind.GOSSIP, channel=1, request_id=0)
    ring.push_threadsafe(EventKind.GOSSIP, channel=2, request_id=1)
    await busy_python(lambda: ring.statistics().drained == 2 and handled == [0])
    assert ring.statistics().sink_errors == 1
    await ring.aclose()
    ring.release()
    await mailbox.aclose()


async def test_a_direct_drain_hands_its_batch_to_the_handler_in_the_same_loop_callback() -> None:
    """The mailbox's drain runs right after the ring's, not a loop iteration later."""

    class WatchedRing(NativeRing):
        draining = False

        def _drain_batch(self) -> None:
            self.draining = True
            try:
                super()._drain_batch()
            finally:
                self.draining = False

    inside: list[bool] = []
    mailbox = Mailbox(LEAN_LANES, lambda _lane, _item: inside.append(ring.draining))
    ring = WatchedRing(mailbox_sink(mailbox), batch=4)
    for request_id in range(10):
        ring.push_threadsafe(EventKind.PEER_CONNECTED, request_id=request_id)
    await busy_python(lambda: len(inside) == 10)
    assert inside == [True] * 10
    assert mailbox.statistics().wakeups == 3  # one test-and-set per batch of 4, 4, 2
    await ring.aclose()
    ring.release()
    await mailbox.aclose()

"""Mailbox behaviour: lanes, policies, priorities, budget, close contract, errors."""

from __future__ import annotations

import asyncio
import logging
import threading

import pytest

from lean_p2p.runtime import LEAN_LANES
from lean_p2p.runtime import mailbox as mailbox_module
from lean_p2p.runtime.affinity import WrongThreadError
from lean_p2p.runtime.mailbox import (
    _BATCH_POP_MIN,
    LINGER_MIN_BATCH,
    HandlerFailure,
    LaneSpec,
    Mailbox,
    MailboxClosed,
    OverflowPolicy,
    UnknownLaneError,
)
from tests.runtime.close_race import race_aclose
from tests.runtime.conftest import settle

FIFO = OverflowPolicy.REJECT_NEWEST
LIFO = OverflowPolicy.EVICT_OLDEST

# Every test here runs with both publish paths and both serving paths
# (tests/runtime/conftest.py).
pytestmark = pytest.mark.usefixtures("publish_path", "serve_path")


class Recorder:
    """A handler that records (lane, item) pairs in handling order."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, object]] = []

    def __call__(self, lane: str, item: object) -> None:
        self.seen.append((lane, item))

    def items(self, lane: str | None = None) -> list[object]:
        return [item for name, item in self.seen if lane is None or name == lane]


def one_lane(
    capacity: int = 100, policy: OverflowPolicy = FIFO, quantum: int = 8
) -> list[LaneSpec]:
    return [LaneSpec("only", capacity, policy, quantum)]


async def test_items_are_handled_in_fifo_order_on_the_loop_thread() -> None:
    threads: set[int] = set()
    recorder = Recorder()

    def handler(lane: str, item: object) -> None:
        threads.add(threading.get_ident())
        recorder(lane, item)

    mailbox = Mailbox(one_lane(), handler)
    for number in range(50):
        assert mailbox.put("only", number)
    await settle(mailbox)
    assert recorder.items() == list(range(50))
    assert threads == {threading.get_ident()}
    await mailbox.aclose()


async def test_one_wakeup_per_drain_cycle() -> None:
    recorder = Recorder()
    mailbox = Mailbox(one_lane(capacity=10_000), recorder)
    for number in range(1_000):
        mailbox.put("only", number)
    stats = mailbox.statistics()
    assert stats.wakeups == 1  # 1,000 puts before the loop ran: one call_soon_threadsafe
    await settle(mailbox)
    stats = mailbox.statistics()
    assert stats.handled == 1_000
    assert stats.wakeups == 1
    assert stats.drains >= 1
    await mailbox.aclose()


async def test_reject_newest_counts_the_rejection_and_keeps_the_old_items() -> None:
    recorder = Recorder()
    mailbox = Mailbox(one_lane(capacity=3), recorder)
    results = [mailbox.put("only", number) for number in range(5)]
    assert results == [True, True, True, False, False]
    await settle(mailbox)
    assert recorder.items() == [0, 1, 2]
    lane = mailbox.statistics().lane("only")
    assert (lane.accepted, lane.rejected_full, lane.evicted, lane.handled) == (3, 2, 0, 3)
    assert lane.drops_by_reason() == {"full": 2, "evicted": 0}
    assert lane.high_water == 3
    await mailbox.aclose()


async def test_evict_oldest_sheds_the_oldest_and_serves_the_freshest_first() -> None:
    recorder = Recorder()
    mailbox = Mailbox(one_lane(capacity=3, policy=LIFO), recorder)
    assert all(mailbox.put("only", number) for number in range(6))
    await settle(mailbox)
    assert recorder.items() == [5, 4, 3]
    lane = mailbox.statistics().lane("only")
    assert (lane.accepted, lane.evicted, lane.handled, lane.depth) == (6, 3, 3, 0)
    await mailbox.aclose()


async def test_never_drop_lane_exceeds_its_advisory_capacity() -> None:
    recorder = Recorder()
    mailbox = Mailbox([LaneSpec("control", 2, OverflowPolicy.NEVER_DROP, 4)], recorder)
    assert all(mailbox.put("control", number) for number in range(10))
    await settle(mailbox)
    assert recorder.items() == list(range(10))
    assert mailbox.statistics().dropped == 0
    await mailbox.aclose()


async def test_never_drop_past_its_capacity_is_counted_and_warned_about_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    mailbox = Mailbox([LaneSpec("control", 2, OverflowPolicy.NEVER_DROP, 4)], Recorder())
    with caplog.at_level(logging.WARNING, logger="lean_p2p.runtime.mailbox"):
        for number in range(10):
            mailbox.put("control", number)  # nothing drains in between: depth grows
    lane = mailbox.statistics().lane("control")
    assert lane.over_capacity == 8  # the puts that found 2 or more items waiting
    assert lane.as_dict()["over_capacity"] == 8
    warnings = [r for r in caplog.records if "past its capacity" in r.getMessage()]
    assert len(warnings) == 1
    assert "Mailbox.put_wait" in warnings[0].getMessage()
    await mailbox.aclose()


async def test_put_wait_waits_for_room_instead_of_dropping() -> None:
    recorder = Recorder()
    mailbox = Mailbox(one_lane(capacity=4), recorder)
    total = 1_000

    def producer() -> None:
        for number in range(total):
            assert mailbox.put_wait("only", number, timeout=60)

    thread = threading.Thread(target=producer)
    thread.start()
    await asyncio.to_thread(thread.join)  # the loop keeps draining meanwhile
    await settle(mailbox)
    assert recorder.items() == list(range(total))  # every item, in order
    lane = mailbox.statistics().lane("only")
    assert lane.dropped == 0
    assert lane.high_water <= 4  # never past the capacity
    await mailbox.aclose()


async def test_put_wait_times_out_without_accepting_or_counting_a_drop() -> None:
    mailbox = Mailbox(one_lane(capacity=1), Recorder())
    assert mailbox.put("only", "first")
    outcome: list[bool] = []
    producer = threading.Thread(
        target=lambda: outcome.append(mailbox.put_wait("only", "second", timeout=0.05))
    )
    # Joined without yielding: the loop cannot drain, so the lane stays full throughout.
    producer.start()
    producer.join()
    assert outcome == [False]
    assert mailbox.statistics().lane("only").dropped == 0
    await mailbox.aclose()
    assert mailbox.statistics().lane("only").handled == 1  # "second" never went in


async def test_put_wait_on_the_loop_thread_is_refused() -> None:
    mailbox = Mailbox(one_lane(capacity=1), Recorder())
    with pytest.raises(WrongThreadError, match="would wait forever"):
        mailbox.put_wait("only", 1)
    await mailbox.aclose()


async def test_closing_wakes_a_waiting_producer_with_mailbox_closed() -> None:
    mailbox = Mailbox(one_lane(capacity=1), Recorder())
    mailbox.put("only", "first")
    outcome: list[BaseException] = []

    def producer() -> None:
        try:
            mailbox.put_wait("only", "second")
        except MailboxClosed as error:
            outcome.append(error)

    thread = threading.Thread(target=producer)
    thread.start()
    # Without yielding (no drain can run): wait until the producer waits for room.
    while mailbox._room_waiters == 0:
        thread.join(0.001)
    await mailbox.aclose()  # wakes it before serving "first": it sees the close
    await asyncio.to_thread(thread.join)
    assert len(outcome) == 1
    assert mailbox.statistics().lane("only").handled == 1


async def test_lanes_are_served_in_priority_order_with_a_quantum_per_round() -> None:
    recorder = Recorder()
    lanes = [LaneSpec("high", 100, FIFO, 2), LaneSpec("low", 100, FIFO, 1)]
    mailbox = Mailbox(lanes, recorder)
    for number in range(3):
        mailbox.put("low", f"l{number}")
    for number in range(5):
        mailbox.put("high", f"h{number}")
    await settle(mailbox)
    assert recorder.items() == ["h0", "h1", "l0", "h2", "h3", "l1", "h4", "l2"]
    await mailbox.aclose()


class BatchRecorder(Recorder):
    """A handler with handle_many: records each batch the mailbox hands over."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[tuple[str, list[object]]] = []

    def handle_many(self, lane: str, items: list[object]) -> None:
        self.batches.append((lane, list(items)))


async def test_a_batch_handler_gets_each_lanes_share_of_a_round_as_one_list() -> None:
    recorder = BatchRecorder()
    lanes = [LaneSpec("high", 100, FIFO, 2), LaneSpec("low", 100, FIFO, 1)]
    mailbox = Mailbox(lanes, recorder)
    mailbox.put_many("low", ["l0", "l1"])
    mailbox.put_many("high", ["h0", "h1", "h2"])
    await settle(mailbox)
    assert recorder.batches == [
        ("high", ["h0", "h1"]),
        ("low", ["l0"]),
        ("high", ["h2"]),
        ("low", ["l1"]),
    ]
    assert recorder.seen == []  # never called per item
    assert mailbox.statistics().handled == 5
    await mailbox.aclose()


async def test_a_raising_batch_handler_is_counted_once_and_the_drain_goes_on() -> None:
    failures: list[HandlerFailure] = []
    batches: list[list[object]] = []

    class Failing:
        def __call__(self, _lane: str, _item: object) -> None:
            raise AssertionError("a batch handler is not called per item")

        def handle_many(self, _lane: str, items: list[object]) -> None:
            batches.append(list(items))
            if 0 in items:
                raise ValueError("bad batch")

    mailbox = Mailbox(one_lane(quantum=2), Failing(), on_handler_error=failures.append)
    mailbox.put_many("only", [0, 1, 2, 3])
    await settle(mailbox)
    assert batches == [[0, 1], [2, 3]]
    assert [(failure.lane, failure.item) for failure in failures] == [("only", [0, 1])]
    lane = mailbox.statistics().lane("only")
    assert (lane.handled, lane.handler_errors) == (4, 1)
    await mailbox.aclose()


@pytest.mark.parametrize("policy", [FIFO, LIFO])
@pytest.mark.parametrize("items", [5, _BATCH_POP_MIN + 8])
async def test_a_drain_interrupted_mid_batch_gives_back_what_it_did_not_hand_over(
    policy: OverflowPolicy, items: int
) -> None:
    """A KeyboardInterrupt from the handler leaves the drain with items taken from the
    lane but not yet handed over (a lane holding many items has its share popped at
    once): they go back, in order, and are served next."""
    seen: list[object] = []
    interrupt = [True]

    def handler(_lane: str, item: object) -> None:
        seen.append(item)
        if len(seen) == 3 and interrupt.pop():
            raise KeyboardInterrupt

    mailbox = Mailbox(one_lane(capacity=100, quantum=64, policy=policy), handler)
    mailbox.put_many("only", list(range(items)))
    with pytest.raises(KeyboardInterrupt):
        mailbox._serve(100)  # what the drain callback runs, called here to catch it
    assert mailbox.depth("only") == items - 3
    await settle(mailbox)
    expected = list(range(items)) if policy is FIFO else list(reversed(range(items)))
    assert seen == expected  # each once, in serving order: the interrupted one counts
    assert mailbox.statistics().lane("only").handled == items
    await mailbox.aclose()


async def test_budget_yields_to_the_loop_between_batches() -> None:
    order: list[str] = []
    mailbox = Mailbox(
        one_lane(capacity=1_000, quantum=10), lambda _lane, _item: order.append("item"), budget=10
    )
    for number in range(35):
        mailbox.put("only", number)
    # A callback scheduled now must run before the whole backlog is handled.
    asyncio.get_running_loop().call_soon(lambda: order.append("timer"))
    await settle(mailbox)
    assert order.count("item") == 35
    assert order.index("timer") <= 20
    stats = mailbox.statistics()
    assert stats.budget_exhausted >= 3
    assert stats.wakeups == 1  # re-arming uses call_soon, not another threadsafe wakeup
    await mailbox.aclose()


class DrivenClock:
    """The drain's clock, moved only by the handler: each item "takes" ``per_item_s``."""

    def __init__(self, per_item_s: float) -> None:
        self.now = 0.0
        self.per_item_s = per_item_s

    def __call__(self) -> float:
        return self.now

    def spend(self) -> None:
        self.now += self.per_item_s


async def test_a_slow_handler_yields_to_the_loop_at_the_time_budget(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """4 ms an item against a 10 ms time budget: a drain stops after the quantum in which
    its time ran out, though its item budget (1,024) is far from spent."""
    clock = DrivenClock(0.004)
    monkeypatch.setattr(mailbox_module, "_drain_clock", clock)
    order: list[str] = []

    def slow(_lane: str, _item: object) -> None:
        clock.spend()
        order.append("item")

    mailbox = Mailbox(one_lane(capacity=1_000, quantum=2), slow, time_budget_s=0.010)
    for number in range(12):
        mailbox.put("only", number)
    asyncio.get_running_loop().call_soon(lambda: order.append("timer"))
    await settle(mailbox)
    assert order.count("item") == 12
    # Quanta of 2 items, 8 ms each: the time runs out after the second quantum.
    assert order.index("timer") == 4
    stats = mailbox.statistics()
    assert stats.drains == 3
    assert stats.budget_exhausted == 2
    await mailbox.aclose()


async def test_fast_handlers_spend_the_item_budget_not_the_time_budget(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = DrivenClock(0.0)  # no time passes
    monkeypatch.setattr(mailbox_module, "_drain_clock", clock)
    mailbox = Mailbox(one_lane(capacity=1_000, quantum=2), Recorder(), time_budget_s=1e-9)
    for number in range(12):
        mailbox.put("only", number)
    await settle(mailbox)
    assert mailbox.statistics().drains == 1
    await mailbox.aclose()


async def test_standard_lean_lanes_are_in_priority_order() -> None:
    names = [spec.name for spec in LEAN_LANES]
    assert names == [
        "control",
        "verified",
        "responses",
        "blocks",
        "aggregates",
        "attestations",
        "peer_requests",
    ]
    mailbox = Mailbox(LEAN_LANES, Recorder())
    assert mailbox.lane_names == tuple(names)
    await mailbox.aclose()


async def test_put_on_an_unknown_lane_raises_a_typed_error() -> None:
    mailbox = Mailbox(one_lane(), Recorder())
    with pytest.raises(UnknownLaneError, match="nope"):
        mailbox.put("nope", 1)
    await mailbox.aclose()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "", "capacity": 1, "quantum": 1}, "name"),
        ({"name": "x", "capacity": 0, "quantum": 1}, "capacity"),
        ({"name": "x", "capacity": 1, "quantum": 0}, "quantum"),
    ],
)
def test_invalid_lane_specs_are_rejected(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LaneSpec(policy=FIFO, **kwargs)  # type: ignore[arg-type]


async def test_invalid_mailbox_configurations_are_rejected() -> None:
    with pytest.raises(ValueError, match="at least one lane"):
        Mailbox([], Recorder())
    with pytest.raises(ValueError, match="unique"):
        Mailbox(one_lane() + one_lane(), Recorder())
    with pytest.raises(ValueError, match="budget"):
        Mailbox(one_lane(), Recorder(), budget=0)
    for time_budget in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="time_budget_s"):
            Mailbox(one_lane(), Recorder(), time_budget_s=time_budget)


async def test_put_after_close_raises_and_accepted_items_are_handled_first() -> None:
    recorder = Recorder()
    mailbox = Mailbox(one_lane(capacity=10_000), recorder, budget=7)
    for number in range(100):
        mailbox.put("only", number)
    await mailbox.aclose()
    assert recorder.items() == list(range(100))
    assert mailbox.closed and mailbox.close_finished
    with pytest.raises(MailboxClosed):
        mailbox.put("only", "late")
    await mailbox.aclose()  # idempotent
    assert mailbox.statistics().accepted == 100


async def test_a_raising_handler_is_reported_counted_and_strands_nothing() -> None:
    failures: list[HandlerFailure] = []
    handled: list[object] = []

    def handler(_lane: str, item: object) -> None:
        if item == 3:
            raise ValueError("bad item")
        handled.append(item)

    mailbox = Mailbox(one_lane(), handler, on_handler_error=failures.append)
    for number in range(6):
        mailbox.put("only", number)
    await settle(mailbox)
    assert handled == [0, 1, 2, 4, 5]
    assert len(failures) == 1
    assert (failures[0].lane, failures[0].item) == ("only", 3)
    assert isinstance(failures[0].error, ValueError)
    assert mailbox.statistics().lane("only").handler_errors == 1
    await mailbox.aclose()


async def test_a_handlers_error_is_reported_with_its_traceback_and_the_serving_goes_on() -> None:
    """Two failures within one round of a few items: each is reported with the
    traceback of the handler that raised, and every other item is still handled."""
    failures: list[HandlerFailure] = []
    handled: list[object] = []

    def handler(_lane: str, item: object) -> None:
        if item in (1, 2):
            raise ValueError(f"bad item {item}")
        handled.append(item)

    mailbox = Mailbox(one_lane(quantum=8), handler, on_handler_error=failures.append)
    mailbox.put_many("only", list(range(5)))
    await settle(mailbox)
    assert handled == [0, 3, 4]
    assert [failure.item for failure in failures] == [1, 2]
    for failure in failures:
        traceback = failure.error.__traceback__
        assert traceback is not None
        while traceback.tb_next is not None:
            traceback = traceback.tb_next
        assert traceback.tb_frame.f_code.co_name == "handler"
    lane = mailbox.statistics().lane("only")
    assert (lane.handled, lane.handler_errors) == (5, 2)
    await mailbox.aclose()


async def test_a_raising_error_callback_still_strands_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    handled: list[object] = []

    def handler(_lane: str, item: object) -> None:
        if item == 1:
            raise ValueError("bad item")
        handled.append(item)

    def failing_callback(_failure: HandlerFailure) -> None:
        raise RuntimeError("callback broke")

    mailbox = Mailbox(one_lane(), handler, on_handler_error=failing_callback)
    for number in range(3):
        mailbox.put("only", number)
    await settle(mailbox)
    assert handled == [0, 2]
    assert "on_handler_error callback failed" in caplog.text
    await mailbox.aclose()


async def test_default_error_report_logs_the_lane(caplog: pytest.LogCaptureFixture) -> None:
    def handler(_lane: str, _item: object) -> None:
        raise KeyError("boom")

    mailbox = Mailbox(one_lane(), handler)
    mailbox.put("only", "payload")
    await settle(mailbox)
    records = [
        record for record in caplog.records if record.getMessage() == "mailbox handler failed"
    ]
    assert len(records) == 1
    assert records[0].__dict__["lane"] == "only"
    assert "payload" in records[0].__dict__["item"]
    await mailbox.aclose()


async def test_a_fatal_policy_can_close_the_mailbox_from_the_error_callback() -> None:
    loop = asyncio.get_running_loop()
    fatal: asyncio.Future[HandlerFailure] = loop.create_future()

    def handler(_lane: str, item: object) -> None:
        if item == "poison":
            raise RuntimeError("fatal")

    def make_fatal(failure: HandlerFailure) -> None:
        if not fatal.done():
            fatal.set_result(failure)

    mailbox = Mailbox(one_lane(), handler, on_handler_error=make_fatal)
    mailbox.put("only", "poison")
    failure = await fatal
    await mailbox.aclose()
    assert failure.item == "poison"
    with pytest.raises(MailboxClosed):
        mailbox.put("only", "after")


async def test_put_from_another_thread_wakes_the_loop() -> None:
    recorder = Recorder()
    mailbox = Mailbox(one_lane(capacity=10_000), recorder)

    def produce() -> None:
        for number in range(500):
            mailbox.put("only", number)

    await asyncio.to_thread(produce)
    await settle(mailbox)
    assert recorder.items() == list(range(500))
    await mailbox.aclose()


async def test_aclose_from_another_thread_raises_wrong_thread() -> None:
    mailbox = Mailbox(one_lane(), Recorder())
    mailbox.put("only", 1)
    await settle(mailbox)  # the drain binds the guard to the loop thread

    def close_elsewhere() -> None:
        coroutine = mailbox.aclose()
        try:
            coroutine.send(None)
        finally:
            coroutine.close()

    with pytest.raises(WrongThreadError, match=r"Mailbox\.put"):
        await asyncio.to_thread(close_elsewhere)
    await mailbox.aclose()


def test_put_after_the_loop_closed_raises_mailbox_closed() -> None:
    loop = asyncio.new_event_loop()
    mailbox = Mailbox(one_lane(), Recorder(), loop=loop)
    loop.close()
    with pytest.raises(MailboxClosed, match="event loop is closed"):
        mailbox.put("only", 1)


async def test_headroom_and_depth_report_the_lane() -> None:
    mailbox = Mailbox(one_lane(capacity=4), Recorder())
    mailbox.put("only", 1)
    assert mailbox.depth("only") == 1
    assert mailbox.headroom("only") == 3
    await mailbox.aclose()
    assert mailbox.depth("only") == 0


async def test_a_room_probe_says_the_least_headroom_of_its_lanes() -> None:
    lanes = [
        LaneSpec("small", 2, OverflowPolicy.EVICT_OLDEST, 1),
        LaneSpec("large", 5, OverflowPolicy.REJECT_NEWEST, 1),
    ]
    mailbox = Mailbox(lanes, Recorder())
    both = mailbox.room_probe(("small", "large"))
    large = mailbox.room_probe(("large",))
    assert (both(), large()) == (2, 5)
    mailbox.put("large", 1)
    assert (both(), large()) == (2, 4)
    for item in range(3):  # past the capacity: an evicting lane's room is none, not -1
        mailbox.put("small", item)
    assert (both(), large()) == (0, 4)
    assert both() == min(mailbox.headroom("small"), mailbox.headroom("large"))
    with pytest.raises(UnknownLaneError):
        mailbox.room_probe(("small", "nope"))
    with pytest.raises(ValueError, match="at least one lane"):
        mailbox.room_probe(())
    await mailbox.aclose()
    assert (both(), large()) == (2, 5)


async def test_statistics_as_dict_has_every_counter() -> None:
    mailbox = Mailbox(one_lane(), Recorder())
    mailbox.put("only", 1)
    await mailbox.aclose()
    document = mailbox.statistics().as_dict()
    for key in ("accepted", "handled", "dropped", "depth", "drains", "wakeups", "handling_time_s"):
        assert key in document
    lane = document["lanes"][0]
    for key in ("depth", "high_water", "accepted", "dropped", "handled", "handling_time_s"):
        assert key in lane


async def test_without_linger_the_drain_goes_idle_right_after_the_work() -> None:
    mailbox = Mailbox(one_lane(), Recorder(), linger_s=0)
    mailbox.put("only", 1)
    await asyncio.sleep(0)  # the one drain runs
    assert mailbox._idle_token  # idle: the next put will need a threadsafe wakeup
    assert mailbox.statistics().drains == 1
    await mailbox.aclose()


async def test_linger_keeps_the_drain_armed_briefly_after_a_batch_then_goes_idle() -> None:
    recorder = Recorder()
    mailbox = Mailbox(one_lane(), recorder, linger_s=0.2)
    for number in range(LINGER_MIN_BATCH):
        mailbox.put("only", number)
    await asyncio.sleep(0)
    assert not mailbox._idle_token  # still armed: polling with call_soon passes
    mailbox.put("only", "late")  # rides the armed drain: no second wakeup
    await settle(mailbox)
    stats = mailbox.statistics()
    assert recorder.items() == [*range(LINGER_MIN_BATCH), "late"]
    assert stats.wakeups == 1
    assert stats.drains > 2
    await mailbox.aclose()


async def test_a_small_batch_does_not_linger() -> None:
    mailbox = Mailbox(one_lane(), Recorder(), linger_s=0.2)
    for number in range(LINGER_MIN_BATCH - 1):
        mailbox.put("only", number)
    await asyncio.sleep(0)
    assert mailbox._idle_token  # low rate: the loop sleeps at once, no polling
    await mailbox.aclose()


def test_negative_linger_is_rejected() -> None:
    loop = asyncio.new_event_loop()
    try:
        with pytest.raises(ValueError, match="linger"):
            Mailbox(one_lane(), Recorder(), loop=loop, linger_s=-1)
    finally:
        loop.close()


async def test_depth_and_headroom_of_an_unknown_lane_raise_a_typed_error() -> None:
    mailbox = Mailbox(one_lane(), Recorder())
    with pytest.raises(UnknownLaneError):
        mailbox.depth("nope")
    with pytest.raises(UnknownLaneError):
        mailbox.headroom("nope")
    await mailbox.aclose()


async def test_aclose_waits_for_a_put_in_flight() -> None:
    recorder = Recorder()
    inside_put = threading.Event()
    release = threading.Event()

    def hold_the_put(where: str) -> None:
        if where == "published":
            inside_put.set()
            release.wait(timeout=30)

    mailbox = Mailbox(one_lane(), recorder, race_hook=hold_the_put)
    producer = threading.Thread(target=mailbox.put, args=("only", "in flight"))
    producer.start()
    await asyncio.to_thread(inside_put.wait, 30)
    closing = asyncio.ensure_future(mailbox.aclose())
    for _ in range(50):
        await asyncio.sleep(0)
    assert not closing.done()  # the put has not returned yet: close must wait for it
    with pytest.raises(MailboxClosed):
        mailbox.put("only", "late")  # but new puts are already refused
    release.set()
    await closing
    await asyncio.to_thread(producer.join)
    assert recorder.items() == ["in flight"]


@pytest.mark.parametrize("yielding", [False, True], ids=["plain", "yielding"])
async def test_producers_racing_aclose_have_every_accepted_item_handled_and_no_other(
    yielding: bool,
) -> None:
    """Whatever the interleaving of puts and the close: every put that returned True
    has its item handled, and no other item is (tests/runtime/test_publish.py shows this
    race fails a put whose closed test and publish are apart)."""
    handled, accepted = await race_aclose(yielding)
    assert len(handled) == len(set(handled))
    assert set(handled) == set(accepted)


# -- put_many: the batch hand-off -------------------------------------------------------


async def test_put_many_publishes_in_order_with_one_wakeup() -> None:
    recorder = Recorder()
    mailbox = Mailbox(one_lane(capacity=100), recorder)
    assert mailbox.put_many("only", [0, 1, 2, 3, 4]) == 5
    assert mailbox.put_many("only", [5, 6]) == 2  # a drain is already pending: no wakeup
    await settle(mailbox)
    assert recorder.items() == list(range(7))
    statistics = mailbox.statistics()
    assert (statistics.wakeups, statistics.accepted, statistics.handled) == (1, 7, 7)
    await mailbox.aclose()


@pytest.mark.parametrize(
    ("policy", "capacity", "queued_first"),
    [(FIFO, 3, 1), (FIFO, 3, 3), (FIFO, 5, 0), (LIFO, 3, 1), (LIFO, 2, 0)],
)
async def test_put_many_ends_exactly_where_the_same_puts_one_by_one_end(
    policy: OverflowPolicy, capacity: int, queued_first: int
) -> None:
    """Acceptance, rejections, evictions and handling order match a put per item."""
    outcomes = []
    for batched in (False, True):
        recorder = Recorder()
        mailbox = Mailbox(one_lane(capacity=capacity, policy=policy), recorder)
        for number in range(queued_first):
            mailbox.put("only", -1 - number)
        batch = list(range(6))
        if batched:
            accepted = mailbox.put_many("only", batch)
        else:
            accepted = sum(mailbox.put("only", number) for number in batch)
        await settle(mailbox)
        lane = mailbox.statistics().lane("only")
        outcomes.append(
            (accepted, recorder.items(), lane.accepted, lane.rejected_full, lane.evicted)
        )
        await mailbox.aclose()
    assert outcomes[0] == outcomes[1]
    accepted, handled, _, rejected, evicted = outcomes[1]
    # Not vacuous: every case fills the lane, so something was refused or shed.
    assert rejected + evicted > 0
    assert len(handled) == min(capacity, queued_first + 6)
    assert accepted == (6 if policy is LIFO else max(0, capacity - queued_first))


async def test_put_many_on_a_never_drop_lane_takes_everything() -> None:
    recorder = Recorder()
    mailbox = Mailbox([LaneSpec("control", 2, OverflowPolicy.NEVER_DROP, 4)], recorder)
    assert mailbox.put_many("control", list(range(10))) == 10
    await settle(mailbox)
    assert recorder.items() == list(range(10))
    await mailbox.aclose()


async def test_put_many_of_nothing_accepts_nothing_and_wakes_nobody() -> None:
    mailbox = Mailbox(one_lane(), Recorder())
    assert mailbox.put_many("only", []) == 0
    assert mailbox.statistics().wakeups == 0
    assert mailbox._idle_token  # no drain was scheduled
    await mailbox.aclose()


async def test_put_many_after_close_or_on_an_unknown_lane_raises_before_publishing() -> None:
    recorder = Recorder()
    mailbox = Mailbox(one_lane(), recorder)
    with pytest.raises(UnknownLaneError, match="no lane 'nope'"):
        mailbox.put_many("nope", [1, 2])
    assert mailbox.put_many("only", [1, 2]) == 2
    await mailbox.aclose()
    with pytest.raises(MailboxClosed, match="2 'only' items not accepted"):
        mailbox.put_many("only", [3, 4])
    assert recorder.items() == [1, 2]
    assert mailbox.statistics().accepted == 2


async def test_put_many_from_another_thread_wakes_the_loop() -> None:
    recorder = Recorder()
    mailbox = Mailbox(one_lane(capacity=1_000), recorder)
    producer = threading.Thread(target=mailbox.put_many, args=("only", list(range(300))))
    producer.start()
    await asyncio.to_thread(producer.join)
    async with asyncio.timeout(10):
        await settle(mailbox)
    assert recorder.items() == list(range(300))
    await mailbox.aclose()


async def test_a_sender_puts_on_its_lane_exactly_as_put_does() -> None:
    recorder = Recorder()
    lanes = [LaneSpec("small", 2, FIFO, 8), LaneSpec("other", 8, FIFO, 8)]
    mailbox = Mailbox(lanes, recorder)
    send_small = mailbox.sender("small")
    assert [send_small(number) for number in range(3)] == [True, True, False]  # full
    assert mailbox.put("other", "x") is True
    await settle(mailbox)
    assert recorder.seen == [("small", 0), ("small", 1), ("other", "x")]
    assert mailbox.statistics().lane("small").rejected_full == 1
    with pytest.raises(UnknownLaneError, match="no lane 'missing'"):
        mailbox.sender("missing")
    await mailbox.aclose()
    with pytest.raises(MailboxClosed):
        send_small(4)  # a sender bound before the close sees it too
    assert recorder.seen[-1] == ("other", "x")


class CountingEvent(threading.Event):
    """The mailbox's drain event, counting the waits of yielding senders."""

    def __init__(self) -> None:
        super().__init__()
        self.waits: list[float | None] = []

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.append(timeout)
        return super().wait(timeout)


async def test_a_yielding_put_that_wakes_the_loop_returns_once_its_drain_has_run() -> None:
    recorder = Recorder()
    mailbox = Mailbox(one_lane(), recorder)
    # A bound far beyond any drain: the put returns because the drain ended.
    send = mailbox.sender("only", yield_to_loop_s=30.0)
    seen_on_return: list[list[object]] = []

    def produce() -> None:
        assert send("first") is True
        seen_on_return.append(recorder.items())

    await asyncio.to_thread(produce)
    assert seen_on_return == [["first"]]
    await mailbox.aclose()


async def test_only_the_put_that_woke_the_loop_waits_and_at_most_its_bound() -> None:
    mailbox = Mailbox(one_lane(), Recorder())
    mailbox._drained = event = CountingEvent()  # before the sender binds its wait
    send = mailbox.sender("only", yield_to_loop_s=0.01)

    def produce_while_the_loop_is_held() -> None:
        # The loop thread is blocked in to_thread's join below, so no drain runs: the
        # first put wakes it and waits out its bound; the second finds a drain pending.
        assert send(1) is True
        assert send(2) is True

    producer = threading.Thread(target=produce_while_the_loop_is_held)
    producer.start()
    producer.join()  # blocks the loop thread on purpose
    assert event.waits == [0.01]
    assert not event.is_set()  # the drain it scheduled has not run yet
    await settle(mailbox)
    assert event.is_set()  # set when that drain ended
    await mailbox.aclose()


async def test_a_yielding_put_on_the_loop_thread_never_waits() -> None:
    recorder = Recorder()
    mailbox = Mailbox(one_lane(), recorder)
    mailbox._drained = event = CountingEvent()
    send = mailbox.sender("only", yield_to_loop_s=30.0)
    assert send("here") is True  # would wait for a drain only this thread can run
    assert event.waits == [] and recorder.items() == []
    await settle(mailbox)
    assert recorder.items() == ["here"]
    await mailbox.aclose()


@pytest.mark.parametrize("yield_to_loop_s", [0.0, 30.0])
async def test_a_put_on_the_loop_thread_schedules_its_drain_without_a_self_wakeup(
    monkeypatch: pytest.MonkeyPatch, yield_to_loop_s: float
) -> None:
    loop = asyncio.get_running_loop()
    recorder = Recorder()
    mailbox = Mailbox(one_lane(), recorder)

    def no_self_wakeup(*args: object) -> None:
        raise AssertionError("the awake loop was woken through call_soon_threadsafe")

    monkeypatch.setattr(loop, "call_soon_threadsafe", no_self_wakeup)
    send = mailbox.sender("only", yield_to_loop_s=yield_to_loop_s)
    assert send("one") is True and mailbox.put_many("only", ["two", "three"]) == 2
    await settle(mailbox)
    assert recorder.items() == ["one", "two", "three"]
    assert mailbox.statistics().wakeups == 1  # one test-and-set won, one drain
    monkeypatch.undo()
    await mailbox.aclose()


async def test_a_yielding_sender_keeps_the_close_contract_and_rejects_a_bad_bound() -> None:
    recorder = Recorder()
    mailbox = Mailbox(one_lane(capacity=1), recorder)
    send = mailbox.sender("only", yield_to_loop_s=0.01)
    with pytest.raises(ValueError, match="yield_to_loop_s"):
        mailbox.sender("only", yield_to_loop_s=-1.0)
    with pytest.raises(UnknownLaneError):
        mailbox.sender("missing", yield_to_loop_s=0.01)
    assert send(1) is True
    assert send(2) is False  # full: rejected and counted, no wait
    await mailbox.aclose()
    assert recorder.items() == [1]
    assert mailbox.statistics().lane("only").rejected_full == 1
    with pytest.raises(MailboxClosed):
        send(3)


def test_a_yielding_put_into_a_closed_loop_raises_and_leaves_nobody_waiting() -> None:
    loop = asyncio.new_event_loop()
    mailbox = Mailbox(one_lane(), Recorder(), loop=loop)
    send = mailbox.sender("only", yield_to_loop_s=30.0)
    loop.close()
    with pytest.raises(MailboxClosed):
        send("late")
    assert mailbox._drained.is_set()

"""The mailbox's publish step in C (``lean_p2p.runtime._publish``), and what a put built
on it guarantees at close."""

from __future__ import annotations

import asyncio
import ctypes
import gc
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any

import pytest

from lean_p2p.runtime import mailbox as mailbox_module
from lean_p2p.runtime.mailbox import (
    LaneSpec,
    Mailbox,
    MailboxClosed,
    OverflowPolicy,
    UnknownLaneError,
)
from tests.runtime.close_race import race_aclose
from tests.runtime.conftest import publish_build_hint, settle

ONE_LANE = [LaneSpec("only", 100, OverflowPolicy.REJECT_NEWEST, 8)]


@pytest.fixture
def publisher_class() -> Any:
    if mailbox_module._PUBLISHER is None:
        pytest.fail(f"the C publish step is not built: {publish_build_hint()}")
    return mailbox_module._PUBLISHER


def test_put_appends_until_the_capacity_and_force_past_it(publisher_class: Any) -> None:
    items: deque[object] = deque()
    publisher = publisher_class(items, 2, [], MailboxClosed, "only")
    assert publisher.put("a") is True
    assert publisher.put("b") is True
    assert publisher.put("c") is False  # full: nothing appended
    assert publisher.force("d") is True
    assert list(items) == ["a", "b", "d"]


def test_once_the_flag_is_set_nothing_is_appended(publisher_class: Any) -> None:
    items: deque[object] = deque()
    closed: list[bool] = []
    publisher = publisher_class(items, 5, closed, MailboxClosed, "blocks")
    publisher.put("before")
    closed.append(True)
    with pytest.raises(MailboxClosed, match="mailbox is closed; 'blocks' item not accepted"):
        publisher.put("after")
    with pytest.raises(MailboxClosed):
        publisher.force("after")
    assert list(items) == ["before"]


class SendSteps:
    """What send() calls in Python, recorded: the lane's policy and the mailbox's arm."""

    def __init__(self, items: deque[object], *, room: bool = True) -> None:
        self.items = items
        self.room = room
        self.calls: list[str] = []
        self.idle_token: list[None] = [None]

    def make_room(self) -> bool:
        self.calls.append(f"make_room at depth {len(self.items)}")
        return self.room

    def arm(self) -> None:
        # The publish comes first: the item is in the lane when the test-and-set runs.
        self.calls.append(f"arm at depth {len(self.items)}")
        self.idle_token.pop()


def sending_publisher(
    publisher_class: Any, steps: SendSteps, capacity: int = 2, *, closed: bool = False
) -> Any:
    return publisher_class(
        steps.items,
        capacity,
        [True] if closed else [],
        MailboxClosed,
        "only",
        make_room=steps.make_room,
        idle_token=steps.idle_token,
        arm=steps.arm,
    )


def test_send_publishes_then_arms_only_while_the_drain_is_idle(publisher_class: Any) -> None:
    steps = SendSteps(deque())
    send = sending_publisher(publisher_class, steps).send
    assert send("a") is True
    assert send("b") is True  # the token is taken: no second arm
    assert steps.calls == ["arm at depth 1"]
    assert list(steps.items) == ["a", "b"]


@pytest.mark.parametrize("room", [True, False])
def test_send_to_a_full_lane_asks_the_policy(publisher_class: Any, room: bool) -> None:
    steps = SendSteps(deque(["a", "b"]), room=room)
    steps.idle_token.clear()  # a drain is armed
    send = sending_publisher(publisher_class, steps).send
    assert send("c") is room
    assert steps.calls == ["make_room at depth 2"]
    assert list(steps.items) == (["a", "b", "c"] if room else ["a", "b"])


def test_send_to_a_full_lane_keeps_the_reference_counts(publisher_class: Any) -> None:
    """Each full-lane send handles put()'s False and returns a bool of its own: a
    reference lost or kept on the way shows as a drift in False's or True's count
    (CPython 3.11; from 3.12 both are immortal and their counts do not move)."""
    for room in (True, False):
        steps = SendSteps(deque(["a", "b"]), room=room)
        steps.idle_token.clear()
        send = sending_publisher(publisher_class, steps).send
        send("warm-up")
        before = sys.getrefcount(False), sys.getrefcount(True)
        for _ in range(10_000):
            send("c")
        after = sys.getrefcount(False), sys.getrefcount(True)
        assert abs(after[0] - before[0]) < 1_000, (room, before, after)
        assert abs(after[1] - before[1]) < 1_000, (room, before, after)


def test_send_raises_what_its_python_steps_raise(publisher_class: Any) -> None:
    items: deque[object] = deque(["a", "b"])

    def refuse() -> bool:
        raise RuntimeError("policy failed")

    def arm_closed() -> None:
        raise MailboxClosed("the loop is closed")

    publisher = publisher_class(
        items, 2, [], MailboxClosed, "only", make_room=refuse, idle_token=[None], arm=arm_closed
    )
    with pytest.raises(RuntimeError, match="policy failed"):
        publisher.send("c")
    items.clear()
    with pytest.raises(MailboxClosed, match="loop is closed"):
        publisher.send("d")  # published, then the test-and-set's schedule failed
    assert list(items) == ["d"]


def test_send_on_a_closed_mailbox_appends_nothing_and_arms_nothing(publisher_class: Any) -> None:
    steps = SendSteps(deque())
    with pytest.raises(MailboxClosed, match="'only' item not accepted"):
        sending_publisher(publisher_class, steps, closed=True).send("late")
    assert not steps.items
    assert not steps.calls
    assert sending_publisher(publisher_class, steps).send("open") is True


def test_send_needs_its_python_steps(publisher_class: Any) -> None:
    with pytest.raises(TypeError, match="made with make_room, idle_token and arm"):
        publisher_class(deque(), 1, [], MailboxClosed, "x").send("a")
    with pytest.raises(TypeError, match="go together"):
        publisher_class(deque(), 1, [], MailboxClosed, "x", make_room=lambda: True)
    with pytest.raises(TypeError, match="callable"):
        publisher_class(
            deque(), 1, [], MailboxClosed, "x", make_room=1, idle_token=[], arm=lambda: None
        )
    with pytest.raises(TypeError, match="list"):
        publisher_class(
            deque(), 1, [], MailboxClosed, "x", make_room=bool, idle_token=(), arm=lambda: None
        )


_PY_TP_CLEAR = 51  # the slot number of tp_clear in CPython's typeslots.h


def clear_as_the_collector_does(instance: object) -> int:
    """Call the type's own tp_clear on ``instance``, as the collector does when it
    breaks a garbage cycle."""
    get_slot = ctypes.pythonapi.PyType_GetSlot
    get_slot.restype = ctypes.c_void_p
    get_slot.argtypes = [ctypes.py_object, ctypes.c_int]
    clear = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.py_object)(
        get_slot(type(instance), _PY_TP_CLEAR)
    )
    result: int = clear(instance)
    return result


def test_a_publisher_the_collector_cleared_refuses_instead_of_crashing(
    publisher_class: Any,
) -> None:
    """tp_clear empties the fields while breaking a garbage cycle; a call that still
    reaches the publisher then gets an error, not a null pointer."""
    steps = SendSteps(deque())
    publisher = sending_publisher(publisher_class, steps)
    assert clear_as_the_collector_does(publisher) == 0
    for call in (publisher.put, publisher.force):
        with pytest.raises(RuntimeError, match="after the collector cleared it"):
            call("late")
    with pytest.raises(TypeError, match="made with make_room, idle_token and arm"):
        publisher.send("late")
    assert not steps.items


def test_a_mailbox_whose_senders_are_in_c_is_collected(publisher_class: Any) -> None:
    """A C sender refers to the mailbox (its arm), which holds its senders: a cycle the
    collector must see, or every mailbox would live for ever."""
    loop = asyncio.new_event_loop()
    try:
        mailbox = Mailbox(ONE_LANE, lambda _lane, _item: None, loop=loop, atomic_publish=True)
        assert type(mailbox.sender("only")).__name__ == "builtin_function_or_method"
        alive = weakref.ref(mailbox)
        del mailbox
        gc.collect()
        assert alive() is None
    finally:
        loop.close()


@pytest.mark.parametrize(
    ("arguments", "error", "message"),
    [
        (([], 1, [], MailboxClosed, "x"), TypeError, "collections.deque"),
        ((type("Sub", (deque,), {})(), 1, [], MailboxClosed, "x"), TypeError, "deque"),
        ((deque(), -1, [], MailboxClosed, "x"), ValueError, "capacity"),
        ((deque(), 1, (), MailboxClosed, "x"), TypeError, "list"),
        ((deque(), 1, [], ValueError(), "x"), TypeError, "exception class"),
    ],
)
def test_a_publisher_refuses_what_it_cannot_keep_atomic(
    publisher_class: Any, arguments: tuple[Any, ...], error: type[Exception], message: str
) -> None:
    # A deque subclass could run Python code in len() or append(), and let the GIL go.
    with pytest.raises(error, match=message):
        publisher_class(*arguments)


def test_atomic_publish_required_where_it_is_not_built_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(mailbox_module, "_PUBLISHER", None)
    loop = asyncio.new_event_loop()
    try:
        with pytest.raises(ValueError, match="atomic_publish needs the C extension"):
            Mailbox(ONE_LANE, lambda _lane, _item: None, loop=loop, atomic_publish=True)
        Mailbox(ONE_LANE, lambda _lane, _item: None, loop=loop)  # the bracket instead
    finally:
        loop.close()


def test_a_put_whose_wakeup_comes_after_the_close_finished_reports_its_item_handled(
    publisher_class: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An atomic put publishes, then loses the GIL before its test-and-set; meanwhile
    the loop closes the mailbox (without waiting for that put: nothing is in flight),
    handles the item, and is closed itself. The put then finds no loop to wake: its
    item was handled, so it returns True instead of raising MailboxClosed."""
    loop = asyncio.new_event_loop()
    handled: list[object] = []
    mailbox = Mailbox(ONE_LANE, lambda _lane, item: handled.append(item), loop=loop)
    published = threading.Event()
    resume = threading.Event()
    arm = mailbox._arm_and_expect_drain

    def arm_later() -> bool:
        published.set()
        resume.wait(30)
        return arm()

    monkeypatch.setattr(mailbox, "_arm_and_expect_drain", arm_later)
    send = mailbox.sender("only", yield_to_loop_s=30.0)
    results: list[object] = []

    def produce() -> None:
        try:
            results.append(send("early"))
        except MailboxClosed as error:
            results.append(error)

    producer = threading.Thread(target=produce)
    producer.start()
    assert published.wait(30)
    loop.run_until_complete(asyncio.wait_for(mailbox.aclose(), 30))
    loop.close()
    resume.set()
    producer.join(30)
    assert not producer.is_alive()
    assert results == [True]
    assert handled == ["early"]
    # No drain will come: the put left the drained event set, so neither it nor a later
    # yielding put waits for one.
    assert mailbox._drained.is_set()


class PublishApart:
    """A publish step whose closed test and append are apart, as in a put without the
    bracket: one put in 200 is held between them until the mailbox has closed."""

    def __init__(
        self,
        items: deque[object],
        capacity: int,
        closed: list[bool],
        error: type,
        lane: str,
        *,
        make_room: Callable[[], bool],
        idle_token: list[None],
        arm: Callable[[], object],
    ) -> None:
        self._items = items
        self._capacity = capacity
        self._closed = closed
        self._error = error
        self._make_room = make_room
        self._idle_token = idle_token
        self._arm = arm
        self._puts = 0

    def send(self, item: object) -> bool:
        if not self.put(item) and not (self._make_room() and self.force(item)):
            return False
        if self._idle_token:
            self._arm()
        return True

    def put(self, item: object) -> bool:
        if len(self._items) >= self._capacity:
            return False
        return self.force(item)

    def force(self, item: object) -> bool:
        if self._closed:
            raise self._error("closed")
        self._puts += 1
        if self._puts % 200 == 0:
            while not self._closed:  # held: the close begins meanwhile
                time.sleep(0.0001)
            time.sleep(0.01)  # and finishes
        self._items.append(item)
        return True


async def test_the_close_race_loses_items_when_the_test_and_the_publish_are_apart(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The harness of the mailbox's close-race test is able to fail: with a publish step
    that is not atomic, a put returns True for an item that is never handled."""
    monkeypatch.setattr(mailbox_module, "_PUBLISHER", PublishApart)
    handled, accepted = await race_aclose(yielding=False, rounds=3)
    assert set(accepted) - set(handled)


# -- LanesPublisher: a routed batch into several lanes (the native ring's drain) -------


@pytest.fixture
def lanes_publisher_class() -> Any:
    if mailbox_module._LANES_PUBLISHER is None:
        pytest.fail(f"the C publish step is not built: {publish_build_hint()}")
    return mailbox_module._LANES_PUBLISHER


class ArmSteps:
    """What publish() calls when it wins the test-and-set: the wakeup counter, then
    the drain's scheduling; each records the lanes' depths at that moment."""

    def __init__(self, *queues: deque[object]) -> None:
        self.queues = queues
        self.idle_token: list[None] = [None]
        self.calls: list[str] = []

    def count_wakeup(self) -> None:
        self.calls.append("count")

    def schedule(self) -> None:
        self.calls.append(f"schedule at depths {[len(queue) for queue in self.queues]}")


def lanes_publisher(
    lanes_publisher_class: Any,
    steps: ArmSteps,
    capacities: tuple[int | None, ...],
    *,
    closed: list[bool] | None = None,
) -> Any:
    return lanes_publisher_class(
        tuple(zip(steps.queues, capacities, strict=True)),
        [] if closed is None else closed,
        steps.idle_token,
        steps.count_wakeup,
        steps.schedule,
    )


def test_room_is_the_least_room_of_a_bounded_lane(lanes_publisher_class: Any) -> None:
    blocks: deque[object] = deque(["queued"] * 3)
    votes: deque[object] = deque(["queued"])
    control: deque[object] = deque(["queued"] * 50)
    steps = ArmSteps(blocks, votes, control)
    publisher = lanes_publisher(lanes_publisher_class, steps, (4, 10, None))
    assert publisher.room() == 1  # blocks; control is never_drop and never limits
    blocks.extend(["over"] * 3)  # past the capacity (producers may overshoot it)
    assert publisher.room() == 0
    unbounded = lanes_publisher(lanes_publisher_class, ArmSteps(deque()), (None,))
    assert unbounded.room() == sys.maxsize


def test_publish_appends_every_lane_in_order_then_arms_once(lanes_publisher_class: Any) -> None:
    blocks: deque[object] = deque(["old"])
    votes: deque[object] = deque()
    steps = ArmSteps(blocks, votes)
    publisher = lanes_publisher(lanes_publisher_class, steps, (2, 8))
    # Not tested against the capacity: room() admitted the batch in the same C call.
    assert publisher.publish([["b1", "b2"], ["v1", "v2", "v3"]]) == 5
    assert list(blocks) == ["old", "b1", "b2"] and list(votes) == ["v1", "v2", "v3"]
    assert steps.calls == ["count", "schedule at depths [3, 3]"]  # after every append
    assert steps.idle_token == []  # taken: the drain is armed
    assert publisher.publish([[], ["v4"]]) == 1
    assert steps.calls == ["count", "schedule at depths [3, 3]"]  # armed already: no wakeup
    steps.idle_token.append(None)  # the drain began (it gives the token back)
    assert publisher.publish([[], []]) == 0
    assert steps.calls == ["count", "schedule at depths [3, 3]"]  # nothing to drain
    assert steps.idle_token == [None]


def test_publish_once_the_flag_is_set_appends_nothing(lanes_publisher_class: Any) -> None:
    lane: deque[object] = deque()
    steps = ArmSteps(lane)
    closed: list[bool] = []
    publisher = lanes_publisher(lanes_publisher_class, steps, (4,), closed=closed)
    closed.append(True)
    assert publisher.room() == sys.maxsize  # take everything: each event fails at once
    assert publisher.publish([["late"]]) == -1
    assert not lane and steps.calls == [] and steps.idle_token == [None]


@pytest.mark.parametrize(
    "groups",
    [(["a"], ["b"]), [["a"]], [["a"], ["b"], ["c"]], [("a",), ["b"]], [["a"], None], "ab"],
    ids=repr,
)
def test_publish_refuses_groups_that_do_not_match_its_lanes(
    lanes_publisher_class: Any, groups: object
) -> None:
    steps = ArmSteps(deque(), deque())
    publisher = lanes_publisher(lanes_publisher_class, steps, (4, 4))
    with pytest.raises(TypeError, match="a list of 2 lists"):
        publisher.publish(groups)
    assert not any(steps.queues) and steps.calls == [] and steps.idle_token == [None]


def test_publish_raises_what_scheduling_raises_with_the_items_in_their_lanes(
    lanes_publisher_class: Any,
) -> None:
    lane: deque[object] = deque()
    steps = ArmSteps(lane)

    def loop_closed() -> None:
        raise RuntimeError("Event loop is closed")

    publisher = lanes_publisher_class(
        ((lane, 4),), [], steps.idle_token, steps.count_wakeup, loop_closed
    )
    with pytest.raises(RuntimeError, match="loop is closed"):
        publisher.publish([["a"]])
    assert list(lane) == ["a"]


@pytest.mark.parametrize(
    ("lanes", "message", "error"),
    [
        ((), "at least one lane", ValueError),
        ((([], 1),), "collections.deque", TypeError),
        (((type("Sub", (deque,), {})(), 1),), "collections.deque", TypeError),
        (((deque(), -1),), "capacity", ValueError),
        (((deque(),),), "lane", TypeError),
    ],
)
def test_a_lanes_publisher_refuses_what_it_cannot_keep_atomic(
    lanes_publisher_class: Any, lanes: tuple[Any, ...], message: str, error: type[Exception]
) -> None:
    # A deque subclass could run Python code in len() or append(), and let the GIL go.
    with pytest.raises(error, match=message):
        lanes_publisher_class(lanes, [], [None], lambda: None, lambda: None)
    with pytest.raises(TypeError, match="callable"):
        lanes_publisher_class(((deque(), 1),), [], [None], None, lambda: None)


def test_a_lanes_publisher_the_collector_cleared_refuses_instead_of_crashing(
    lanes_publisher_class: Any,
) -> None:
    lane: deque[object] = deque()
    publisher = lanes_publisher(lanes_publisher_class, ArmSteps(lane), (4,))
    assert clear_as_the_collector_does(publisher) == 0
    with pytest.raises(RuntimeError, match="after the collector cleared it"):
        publisher.publish([["late"]])
    with pytest.raises(RuntimeError, match="after the collector cleared it"):
        publisher.room()
    assert not lane


async def test_a_mailbox_lanes_publisher_feeds_its_drain_from_the_loop_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Published on the loop's own thread: one test-and-set for the batch, scheduled
    with call_soon (no self-wakeup), every lane's items handled in their order."""
    loop = asyncio.get_running_loop()
    handled: list[tuple[str, object]] = []
    lanes = [
        LaneSpec("blocks", 2, OverflowPolicy.REJECT_NEWEST, 8),
        LaneSpec("votes", 8, OverflowPolicy.EVICT_OLDEST, 8),
        LaneSpec("control", 1, OverflowPolicy.NEVER_DROP, 8),
    ]
    mailbox = Mailbox(lanes, lambda lane, item: handled.append((lane, item)))
    publisher = mailbox.lanes_publisher(["votes", "control", "blocks"])
    assert publisher is not None
    assert publisher.room() == 2  # blocks; control never limits

    def no_self_wakeup(*args: object) -> None:
        raise AssertionError("the awake loop was woken through call_soon_threadsafe")

    monkeypatch.setattr(loop, "call_soon_threadsafe", no_self_wakeup)
    assert publisher.publish([["v1", "v2"], ["c1", "c2"], ["b1"]]) == 5
    assert mailbox.statistics().wakeups == 1
    await settle(mailbox)
    monkeypatch.undo()
    assert [item for lane, item in handled if lane == "blocks"] == ["b1"]
    assert [item for lane, item in handled if lane == "control"] == ["c1", "c2"]
    # an evicting lane serves the freshest first
    assert [item for lane, item in handled if lane == "votes"] == ["v2", "v1"]
    await mailbox.aclose()
    assert publisher.publish([["late"], [], []]) == -1  # the close contract
    assert mailbox.statistics().lane("votes").handled == 2


async def test_a_mailbox_has_no_lanes_publisher_where_puts_do_not_publish_in_c() -> None:
    mailbox = Mailbox(ONE_LANE, lambda _lane, _item: None, atomic_publish=False)
    assert mailbox.lanes_publisher(["only"]) is None
    atomic = Mailbox(ONE_LANE, lambda _lane, _item: None)
    with pytest.raises(UnknownLaneError, match="no lane 'missing'"):
        atomic.lanes_publisher(["only", "missing"])
    for mailbox_either_way in (mailbox, atomic):
        with pytest.raises(ValueError, match="at least one lane"):
            mailbox_either_way.lanes_publisher([])
    await mailbox.aclose()
    await atomic.aclose()


async def test_a_caller_drains_publisher_leaves_the_drain_to_its_caller(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No loop callback is scheduled: the drain is owed until the caller runs it, and
    meanwhile the token stays taken, so further publishes and puts find it armed."""
    loop = asyncio.get_running_loop()
    handled: list[object] = []
    mailbox = Mailbox(ONE_LANE, lambda _lane, item: handled.append(item))
    publisher = mailbox.lanes_publisher(["only"], caller_drains=True)
    assert publisher is not None

    def nothing_scheduled(*args: object) -> None:
        raise AssertionError("a caller_drains publisher scheduled the drain")

    monkeypatch.setattr(loop, "call_soon", nothing_scheduled)
    monkeypatch.setattr(loop, "call_soon_threadsafe", nothing_scheduled)
    assert publisher.publish([["a", "b"]]) == 2
    assert mailbox.put("only", "c") is True  # armed: no wakeup of its own
    assert publisher.publish([["d"]]) == 1
    assert handled == [] and mailbox.statistics().wakeups == 1
    monkeypatch.undo()
    mailbox.run_owed_drain()
    assert handled == ["a", "b", "c", "d"]
    mailbox.run_owed_drain()  # nothing owed: no second drain
    assert mailbox.statistics().drains == 1
    assert publisher.publish([["e"]]) == 1  # the drain gave the token back: armed again
    mailbox.run_owed_drain()
    assert handled == ["a", "b", "c", "d", "e"]
    await mailbox.aclose()


# -- serve: a few items of a lane, served by one C call (or its Python twin) ------------


@pytest.fixture
def c_serve() -> Any:
    if mailbox_module._SERVE is mailbox_module.serve_in_python:
        pytest.fail(f"the C serving loop is not built: {publish_build_hint()}")
    return mailbox_module._SERVE


@pytest.fixture(params=["c", "python"])
def serve(request: pytest.FixtureRequest, c_serve: Any) -> Any:
    """Each implementation of the serving contract: the C call and its Python twin."""
    return c_serve if request.param == "c" else mailbox_module.serve_in_python


def test_serve_hands_up_to_its_limit_over_in_order_and_leaves_the_rest(serve: Any) -> None:
    items: deque[object] = deque(range(5))
    seen: list[tuple[str, object]] = []
    assert serve(items.popleft, 3, lambda lane, item: seen.append((lane, item)), "only") == (
        3,
        None,
        None,
    )
    assert seen == [("only", 0), ("only", 1), ("only", 2)]
    assert list(items) == [3, 4]


def test_serve_stops_where_the_lane_runs_empty(serve: Any) -> None:
    items: deque[object] = deque(["a"])
    seen: list[object] = []
    assert serve(items.pop, 10, lambda _lane, item: seen.append(item), "only") == (1, None, None)
    assert serve(items.pop, 10, lambda _lane, item: seen.append(item), "only") == (0, None, None)
    assert seen == ["a"]


def test_serve_stops_at_a_raising_handler_and_returns_the_item_and_its_error(
    serve: Any,
) -> None:
    items: deque[object] = deque(range(4))
    seen: list[object] = []

    def handler(_lane: str, item: object) -> None:
        seen.append(item)
        if item == 1:
            raise ValueError("bad")

    served, item, error = serve(items.popleft, 4, handler, "only")
    assert (served, item) == (2, 1)  # the item that raised was handed over: it counts
    assert isinstance(error, ValueError) and error.__traceback__ is not None
    assert list(items) == [2, 3] and seen == [0, 1]


def test_serve_hands_back_a_keyboard_interrupt_instead_of_raising_it(serve: Any) -> None:
    """The caller counts what was served before it re-raises: so the C loop returns
    every exception, not only an Exception."""
    items: deque[object] = deque(range(3))

    def handler(_lane: str, item: object) -> None:
        if item == 0:
            raise KeyboardInterrupt

    served, item, error = serve(items.popleft, 3, handler, "only")
    assert (served, item, type(error)) == (1, 0, KeyboardInterrupt)
    assert list(items) == [1, 2]


def test_serve_refuses_bad_arguments_before_popping_anything(c_serve: Any) -> None:
    items: deque[object] = deque([1])
    with pytest.raises(TypeError, match="takes 4 arguments"):
        c_serve(items.popleft, 1, print)
    with pytest.raises(TypeError, match="callable"):
        c_serve(items.popleft, 1, "not callable", "only")
    with pytest.raises(TypeError):
        c_serve(items.popleft, "one", print, "only")
    assert list(items) == [1]


def test_serve_propagates_a_pop_that_fails_otherwise_than_empty(serve: Any) -> None:
    def broken_pop() -> object:
        raise RuntimeError("not a deque")

    with pytest.raises(RuntimeError, match="not a deque"):
        serve(broken_pop, 1, print, "only")

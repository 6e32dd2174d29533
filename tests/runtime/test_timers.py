"""TimerQueue: one armed call_at, ordering, cancellation, compaction, errors."""

from __future__ import annotations

import asyncio

import pytest

from lean_p2p.runtime.affinity import WrongThreadError
from lean_p2p.runtime.timers import TimerQueue


async def wait_until(condition: object, attempts: int = 5_000) -> None:
    for _ in range(attempts):
        if callable(condition) and condition():
            return
        await asyncio.sleep(0.001)
    raise AssertionError("condition never held")


async def test_timers_fire_in_deadline_order_not_schedule_order() -> None:
    fired: list[object] = []
    timers = TimerQueue(fired.append)
    timers.schedule_after(0.03, "late")
    timers.schedule_after(0.01, "early")
    timers.schedule_after(0.02, "middle")
    await wait_until(lambda: len(fired) == 3)
    assert fired == ["early", "middle", "late"]
    assert timers.statistics().fired == 3


async def test_a_timer_never_fires_before_its_deadline() -> None:
    loop = asyncio.get_running_loop()
    fire_times: list[float] = []
    timers = TimerQueue(lambda _message: fire_times.append(loop.time()))
    handle = timers.schedule_after(0.02, "x")
    await wait_until(lambda: fire_times)
    assert fire_times[0] >= handle.deadline


async def test_later_deadlines_do_not_rearm_the_single_call_at() -> None:
    timers = TimerQueue(lambda _message: None)
    timers.schedule_after(10.0, "first")
    for number in range(1_000):
        timers.schedule_after(20.0 + number, number)
    assert timers.statistics().arms == 1
    timers.schedule_after(5.0, "earlier")
    assert timers.statistics().arms == 2
    assert timers.close() == 1_002


async def test_cancelled_timers_do_not_fire_and_are_counted() -> None:
    fired: list[object] = []
    timers = TimerQueue(fired.append)
    cancelled = timers.schedule_after(0.005, "cancelled")
    timers.schedule_after(0.01, "kept")
    assert cancelled.cancel()
    assert not cancelled.cancel()  # second cancel is a no-op
    await wait_until(lambda: fired)
    await asyncio.sleep(0.01)
    assert fired == ["kept"]
    stats = timers.statistics()
    assert (stats.fired, stats.cancelled, stats.pending) == (1, 1, 0)


async def test_cancel_after_fire_returns_false() -> None:
    fired: list[object] = []
    timers = TimerQueue(fired.append)
    handle = timers.schedule_after(0, "now")
    await wait_until(lambda: fired)
    assert handle.fired and not handle.cancel()


async def test_mass_cancellation_compacts_the_heap() -> None:
    timers = TimerQueue(lambda _message: None)
    handles = [timers.schedule_after(100.0 + number, number) for number in range(1_000)]
    for handle in handles[:900]:
        handle.cancel()
    assert len(timers._heap) < 1_000
    assert timers.statistics().pending == 100
    assert timers.next_deadline() == handles[900].deadline
    timers.close()


async def test_a_timer_scheduled_while_firing_is_armed() -> None:
    fired: list[object] = []
    timers: TimerQueue

    def fire(message: object) -> None:
        fired.append(message)
        if message == "first":
            timers.schedule_after(0.001, "second")

    timers = TimerQueue(fire)
    timers.schedule_after(0.001, "first")
    await wait_until(lambda: len(fired) == 2)
    assert fired == ["first", "second"]


async def test_a_failing_delivery_is_logged_counted_and_others_still_fire(
    caplog: pytest.LogCaptureFixture,
) -> None:
    fired: list[object] = []

    def fire(message: object) -> None:
        if message == "bad":
            raise RuntimeError("delivery failed")
        fired.append(message)

    timers = TimerQueue(fire)
    timers.schedule_after(0.005, "bad")
    timers.schedule_after(0.005, "good")
    await wait_until(lambda: fired)
    assert fired == ["good"]
    assert timers.statistics().fire_errors == 1
    assert "timer delivery failed" in caplog.text


async def test_negative_delay_and_closed_queue_are_rejected() -> None:
    timers = TimerQueue(lambda _message: None)
    with pytest.raises(ValueError, match="delay"):
        timers.schedule_after(-1, "x")
    timers.close()
    with pytest.raises(RuntimeError, match="closed"):
        timers.schedule_after(1, "x")


async def test_scheduling_from_another_thread_raises_wrong_thread() -> None:
    timers = TimerQueue(lambda _message: None)
    timers.schedule_after(1, "bind")
    with pytest.raises(WrongThreadError, match="TimerQueue"):
        await asyncio.to_thread(timers.schedule_after, 1, "x")
    timers.close()


class _RecordedCall:
    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


def test_deadline_timer_rearms_only_when_the_deadline_moves() -> None:
    from lean_p2p.runtime.timers import DeadlineTimer

    scheduled: list[_RecordedCall] = []

    def schedule(deadline: float) -> _RecordedCall:
        scheduled.append(_RecordedCall(deadline))
        return scheduled[-1]

    timer = DeadlineTimer(schedule)
    timer.arm(None)
    assert scheduled == [] and timer.handle is None
    timer.arm(5.0)
    timer.arm(5.0)  # the same deadline after every event costs nothing
    assert [call.deadline for call in scheduled] == [5.0]
    timer.arm(3.0)  # earlier: the old one is cancelled, exactly one stays armed
    assert [(c.deadline, c.cancelled) for c in scheduled] == [(5.0, True), (3.0, False)]
    timer.forget()  # it fired: not cancelled, and the same deadline arms anew
    assert not scheduled[1].cancelled and timer.deadline is None
    timer.arm(3.0)
    assert len(scheduled) == 3
    timer.arm(None)
    assert scheduled[2].cancelled and timer.handle is None
    timer.cancel()  # idempotent

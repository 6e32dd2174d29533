"""Actors: send/call, timers through the mailbox, supervision, nothing dies silently."""

from __future__ import annotations

import asyncio
import threading

import pytest

from lean_p2p.runtime.actor import (
    Actor,
    ActorExit,
    ActorOverloaded,
    ActorState,
    ActorStopped,
    Supervisor,
)
from lean_p2p.runtime.affinity import WrongThreadError


class Counter(Actor):
    """Adds integers; "get" returns the total; "boom" raises; "tick:<n>" from timers."""

    def __init__(self, name: str = "counter", **kwargs: int) -> None:
        super().__init__(name, **kwargs)
        self.total = 0
        self.seen: list[object] = []
        self.threads: set[int] = set()
        self.stopped = False

    def receive(self, message: object) -> object:
        self.threads.add(threading.get_ident())
        self.seen.append(message)
        if message == "get":
            return self.total
        if message == "boom":
            raise RuntimeError("boom")
        if isinstance(message, int):
            self.total += message
        return None

    def on_stop(self) -> None:
        self.stopped = True


async def test_send_then_call_sees_the_effect_of_the_sends() -> None:
    actor = Counter()
    for number in range(10):
        assert actor.send(number)
    assert await actor.call("get") == 45
    assert actor.threads == {threading.get_ident()}
    await actor.stop()


async def test_send_and_call_from_foreign_threads() -> None:
    actor = Counter()

    def produce() -> object:
        for _ in range(100):
            actor.send(1)
        return actor.call_threadsafe("get").result(timeout=30)

    results = await asyncio.gather(*(asyncio.to_thread(produce) for _ in range(4)))
    assert await actor.call("get") == 400
    assert all(isinstance(result, int) and 100 <= result <= 400 for result in results)
    assert actor.threads == {threading.get_ident()}
    await actor.stop()


async def test_an_exception_answering_a_call_goes_to_the_caller_and_the_actor_lives() -> None:
    actor = Counter()
    with pytest.raises(RuntimeError, match="boom"):
        await actor.call("boom")
    actor.send(5)
    assert await actor.call("get") == 5
    assert actor.statistics().call_errors == 1
    assert actor.state is ActorState.RUNNING
    await actor.stop()


async def test_send_after_delivers_through_the_mailbox_in_deadline_order() -> None:
    actor = Counter()
    actor.send_after(0.02, "tick:2")
    actor.send_after(0.01, "tick:1")
    cancelled = actor.send_after(0.005, "tick:cancelled")
    cancelled.cancel()
    for _ in range(5_000):
        if len(actor.seen) == 2:
            break
        await asyncio.sleep(0.001)
    assert actor.seen == ["tick:1", "tick:2"]
    stats = actor.statistics()
    assert (stats.timers_fired, stats.timers_cancelled, stats.timers_pending) == (2, 1, 0)
    await actor.stop()


async def test_graceful_stop_handles_every_accepted_message_and_cancels_timers() -> None:
    actor = Counter()
    for number in range(100):
        actor.send(number)
    actor.send_after(60, "never")
    exit_reason = await actor.stop()
    assert exit_reason == ActorExit("counter", expected=True)
    assert actor.total == 4950
    assert actor.stopped
    stats = actor.statistics()
    assert stats.timers_cancelled == 1
    assert stats.state is ActorState.STOPPED
    with pytest.raises(ActorStopped):
        actor.send(1)
    with pytest.raises(ActorStopped):
        await actor.call("get")
    with pytest.raises(ActorStopped):
        actor.send_after(1, "x")
    assert await actor.stop() == exit_reason  # idempotent


async def test_a_crash_is_reported_to_the_supervisor_with_error_and_message() -> None:
    failures: list[ActorExit] = []
    supervisor = Supervisor(on_failure=failures.append)
    actor = supervisor.watch(Counter())
    actor.send("boom")
    failure = await supervisor.wait_failure()
    assert failure.actor == "counter"
    assert not failure.expected
    assert isinstance(failure.error, RuntimeError)
    assert failure.message == "boom"
    assert failures == [failure]
    assert actor.state is ActorState.CRASHED
    assert actor.stopped  # on_stop ran


async def test_messages_after_a_crash_are_discarded_counted_and_calls_fail() -> None:
    actor = Counter()
    actor.send("boom")
    actor.send(1)  # accepted before the mailbox closes: discarded and counted
    pending_call = asyncio.ensure_future(actor.call("get"))
    exit_reason = await actor.wait_exit()
    assert not exit_reason.expected
    with pytest.raises(ActorStopped):
        await pending_call
    assert actor.statistics().discarded == 2
    assert actor.total == 0


async def test_a_failing_task_crashes_the_actor_and_is_reported() -> None:
    supervisor = Supervisor()
    actor = supervisor.watch(Counter())

    async def fail() -> None:
        await asyncio.sleep(0)
        raise ValueError("task failed")

    actor.start_task(fail(), "failing")
    failure = await supervisor.wait_failure()
    assert isinstance(failure.error, ValueError)
    assert actor.statistics().tasks == 0


async def test_a_task_cancelled_by_someone_else_is_an_unexpected_exit() -> None:
    actor = Counter()
    task = actor.start_task(asyncio.sleep(60), "sleeper")
    await asyncio.sleep(0)
    task.cancel()
    exit_reason = await actor.wait_exit()
    assert not exit_reason.expected
    assert isinstance(exit_reason.error, asyncio.CancelledError)


async def test_stop_cancels_and_awaits_the_actors_tasks() -> None:
    actor = Counter()
    task = actor.start_task(asyncio.sleep(60), "sleeper")
    exit_reason = await actor.stop()
    assert exit_reason.expected
    assert task.cancelled()
    with pytest.raises(ActorStopped):
        actor.start_task(asyncio.sleep(0), "late")


async def test_a_stop_the_supervisor_did_not_ask_for_is_reported_as_a_failure() -> None:
    supervisor = Supervisor()
    actor = supervisor.watch(Counter())
    await actor.stop()
    failure = await supervisor.wait_failure()
    assert failure.actor == "counter" and not failure.expected


async def test_stop_all_is_not_a_failure() -> None:
    supervisor = Supervisor()
    first = supervisor.watch(Counter("first"))
    second = supervisor.watch(Counter("second"))
    exits = await supervisor.stop_all()
    assert [exit_reason.actor for exit_reason in exits] == ["second", "first"]
    assert supervisor.failures == []
    assert first.state is second.state is ActorState.STOPPED


async def test_a_crash_while_stopping_makes_the_exit_unexpected() -> None:
    actor = Counter()
    actor.send("boom")
    exit_reason = await actor.stop()
    assert not exit_reason.expected
    assert isinstance(exit_reason.error, RuntimeError)


async def test_a_failing_on_stop_makes_a_graceful_stop_unexpected() -> None:
    class BadStop(Counter):
        def on_stop(self) -> None:
            raise OSError("cleanup failed")

    exit_reason = await BadStop().stop()
    assert not exit_reason.expected
    assert isinstance(exit_reason.error, OSError)


async def test_a_full_message_lane_rejects_sends_and_calls() -> None:
    actor = Counter(capacity=2)
    assert actor.send(1) and actor.send(2)
    assert not actor.send(3)
    with pytest.raises(ActorOverloaded):
        await actor.call("get")
    assert actor.statistics().mailbox_rejected == 2
    await actor.stop()
    assert actor.total == 3


async def test_a_watcher_added_after_exit_is_still_told() -> None:
    actor = Counter()
    await actor.stop()
    told: asyncio.Future[ActorExit] = asyncio.get_running_loop().create_future()
    actor.watch(told.set_result)
    assert (await told).expected


async def test_send_after_from_a_foreign_thread_raises_wrong_thread() -> None:
    actor = Counter()
    with pytest.raises(WrongThreadError, match=r"Counter\.send"):
        await asyncio.to_thread(actor.send_after, 1, "x")
    await actor.stop()


async def test_the_base_actor_must_implement_receive() -> None:
    actor = Actor("bare")
    actor.send("anything")
    exit_reason = await actor.wait_exit()
    assert isinstance(exit_reason.error, NotImplementedError)


async def test_a_caller_that_gives_up_does_not_hurt_the_actor() -> None:
    actor = Counter()
    call = asyncio.ensure_future(actor.call("get"))
    await asyncio.sleep(0)  # the call is enqueued; cancel it before the drain answers
    call.cancel()
    actor.send(7)
    assert await actor.call("get") == 7  # the abandoned reply was dropped quietly
    assert call.cancelled()
    assert actor.state is ActorState.RUNNING
    await actor.stop()

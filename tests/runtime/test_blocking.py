"""BlockingMailbox (janus): backpressure, timeouts, close contract, errors."""

from __future__ import annotations

import asyncio
import threading

import pytest

from lean_p2p.runtime.affinity import WrongThreadError
from lean_p2p.runtime.blocking import BlockingMailbox
from lean_p2p.runtime.mailbox import HandlerFailure, MailboxClosed, UnknownLaneError


async def test_items_from_threads_are_handled_in_order_on_the_loop_thread() -> None:
    seen: list[tuple[str, object]] = []
    threads: set[int] = set()

    def handler(lane: str, item: object) -> None:
        threads.add(threading.get_ident())
        seen.append((lane, item))

    mailbox = BlockingMailbox(["a", "b"], handler, capacity=8)

    def produce() -> None:
        for number in range(200):
            assert mailbox.put("a" if number % 2 else "b", number)

    await asyncio.to_thread(produce)
    await mailbox.aclose()
    assert [item for _, item in seen] == list(range(200))
    assert threads == {threading.get_ident()}
    stats = mailbox.statistics()
    assert stats.accepted == {"a": 100, "b": 100} == stats.handled


async def test_a_full_mailbox_blocks_the_producer_until_the_loop_makes_room() -> None:
    mailbox = BlockingMailbox(["a"], lambda _lane, _item: None, capacity=1)
    # The loop is busy in this coroutine (no await), so the consumer cannot run yet.
    assert mailbox.put_nowait("a", 1)
    assert not mailbox.put_nowait("a", 2)  # full: rejected, counted
    done = threading.Event()

    def blocked_put() -> None:
        mailbox.put("a", 3)
        done.set()

    producer = threading.Thread(target=blocked_put)
    producer.start()
    await asyncio.to_thread(producer.join)  # yields: the consumer makes room
    assert done.is_set()
    await mailbox.aclose()
    stats = mailbox.statistics()
    assert stats.rejected_full == {"a": 1}
    assert stats.handled == {"a": 2}


async def test_put_times_out_and_counts_it() -> None:
    mailbox = BlockingMailbox(["a"], lambda _lane, _item: None, capacity=1)
    mailbox.put_nowait("a", 1)
    # The loop does not yield while the thread waits: the timeout must expire.
    producer_result: list[bool] = []
    producer = threading.Thread(target=lambda: producer_result.append(mailbox.put("a", 2, 0.01)))
    producer.start()
    producer.join()
    assert producer_result == [False]
    assert mailbox.statistics().timed_out == {"a": 1}
    await mailbox.aclose()


async def test_close_wakes_blocked_producers_with_mailbox_closed_and_handles_accepted() -> None:
    handled: list[object] = []
    mailbox = BlockingMailbox(["a"], lambda _lane, item: handled.append(item), capacity=1)
    mailbox.put_nowait("a", "accepted")
    errors: list[BaseException] = []
    started = threading.Event()

    def blocked_put() -> None:
        started.set()
        try:
            mailbox.put("a", "refused")
        except MailboxClosed as error:
            errors.append(error)

    producer = threading.Thread(target=blocked_put)
    producer.start()
    started.wait()
    # Racing: the put either got in before close (then it is handled) or is refused.
    await mailbox.aclose()
    await asyncio.to_thread(producer.join)
    assert handled[0] == "accepted"
    assert (handled[1:] == ["refused"]) != (len(errors) == 1)
    with pytest.raises(MailboxClosed):
        await asyncio.to_thread(mailbox.put, "a", "late")
    with pytest.raises(MailboxClosed):
        mailbox.put_nowait("a", "late")


async def test_put_on_the_loop_thread_is_refused_because_it_could_deadlock() -> None:
    mailbox = BlockingMailbox(["a"], lambda _lane, _item: None)
    with pytest.raises(WrongThreadError, match="put_nowait"):
        mailbox.put("a", 1)
    assert mailbox.put_nowait("a", 1)
    await mailbox.aclose()


async def test_handler_errors_are_reported_and_do_not_stop_the_consumer() -> None:
    failures: list[HandlerFailure] = []
    handled: list[object] = []

    def handler(_lane: str, item: object) -> None:
        if item == 1:
            raise ValueError("bad")
        handled.append(item)

    mailbox = BlockingMailbox(["a"], handler, on_handler_error=failures.append)
    for number in range(3):
        mailbox.put_nowait("a", number)
    await mailbox.aclose()
    assert handled == [0, 2]
    assert [failure.item for failure in failures] == [1]
    assert mailbox.statistics().handler_errors == 1


async def test_invalid_configuration_and_unknown_lanes_are_rejected() -> None:
    with pytest.raises(ValueError, match="unique"):
        BlockingMailbox(["a", "a"], lambda _lane, _item: None)
    with pytest.raises(ValueError, match="capacity"):
        BlockingMailbox(["a"], lambda _lane, _item: None, capacity=0)
    mailbox = BlockingMailbox(["a"], lambda _lane, _item: None)
    with pytest.raises(UnknownLaneError):
        mailbox.put_nowait("b", 1)
    await mailbox.aclose()
    assert mailbox.statistics().as_dict()["closed"]


@pytest.mark.stress
async def test_eight_blocking_producers_through_a_tiny_queue_lose_nothing() -> None:
    producers, events = 8, 5_000
    received: list[list[int]] = [[] for _ in range(producers)]

    def handler(_lane: str, item: object) -> None:
        assert isinstance(item, tuple)
        received[item[0]].append(item[1])

    mailbox = BlockingMailbox(["a"], handler, capacity=16)

    def produce(producer: int) -> None:
        for sequence in range(events):
            assert mailbox.put("a", (producer, sequence), timeout=30)

    await asyncio.gather(*(asyncio.to_thread(produce, p) for p in range(producers)))
    await mailbox.aclose()
    assert all(sequences == list(range(events)) for sequences in received)
    assert mailbox.statistics().handled == {"a": producers * events}

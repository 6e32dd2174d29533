"""Actors and timers under load: many senders, many timers, random cancellations."""

from __future__ import annotations

import asyncio
import random
import threading
from typing import cast

import pytest

from lean_p2p.runtime import affinity
from lean_p2p.runtime.actor import Actor
from lean_p2p.runtime.timers import TimerHandle, TimerQueue

pytestmark = pytest.mark.stress


class Ledger(Actor):
    """Per-sender running state; "snapshot" returns it (answers a call)."""

    def __init__(self, senders: int) -> None:
        super().__init__("ledger", capacity=1 << 20)
        self.next_sequence = [0] * senders
        self.out_of_order = 0
        self.total = 0
        self.loop_thread = threading.get_ident()
        self.foreign_receives = 0

    def receive(self, message: object) -> object:
        if threading.get_ident() != self.loop_thread:
            self.foreign_receives += 1
        if message == "snapshot":
            return (list(self.next_sequence), self.total, self.out_of_order)
        assert isinstance(message, tuple)
        sender, sequence, amount = message
        if sequence != self.next_sequence[sender]:
            self.out_of_order += 1
        self.next_sequence[sender] = sequence + 1
        self.total += amount
        return None


async def test_eight_sender_threads_and_calls_keep_per_sender_order_and_the_total() -> None:
    senders, messages = 8, 20_000
    ledger = Ledger(senders)
    violations_before = affinity.violation_count()
    rng = random.Random(5)
    amounts = [[rng.randint(1, 9) for _ in range(messages)] for _ in range(senders)]

    def send_all(sender: int) -> object:
        for sequence, amount in enumerate(amounts[sender]):
            assert ledger.send((sender, sequence, amount))
            if sequence % 5_000 == 0:  # calls interleaved with sends from the same thread
                snapshot = ledger.call_threadsafe("snapshot").result(timeout=60)
                assert isinstance(snapshot, tuple)
                assert snapshot[0][sender] == sequence + 1  # our earlier sends were handled
        return None

    await asyncio.gather(*(asyncio.to_thread(send_all, sender) for sender in range(senders)))
    snapshot = await ledger.call("snapshot")
    assert isinstance(snapshot, tuple)
    next_sequence, total, out_of_order = snapshot
    assert next_sequence == [messages] * senders
    assert total == sum(map(sum, amounts))
    assert out_of_order == 0
    assert ledger.foreign_receives == 0
    assert affinity.violation_count() == violations_before
    assert (await ledger.stop()).expected


async def test_thousands_of_timers_with_random_cancellations() -> None:
    loop = asyncio.get_running_loop()
    fired: list[tuple[float, int]] = []
    timers = TimerQueue(lambda message: fired.append((loop.time(), cast(int, message))))
    rng = random.Random(11)
    handles: list[TimerHandle] = [
        timers.schedule_after(rng.random() * 0.2, number) for number in range(5_000)
    ]
    cancelled = {number for number in range(5_000) if rng.random() < 0.3}
    for number in cancelled:
        assert handles[number].cancel()
    for _ in range(2_000):
        if timers.statistics().pending == 0:
            break
        await asyncio.sleep(0.005)
    fired_messages = [message for _, message in fired]
    assert set(fired_messages) == set(range(5_000)) - cancelled
    assert len(fired_messages) == len(set(fired_messages))  # each at most once
    deadlines = [handles[message].deadline for message in fired_messages]
    assert deadlines == sorted(deadlines)  # fired in deadline order
    assert all(when >= handles[message].deadline for when, message in fired)
    stats = timers.statistics()
    assert (stats.fired, stats.cancelled, stats.pending) == (
        5_000 - len(cancelled),
        len(cancelled),
        0,
    )
    # One armed call_at at a time: re-arms happen per firing batch, not per timer scheduled.
    assert stats.arms < 5_000

"""Lost-wakeup regression test: widen both race windows and count stranded events.

The mailbox publishes an item before it tests-and-sets the armed flag, and the drain
clears the flag before it reads the lanes. A race hook sleeps inside both windows (on
the producer thread between publish and test, on the loop thread between clear and
read), so the interleavings that would lose a wakeup happen often. After every burst
the test waits until no drain is pending; an item still queued then is stranded: no
wakeup will ever come for it.

The same harness runs against the two wrong orders (subclasses below that swap the
steps) and must find stranded events there: that shows the test can fail.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Callable
from typing import cast

import pytest

from lean_p2p.runtime.mailbox import LaneSpec, Mailbox, MailboxClosed, OverflowPolicy

LANES = [LaneSpec("events", 100_000, OverflowPolicy.REJECT_NEWEST, 64)]


class FlagTestedBeforePublish(Mailbox):
    """Wrong order 1: test-and-set the flag, then publish."""

    def put(self, lane: str, item: object) -> bool:
        target = self._lanes_by_name[lane]
        if self._closed:
            raise MailboxClosed("closed")
        if self._idle_token:
            self._arm_from_producer()
        if self._race_hook is not None:
            self._race_hook("published")  # here the window sits between test and publish
        target.items.append(item)
        return True


class FlagClearedAfterReading(Mailbox):
    """Wrong order 2: read the lanes, then clear the flag."""

    def _drain(self) -> None:
        self._drains += 1
        budget_left = self._serve(self._budget)
        if self._race_hook is not None:
            self._race_hook("cleared")  # here the window sits between read and clear
        self._idle_token.append(None)
        if budget_left == 0:
            self._rearm_from_loop()


def widening_hook(seed: int) -> Callable[[str], None]:
    """Sleep up to 300 µs inside either window (sleep releases the GIL)."""
    generator = random.Random(seed)
    lock_free_random = generator.random  # one hook per mailbox; producer and loop share it

    def hook(_where: str) -> None:
        time.sleep(lock_free_random() * 300e-6)

    return hook


async def count_stranded_bursts(
    mailbox_type: type[Mailbox],
    bursts: int,
    seed: int,
    *,
    stop_at_first: bool = False,
    batched: bool = False,
    yielding: bool = False,
) -> int:
    handled: list[int] = []
    mailbox = mailbox_type(
        LANES, lambda _lane, item: handled.append(cast(int, item)), race_hook=widening_hook(seed)
    )
    burst_sizes = random.Random(seed + 1)
    stranded_bursts = 0
    sent = 0
    for burst in range(bursts):
        size = burst_sizes.randint(1, 4)

        def produce(first: int = sent, size: int = size) -> None:
            if batched:
                # Two batches, so the second can land while the first one's drain runs.
                middle = first + size // 2
                mailbox.put_many("events", list(range(first, middle)))
                mailbox.put_many("events", list(range(middle, first + size)))
                return
            if yielding:
                # The put that wakes the loop then waits for its drain (bounded).
                send = mailbox.sender("events", yield_to_loop_s=0.001)
                for number in range(first, first + size):
                    send(number)
                return
            for number in range(first, first + size):
                mailbox.put("events", number)

        producer = threading.Thread(target=produce, name=f"producer-{burst}")
        producer.start()
        await asyncio.to_thread(producer.join)
        sent += size
        # Every put has returned. Yield until no drain is pending (token back home).
        for _ in range(100_000):
            if mailbox._idle_token:
                break
            await asyncio.sleep(0)
        else:
            raise AssertionError("a drain stayed pending forever")
        if mailbox.depth("events"):
            stranded_bursts += 1
            mailbox._serve(1_000_000)  # rescue them so the next burst starts clean
            if stop_at_first:
                break
    assert sorted(handled) == list(range(sent))  # nothing lost once rescued
    return stranded_bursts


@pytest.mark.stress
async def test_the_right_order_never_strands_an_event() -> None:
    assert await count_stranded_bursts(Mailbox, bursts=1_500, seed=2) == 0


@pytest.mark.stress
@pytest.mark.parametrize("wrong_order", [FlagTestedBeforePublish, FlagClearedAfterReading])
async def test_the_harness_catches_both_wrong_orders(wrong_order: type[Mailbox]) -> None:
    # Typically 5-40% of bursts strand; stop at the first to keep the test short.
    assert await count_stranded_bursts(wrong_order, bursts=3_000, seed=3, stop_at_first=True) == 1


@pytest.mark.stress
async def test_the_right_order_never_strands_a_batch() -> None:
    """put_many publishes the whole batch before its one test-and-set."""
    assert await count_stranded_bursts(Mailbox, bursts=800, seed=4, batched=True) == 0


@pytest.mark.stress
async def test_the_right_order_never_strands_an_event_from_a_yielding_sender() -> None:
    """A yielding sender publishes and tests exactly as put does; its wait comes after."""
    assert await count_stranded_bursts(Mailbox, bursts=800, seed=6, yielding=True) == 0


@pytest.mark.stress
async def test_the_harness_catches_a_wrong_order_with_batches_too() -> None:
    stranded = await count_stranded_bursts(
        FlagClearedAfterReading, bursts=3_000, seed=5, stop_at_first=True, batched=True
    )
    assert stranded == 1

"""Race-condition stress tests (time-bounded, part of the default suite).

1, 2 and 8 producer threads with random bursts and sleeps; producers racing close();
3x overload of the standard lanes. The checker's own failure detection is tested with
deliberately faulty producers, so a clean stress result means something.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Sequence

import pytest

from lean_p2p.runtime import LEAN_LANES, Mailbox
from lean_p2p.runtime.stress import (
    ProducerOutcome,
    StressConfig,
    StressResult,
    ThreadProducers,
    run_stress,
    run_stress_async,
    sequential_model,
)

pytestmark = pytest.mark.stress


def assert_clean(result: StressResult) -> None:
    summary = result.as_dict()
    summary.pop("mailbox")
    assert result.ok, summary
    assert result.handled == result.events
    stats = result.mailbox
    assert stats["handled"] == stats["accepted"] == result.events
    assert stats["dropped"] == result.rejected_retries  # every rejection was retried
    assert stats["handler_errors"] == 0


@pytest.mark.parametrize("producers", [1, 2, 8])
@pytest.mark.parametrize("seed", [1, 2])
async def test_every_event_exactly_once_in_order_with_bursts_and_sleeps(
    producers: int, seed: int
) -> None:
    config = StressConfig(
        events=500_000,
        producers=producers,
        seed=seed,
        burst_max=128,
        sleep_probability=0.1,
        sleep_max_s=0.0005,
        timeout_s=120,
    )
    result = await run_stress_async(config)
    assert_clean(result)
    assert result.events == 500_000
    assert result.mailbox["wakeups"] <= result.mailbox["drains"]


@pytest.mark.parametrize("producers", [2, 8])
def test_stress_on_uvloop(producers: int) -> None:
    result = run_stress(StressConfig(events=1_000_000, producers=producers, loop="uvloop"))
    assert_clean(result)
    assert result.loop == "uvloop"


async def test_a_tiny_budget_and_tiny_lanes_still_lose_nothing() -> None:
    # Budget 1 forces a call_soon re-arm after every item; full lanes force retries.
    config = StressConfig(events=30_000, producers=8, budget=1, sleep_probability=0, seed=7)
    result = await run_stress_async(config)
    assert_clean(result)
    assert result.mailbox["budget_exhausted"] > 0


@pytest.mark.parametrize("close_after", [1, 5_000, 40_000])
@pytest.mark.parametrize("producers", [2, 8])
async def test_producers_racing_close_lose_no_accepted_event(
    producers: int, close_after: int
) -> None:
    config = StressConfig(
        events=400_000,
        producers=producers,
        close_after=close_after,
        seed=close_after,
        timeout_s=120,
    )
    result = await run_stress_async(config)
    assert_clean(result)
    assert result.mailbox["closed"]
    assert close_after <= result.events < 400_000  # close really raced the producers


class FaultyProducers:
    """One producer whose put sequence is wrong in a chosen way."""

    kind = "faulty"
    count = 1

    def __init__(self, fault: str) -> None:
        self.fault = fault
        self._outcome: ProducerOutcome | None = None
        self._thread: threading.Thread | None = None

    def start(
        self,
        put: Callable[[str, object], bool],
        lane_for: Callable[[int], str],
        first_id: int,
        plan: Sequence[int],
        config: StressConfig,
    ) -> None:
        sequences = list(range(plan[0]))
        if self.fault == "duplicate":
            sequences.insert(10, 5)
        elif self.fault == "reorder":
            sequences[10], sequences[11] = sequences[11], sequences[10]
        elif self.fault == "lose":
            sequences.remove(10)

        def produce() -> None:
            for sequence in sequences:
                put(lane_for(first_id), (first_id, sequence))
            self._outcome = ProducerOutcome(first_id, self.kind, plan[0], 0, False)

        self._thread = threading.Thread(target=produce)
        self._thread.start()

    def wait(self) -> list[ProducerOutcome]:
        assert self._thread is not None
        self._thread.join()
        assert self._outcome is not None
        return [self._outcome]


@pytest.mark.parametrize(
    ("fault", "field"), [("duplicate", "duplicated"), ("reorder", "reordered"), ("lose", "lost")]
)
async def test_the_checker_catches_each_kind_of_fault(fault: str, field: str) -> None:
    result = await run_stress_async(StressConfig(events=100), [FaultyProducers(fault)])
    assert not result.ok
    assert result.as_dict()[field] == 1
    # Reordering or losing also changes the rolling state; a duplicate is skipped.
    assert result.state_mismatches == (0 if fault == "duplicate" else 1)


def test_sequential_model_depends_on_order() -> None:
    assert sequential_model(3) != sequential_model(2)
    assert sequential_model(0) == 0


async def test_three_times_overload_is_bounded_and_accounted() -> None:
    """Attestations arrive 3x faster than the handler serves them; blocks trickle in."""
    attestations_capacity = 16_384
    flood = 3 * attestations_capacity
    handled: dict[str, list[int]] = {"blocks": [], "attestations": []}
    slow_down = threading.Event()

    def handler(lane: str, item: object) -> None:
        assert isinstance(item, int)
        handled[lane].append(item)
        if slow_down.is_set():
            # A slow handler: the loop serves far fewer items than arrive.
            deadline = time.perf_counter() + 20e-6
            while time.perf_counter() < deadline:
                pass

    mailbox = Mailbox(LEAN_LANES, handler)
    slow_down.set()

    def produce() -> None:
        for number in range(flood):
            mailbox.put("attestations", number)
            if number % 64 == 0:
                assert mailbox.put("blocks", number // 64)

    await asyncio.to_thread(produce)
    await mailbox.aclose()
    stats = mailbox.statistics()
    attestations = stats.lane("attestations")
    blocks = stats.lane("blocks")
    # Every put accounted for: handled or evicted, nothing left, nothing else.
    assert attestations.accepted == flood
    assert attestations.handled + attestations.evicted == flood
    assert attestations.evicted > 0  # the overload really happened
    assert attestations.high_water <= attestations_capacity + 1
    assert len(handled["attestations"]) == attestations.handled
    # Shed oldest first: the freshest capacity's worth all survived.
    survivors = set(handled["attestations"])
    assert set(range(flood - attestations_capacity, flood)) <= survivors
    # The block lane dropped nothing and kept its order.
    assert blocks.dropped == 0
    assert handled["blocks"] == list(range(len(handled["blocks"])))
    assert len(handled["blocks"]) == (flood + 63) // 64


def test_thread_producers_report_outcomes_per_producer() -> None:
    group = ThreadProducers(3)
    received: list[tuple[int, int]] = []

    def put(_lane: str, item: object) -> bool:
        assert isinstance(item, tuple)
        received.append(item)
        return True

    group.start(
        put,
        lambda producer_id: f"lane-{producer_id}",
        first_id=4,
        plan=[3, 2, 1],
        config=StressConfig(sleep_probability=0),
    )
    outcomes = group.wait()
    assert [(o.producer_id, o.accepted) for o in outcomes] == [(4, 3), (5, 2), (6, 1)]
    assert sorted(received) == [(4, 0), (4, 1), (4, 2), (5, 0), (5, 1), (6, 0)]

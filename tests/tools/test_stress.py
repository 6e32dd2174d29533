"""Race-condition stress tests (time-bounded, part of the default suite).

1, 2 and 8 producer threads with random bursts and sleeps; producers racing close();
3x overload of the standard lanes. The checker's own failure detection is tested with
deliberately faulty producers, so a clean stress result means something.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from typing import cast

import pytest

from lean_p2p.runtime.mailbox import Mailbox
from lean_p2p.tools.stress import (
    ProducerOutcome,
    StressConfig,
    StressResult,
    ThreadProducers,
    run_overload_async,
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
        events=800_000,
        producers=producers,
        seed=seed,
        burst_max=128,
        sleep_probability=0.1,
        sleep_max_s=0.0005,
        timeout_s=120,
    )
    result = await run_stress_async(config)
    assert_clean(result)
    assert result.events == 800_000
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


async def test_a_stop_closes_the_mailbox_under_the_producers_and_loses_nothing() -> None:
    # Ctrl-C's path: the stop is already set when the run starts, so the mailbox closes
    # at once, every producer stops at MailboxClosed, and what was accepted is checked.
    stop = asyncio.Event()
    stop.set()
    config = StressConfig(events=400_000, producers=4, timeout_s=120)
    result = await run_stress_async(config, stop=stop)
    assert result.interrupted
    assert result.as_dict()["interrupted"] is True
    assert_clean(result)
    assert result.mailbox["closed"]
    assert result.events < 400_000


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
        mailbox: Mailbox,
        lane_for: Callable[[int], str],
        first_id: int,
        plan: Sequence[int],
        config: StressConfig,
    ) -> None:
        put = mailbox.put
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

    async def aclose(self) -> None:
        pass

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
    """Attestations offered at 3x what the handler serves; blocks trickle in."""
    result = await run_overload_async(flood_factor=3, service_s=20e-6)
    stats = result.mailbox
    attestations = next(lane for lane in stats["lanes"] if lane["name"] == "attestations")
    blocks = next(lane for lane in stats["lanes"] if lane["name"] == "blocks")
    assert result.overload_factor > 2  # the overload really happened
    # Memory bounded by the capacity (one producer: no overshoot beyond one item).
    assert attestations["high_water"] <= attestations["capacity"] + 1
    # Every put accounted for: handled or evicted, nothing left, nothing else.
    assert attestations["accepted"] == result.attestations_offered
    assert attestations["handled"] + attestations["dropped"]["evicted"] == 3 * 16_384
    assert attestations["dropped"]["evicted"] > 0
    assert stats["depth"] == 0
    # Shed oldest first: the freshest capacity's worth all survived.
    assert result.freshest_survived
    # The block lane dropped nothing and kept its order.
    assert blocks["dropped"] == {"full": 0, "evicted": 0}
    assert result.blocks_in_order
    assert blocks["handled"] == result.blocks_offered == 3 * 16_384 // 64
    assert result.ok


def test_thread_producers_report_outcomes_per_producer() -> None:
    group = ThreadProducers(3)
    received: list[tuple[int, int]] = []

    class Recorder:
        def put(self, _lane: str, item: object) -> bool:
            assert isinstance(item, tuple)
            received.append(item)
            return True

    group.start(
        cast(Mailbox, Recorder()),
        lambda producer_id: f"lane-{producer_id}",
        first_id=4,
        plan=[3, 2, 1],
        config=StressConfig(sleep_probability=0),
    )
    outcomes = group.wait()
    assert [(o.producer_id, o.accepted) for o in outcomes] == [(4, 3), (5, 2), (6, 1)]
    assert sorted(received) == [(4, 0), (4, 1), (4, 2), (5, 0), (5, 1), (6, 0)]

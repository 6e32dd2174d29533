"""Model-based test: the drain's order and accounting equal a sequential model.

Hypothesis generates lanes (capacity, policy, quantum), a budget and a sequence of puts;
all puts happen before the loop runs, so the order is deterministic: each drain starts
a fresh round at the highest-priority lane, serves up to each lane's quantum per round,
and stops at the budget (FIFO lanes serve the oldest, evicting lanes the newest).
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lean_p2p.runtime.mailbox import LaneSpec, Mailbox, OverflowPolicy

POLICIES = list(OverflowPolicy)


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[LaneSpec], int, list[tuple[int, int]]]:
    lane_count = draw(st.integers(1, 4))
    lanes = [
        LaneSpec(
            f"lane-{index}",
            capacity=draw(st.integers(1, 6)),
            policy=draw(st.sampled_from(POLICIES)),
            quantum=draw(st.integers(1, 4)),
        )
        for index in range(lane_count)
    ]
    budget = draw(st.integers(1, 10))
    puts = draw(st.lists(st.integers(0, lane_count - 1), max_size=40))
    return lanes, budget, [(lane, number) for number, lane in enumerate(puts)]


def model(
    lanes: list[LaneSpec], budget: int, puts: list[tuple[int, int]]
) -> tuple[list[int], list[bool], dict[str, tuple[int, int]]]:
    queues: list[deque[int]] = [deque() for _ in lanes]
    results: list[bool] = []
    drops = {spec.name: (0, 0) for spec in lanes}
    for lane, number in puts:
        spec, queue = lanes[lane], queues[lane]
        full, evicted = drops[spec.name]
        if len(queue) >= spec.capacity:
            if spec.policy is OverflowPolicy.REJECT_NEWEST:
                drops[spec.name] = (full + 1, evicted)
                results.append(False)
                continue
            if spec.policy is OverflowPolicy.EVICT_OLDEST:
                queue.popleft()
                drops[spec.name] = (full, evicted + 1)
        queue.append(number)
        results.append(True)
    order: list[int] = []
    while any(queues):
        left = budget
        while left > 0 and any(queues):
            for spec, queue in zip(lanes, queues, strict=True):
                take = min(spec.quantum, left, len(queue))
                for _ in range(take):
                    evicting = spec.policy is OverflowPolicy.EVICT_OLDEST
                    order.append(queue.pop() if evicting else queue.popleft())
                left -= take
                if left == 0:
                    break
    return order, results, drops


@settings(max_examples=150, deadline=None)
@pytest.mark.parametrize("atomic_publish", [True, False], ids=["atomic", "bracketed"])
@given(scenarios())
def test_drain_order_and_accounting_match_the_model(
    atomic_publish: bool, scenario: tuple[list[LaneSpec], int, list[tuple[int, int]]]
) -> None:
    lanes, budget, puts = scenario
    expected_order, expected_results, expected_drops = model(lanes, budget, puts)

    async def run() -> tuple[list[int], list[bool], Mailbox]:
        handled: list[int] = []
        mailbox = Mailbox(
            lanes,
            lambda _lane, item: handled.append(cast(int, item)),
            budget=budget,
            linger_s=0,
            atomic_publish=atomic_publish,
        )
        results = [mailbox.put(lanes[lane].name, number) for lane, number in puts]
        await mailbox.aclose()
        return handled, results, mailbox

    handled, results, mailbox = asyncio.run(run())
    assert results == expected_results
    assert handled == expected_order
    stats = mailbox.statistics()
    for lane in stats.lanes:
        assert (lane.rejected_full, lane.evicted) == expected_drops[lane.name]
        assert lane.accepted == lane.handled + lane.evicted
        assert lane.depth == 0
    assert stats.wakeups == (1 if any(expected_results) else 0)

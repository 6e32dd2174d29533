"""Slot clock arithmetic, including before genesis and at boundaries."""

from __future__ import annotations

import pytest

from lean_p2p.consensus.clock import SlotClock, interval_from_slot, interval_from_unix_time

GENESIS = 1_700_000_000


@pytest.mark.parametrize(
    ("offset_ms", "slot", "interval", "total"),
    [
        (-5_000, 0, 0, 0),
        (0, 0, 0, 0),
        (799, 0, 0, 0),
        (800, 0, 1, 1),
        (3_999, 0, 4, 4),
        (4_000, 1, 0, 5),
        (14_400, 3, 3, 18),
    ],
)
def test_conversions(offset_ms: int, slot: int, interval: int, total: int) -> None:
    clock = SlotClock(GENESIS)
    now_ms = GENESIS * 1000 + offset_ms
    assert clock.current_slot_ms(now_ms) == slot
    assert clock.current_interval_ms(now_ms) == interval
    assert clock.total_intervals_ms(now_ms) == total
    assert clock.total_intervals(now_ms / 1000) == total


def test_slot_and_interval_starts_round_trip() -> None:
    clock = SlotClock(GENESIS)
    for slot in (0, 1, 7, 1000):
        assert clock.current_slot(clock.slot_start(slot)) == slot
        assert clock.total_intervals(clock.interval_start(interval_from_slot(slot))) == slot * 5
    assert interval_from_unix_time(0, 100.0) == 125


def test_seconds_until_next_interval() -> None:
    clock = SlotClock(GENESIS)
    assert clock.seconds_until_next_interval(GENESIS - 2) == pytest.approx(2.0)
    assert clock.seconds_until_next_interval(GENESIS) == pytest.approx(0.8)
    assert clock.seconds_until_next_interval(GENESIS + 0.5) == pytest.approx(0.3)

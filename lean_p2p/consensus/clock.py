"""Slot clock: converts wall time to slots and intervals. Any thread (pure values).

Sans-IO: the clock never reads the time itself; callers pass ``now`` (Unix seconds as a
float, or milliseconds as an int to the ``*_ms`` methods). Before genesis every answer
is 0. Slots last 4 s, split into 5 intervals of 800 ms.
"""

from __future__ import annotations

from dataclasses import dataclass

from lean_p2p.consensus.config import (
    INTERVALS_PER_SLOT,
    MILLISECONDS_PER_INTERVAL,
    MILLISECONDS_PER_SLOT,
)

__all__ = ["SlotClock", "interval_from_slot", "interval_from_unix_time"]


def interval_from_slot(slot: int) -> int:
    """The interval count at the start of ``slot``."""
    return slot * INTERVALS_PER_SLOT


def interval_from_unix_time(genesis_time: int, unix_seconds: float) -> int:
    """Whole intervals elapsed since genesis at ``unix_seconds`` (0 before genesis)."""
    return SlotClock(genesis_time).total_intervals(unix_seconds)


@dataclass(frozen=True, slots=True)
class SlotClock:
    """Time arithmetic for one chain, anchored at ``genesis_time`` (Unix seconds)."""

    genesis_time: int

    def milliseconds_since_genesis(self, now_ms: int) -> int:
        return max(0, now_ms - self.genesis_time * 1000)

    def current_slot_ms(self, now_ms: int) -> int:
        return self.milliseconds_since_genesis(now_ms) // MILLISECONDS_PER_SLOT

    def current_interval_ms(self, now_ms: int) -> int:
        """The interval within the current slot (0..4)."""
        into_slot = self.milliseconds_since_genesis(now_ms) % MILLISECONDS_PER_SLOT
        return into_slot // MILLISECONDS_PER_INTERVAL

    def total_intervals_ms(self, now_ms: int) -> int:
        return self.milliseconds_since_genesis(now_ms) // MILLISECONDS_PER_INTERVAL

    def current_slot(self, now: float) -> int:
        return self.current_slot_ms(_to_ms(now))

    def current_interval(self, now: float) -> int:
        return self.current_interval_ms(_to_ms(now))

    def total_intervals(self, now: float) -> int:
        return self.total_intervals_ms(_to_ms(now))

    def slot_start(self, slot: int) -> float:
        """Unix time (seconds) at which ``slot`` begins."""
        return self.genesis_time + slot * MILLISECONDS_PER_SLOT / 1000

    def interval_start(self, interval: int) -> float:
        """Unix time (seconds) at which the ``interval``-th interval since genesis begins."""
        return self.genesis_time + interval * MILLISECONDS_PER_INTERVAL / 1000

    def seconds_until_next_interval(self, now: float) -> float:
        """Time to the next interval boundary; a whole interval when exactly on one."""
        now_ms = _to_ms(now)
        genesis_ms = self.genesis_time * 1000
        if now_ms < genesis_ms:
            return (genesis_ms - now_ms) / 1000
        into_interval = (now_ms - genesis_ms) % MILLISECONDS_PER_INTERVAL
        return (MILLISECONDS_PER_INTERVAL - into_interval) / 1000


def _to_ms(seconds: float) -> int:
    # Truncates like the spec's int(time * 1000): sub-millisecond precision is dropped.
    return int(seconds * 1000)


assert INTERVALS_PER_SLOT * MILLISECONDS_PER_INTERVAL == MILLISECONDS_PER_SLOT

"""The node's own control events: time and role changes, routed through the mailbox.

Created on the loop thread (clock callbacks, API handlers) or any thread; handled on the
loop thread from the ``control`` lane. Routing them through the mailbox, not calling the
chain directly, is what makes a recording complete: every input that changes state is a
handled mailbox item, so replaying the items replays the node.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ControlEvent", "IntervalTick", "SetAggregator", "TimerExpired"]


@dataclass(frozen=True, slots=True)
class IntervalTick:
    """An interval boundary passed: ``interval`` intervals since genesis at ``time``."""

    time: float  # Unix seconds, as the clock read it when it fired
    interval: int


@dataclass(frozen=True, slots=True)
class TimerExpired:
    """The P2P core's earliest deadline passed (its one armed timer fired)."""

    time: float


@dataclass(frozen=True, slots=True)
class SetAggregator:
    """Turn the aggregator role on or off (from the admin API)."""

    enabled: bool


ControlEvent = IntervalTick | TimerExpired | SetAggregator

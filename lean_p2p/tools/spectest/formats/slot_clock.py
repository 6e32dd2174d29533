"""Spectest plug-in: ``slot_clock`` vectors (slot / interval / time conversions).

Runs on the spectest's thread. Each vector names one operation (``kind``), its inputs,
the clock configuration it assumes (checked against ours) and the expected output.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from lean_p2p.consensus.clock import SlotClock, interval_from_slot
from lean_p2p.consensus.config import (
    INTERVALS_PER_SLOT,
    MILLISECONDS_PER_INTERVAL,
    SECONDS_PER_SLOT,
)
from lean_p2p.tools.spectest.runner import VectorFailure, VectorSkipped

__all__ = ["FORMAT", "run_vector"]

FORMAT: Final = "slot_clock"


def _whole_milliseconds(value: float) -> int:
    if value != int(value):
        raise VectorFailure(f"timestamp {value!r} is not a whole number of milliseconds")
    return int(value)


def run_vector(test_id: str, fixture: Mapping[str, Any]) -> None:
    config = fixture.get("config") or {}
    ours = {
        "secondsPerSlot": SECONDS_PER_SLOT,
        "intervalsPerSlot": INTERVALS_PER_SLOT,
        "millisecondsPerInterval": MILLISECONDS_PER_INTERVAL,
    }
    for key, value in config.items():
        if ours.get(key) != value:
            raise VectorFailure(f"config {key}={value}, this client uses {ours.get(key)}")
    operation = fixture["operation"]
    expected: Mapping[str, int] = fixture["output"]
    kind = operation["kind"]
    clock = SlotClock(int(operation.get("genesisTime", 0)))
    actual: dict[str, int]
    match kind:
        case "from_slot":
            actual = {"interval": interval_from_slot(int(operation["slot"]))}
        case "from_unix_time":
            seconds = operation["unixSeconds"]
            actual = {"interval": clock.total_intervals_ms(_whole_milliseconds(seconds * 1000))}
        case "current_slot":
            now_ms = _whole_milliseconds(operation["currentTimeMilliseconds"])
            actual = {"slot": clock.current_slot_ms(now_ms)}
        case "current_interval":
            now_ms = _whole_milliseconds(operation["currentTimeMilliseconds"])
            actual = {"interval": clock.current_interval_ms(now_ms)}
        case "total_intervals":
            now_ms = _whole_milliseconds(operation["currentTimeMilliseconds"])
            actual = {"totalIntervals": clock.total_intervals_ms(now_ms)}
        case _:
            raise VectorSkipped(f"unknown slot_clock operation {kind!r}")
    if actual != dict(expected):
        raise VectorFailure(f"{kind}: got {actual}, expected {dict(expected)}")

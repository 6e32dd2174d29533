"""The node's system clock, and its skew for fault scenarios."""

from __future__ import annotations

import asyncio
import time

from lean_p2p.node.clock import SystemClock


async def test_a_skewed_clock_reads_ahead_and_calls_back_at_its_own_time() -> None:
    clock = SystemClock(skew_s=100.0)
    assert clock.now() - time.time() >= 99.0  # ahead by the skew (less the read's time)
    fired = asyncio.Event()
    before = time.monotonic()
    # 0.05 s after the skewed now: the callback comes 0.05 s from now, not 100 s.
    clock.call_at(clock.now() + 0.05, fired.set)
    await asyncio.wait_for(fired.wait(), 10)
    assert time.monotonic() - before < 10
    assert abs(SystemClock().now() - time.time()) < 1.0  # unskewed by default

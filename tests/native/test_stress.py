"""Native pthread producers in the mailbox stress scenario (``lean-p2p stress --native``).

Runs the scenario on a fresh loop in the test's thread; the native producers are the
C driver compiled by the tests.
"""

from __future__ import annotations

import pytest

from lean_p2p.native.producers import ProducerDriver
from lean_p2p.native.stress import NativeProducers
from lean_p2p.runtime.stress import StressConfig, ThreadProducers, run_stress


@pytest.mark.stress
@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_native_and_python_producers_exactly_once_in_order(
    producer_driver: ProducerDriver, loop: str
) -> None:
    config = StressConfig(events=200_000, producers=8, loop=loop, timeout_s=120)  # type: ignore[arg-type]
    result = run_stress(config, [NativeProducers(4, driver=producer_driver), ThreadProducers(4)])
    assert result.producer_kinds == {"native": 4, "thread": 4}
    assert (result.lost, result.duplicated, result.reordered) == (0, 0, 0)
    assert result.state_mismatches == 0
    assert result.events == result.handled == 200_000
    assert result.ok


@pytest.mark.stress
def test_close_while_native_producers_push_loses_nothing_accepted(
    producer_driver: ProducerDriver,
) -> None:
    config = StressConfig(events=400_000, producers=6, close_after=50_000, timeout_s=120)
    result = run_stress(config, [NativeProducers(3, driver=producer_driver), ThreadProducers(3)])
    assert result.ok, result.as_dict()
    assert 50_000 <= result.handled < 400_000
    assert result.lost == 0

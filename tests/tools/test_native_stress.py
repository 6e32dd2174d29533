"""Native pthread producers in the mailbox stress scenario (``lean-p2p stress --native``).

Runs the scenario on a fresh loop in the test's thread; the native producers are the
C driver compiled by the tests.
"""

from __future__ import annotations

import asyncio

import pytest

from lean_p2p.native import EventKind, NativeEvent
from lean_p2p.runtime import MailboxClosed
from lean_p2p.tools.native_producers import STAMP, ProducerDriver
from lean_p2p.tools.native_stress import NATIVE_PATHS, NativeProducers, _Feeder
from lean_p2p.tools.stress import StressConfig, ThreadProducers, run_stress
from tests.native.delivery import busy_python


@pytest.mark.stress
@pytest.mark.parametrize("path", NATIVE_PATHS)
@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_native_and_python_producers_exactly_once_in_order(
    producer_driver: ProducerDriver, loop: str, path: str
) -> None:
    config = StressConfig(events=200_000, producers=8, loop=loop, timeout_s=120)  # type: ignore[arg-type]
    native = NativeProducers(4, driver=producer_driver, path=path)
    result = run_stress(config, [native, ThreadProducers(4)])
    assert result.producer_kinds == {"native": 4, "thread": 4}
    assert (result.lost, result.duplicated, result.reordered) == (0, 0, 0)
    assert result.state_mismatches == 0
    assert result.events == result.handled == 200_000
    assert result.ok


@pytest.mark.stress
@pytest.mark.parametrize("path", NATIVE_PATHS)
def test_close_while_native_producers_push_loses_nothing_accepted(
    producer_driver: ProducerDriver, path: str
) -> None:
    config = StressConfig(events=400_000, producers=6, close_after=50_000, timeout_s=120)
    native = NativeProducers(3, driver=producer_driver, path=path)
    result = run_stress(config, [native, ThreadProducers(3)])
    assert result.ok, result.as_dict()
    assert 50_000 <= result.handled < 400_000
    assert result.lost == 0


def _event(producer: int, sequence: int) -> NativeEvent:
    payload = STAMP.pack(producer, 0, sequence, 0)
    return NativeEvent(EventKind.GOSSIP, 2, (producer << 40) | sequence, b"", payload)


async def test_feeder_holds_events_a_full_lane_refused_and_keeps_their_order() -> None:
    accepted: list[tuple[str, object]] = []
    room = [1]

    def put(lane: str, item: object) -> bool:
        if room[0] == 0:
            return False
        room[0] -= 1
        accepted.append((lane, item))
        return True

    feeder = _Feeder(
        put, lambda producer_id: f"lane-{producer_id % 2}", 10, 2, asyncio.get_running_loop()
    )
    for sequence in range(3):
        feeder.sink(_event(0, sequence))
    feeder.sink(_event(1, 0))
    assert accepted == [("lane-0", (10, 0))]
    assert feeder.admit() == 0  # still full: the ring must hold everything else
    room[0] = 10
    assert feeder.admit() > 0
    assert accepted == [
        ("lane-0", (10, 0)),
        ("lane-0", (10, 1)),
        ("lane-0", (10, 2)),
        ("lane-1", (11, 0)),
    ]
    assert feeder.delivered == [3, 1]


async def test_feeder_stops_at_a_closed_mailbox() -> None:
    closed: list[bool] = []

    def put(_lane: str, _item: object) -> bool:
        raise MailboxClosed("closing")

    feeder = _Feeder(put, lambda _producer_id: "lane-0", 0, 1, asyncio.get_running_loop())
    feeder.on_closed = lambda: closed.append(True)
    feeder.sink(_event(0, 0))
    assert feeder.closed and closed == [True] and feeder.finished.is_set()
    assert feeder.sink(_event(0, 1)) is False  # discarded, and counted by the ring
    assert feeder.admit() > 0  # the ring must still empty during its close
    assert feeder.delivered == [0]


async def test_feeder_retries_held_events_by_itself_once_the_ring_is_quiet() -> None:
    # Regression: events held behind a full lane at the end of the producers' run were
    # only retried when the ring drained again, which it never did: the run hung.
    accepted: list[object] = []
    room = [0]

    def put(_lane: str, item: object) -> bool:
        if room[0] == 0:
            return False
        room[0] -= 1
        accepted.append(item)
        return True

    feeder = _Feeder(put, lambda _producer_id: "lane-0", 0, 1, asyncio.get_running_loop())
    for sequence in range(3):
        feeder.sink(_event(0, sequence))
    assert accepted == []
    room[0] = 3  # the mailbox drained; nobody calls admit() any more
    await busy_python(lambda: len(accepted) == 3)
    assert accepted == [(0, 0), (0, 1), (0, 2)]


def test_an_unknown_native_path_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="direct"):
        NativeProducers(1, path="fast")

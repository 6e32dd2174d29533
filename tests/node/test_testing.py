"""The public test doubles (ManualClock, FakeDriver) and event routing."""

from __future__ import annotations

import pytest

from lean_p2p.net.events import (
    DialFailed,
    Direction,
    DriverStarted,
    DriverStopped,
    InboundRequest,
    PeerConnected,
    PeerDisconnected,
    PublishFailed,
    RequestCompleted,
    RequestFailed,
    RequestFailure,
    ResponseChunk,
)
from lean_p2p.net.protocol import GossipTopic, ReqRespProtocol
from lean_p2p.node.node import lane_for_event
from lean_p2p.node.testing import FakeDriver, FakeDriverNotStarted, ManualClock


def test_manual_clock_fires_due_callbacks_in_time_order() -> None:
    clock = ManualClock(10.0)
    fired: list[str] = []
    clock.call_at(12.0, lambda: fired.append("b"))
    clock.call_at(11.0, lambda: fired.append("a"))
    cancelled = clock.call_at(11.5, lambda: fired.append("never"))
    cancelled.cancel()

    def chain() -> None:
        clock.call_at(11.2, lambda: fired.append("chained"))

    clock.call_at(11.0, chain)
    assert clock.advance(1.5) == 3  # a, the chaining callback, and chained
    assert fired == ["a", "chained"]
    assert clock.now() == 11.5
    assert clock.pending == 1
    assert clock.set(20.0) == 1
    assert fired == ["a", "chained", "b"]
    with pytest.raises(ValueError):
        clock.set(19.0)


def test_callback_sees_its_own_time() -> None:
    clock = ManualClock(0.0)
    seen: list[float] = []
    clock.call_at(3.0, lambda: seen.append(clock.now()))
    clock.advance(10.0)
    assert seen == [3.0]
    assert clock.now() == 10.0


def test_fake_driver_records_commands_and_refuses_injection_when_not_started() -> None:
    driver = FakeDriver(announce=False)
    with pytest.raises(FakeDriverNotStarted):
        driver.inject(PeerDisconnected("p", "gone"))
    received: list[object] = []
    driver.start(received.append)
    driver.inject(PeerDisconnected("p", "gone"))
    assert received == [PeerDisconnected("p", "gone")]
    driver.send(PeerDisconnected("not", "a command"))  # type: ignore[arg-type]
    assert len(driver.take_sent()) == 1
    assert driver.take_sent() == []


def test_announcing_driver_reports_start_and_stop() -> None:
    import asyncio

    received: list[object] = []
    driver = FakeDriver("me")
    driver.start(received.append)
    asyncio.run(driver.stop())
    assert isinstance(received[0], DriverStarted)
    assert received[0].peer_id == "me"
    assert isinstance(received[-1], DriverStopped)
    with pytest.raises(FakeDriverNotStarted):
        driver.inject(PeerDisconnected("p", "late"))


@pytest.mark.parametrize(
    ("event", "lane"),
    [
        (PeerConnected("p", Direction.INBOUND, "a"), "control"),
        (PeerDisconnected("p", "r"), "control"),
        (DialFailed("a", None, "r"), "control"),
        (PublishFailed(GossipTopic.BLOCK, b"", "r"), "control"),
        (DriverStopped("r"), "control"),
        (RequestCompleted("p", 1, ReqRespProtocol.STATUS, 1), "responses"),
        (RequestFailed("p", 1, ReqRespProtocol.STATUS, RequestFailure.TIMEOUT), "responses"),
        (ResponseChunk.__new__(ResponseChunk), "responses"),
        (InboundRequest.__new__(InboundRequest), "peer_requests"),
        ("not an event", "control"),
    ],
    ids=lambda value: type(value).__name__ if not isinstance(value, str) else value,
)
def test_events_are_routed_to_their_lanes(event: object, lane: str) -> None:
    assert lane_for_event(event) == lane

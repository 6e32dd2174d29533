"""Test harness: real drivers on loopback, their events collected on the test thread.

The test thread plays the loop: it is *not* the loop thread of a real node, so it may
block waiting for events.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Callable
from typing import Any, TypeVar

from lean_p2p.driver.config import DriverConfig
from lean_p2p.driver.driver import NetworkDriver
from lean_p2p.net.commands import Command, Dial
from lean_p2p.net.events import Event, PeerConnected
from lean_p2p.net.protocol import GossipTopic

E = TypeVar("E")

LOOPBACK = "/ip4/127.0.0.1/udp/0/quic-v1"


class Node:
    """One driver and the events it emitted.

    With ``emit``, events go to it first (it may raise, like a closed mailbox) and are
    then also recorded here, so ``expect`` works either way.
    """

    def __init__(self, emit: Callable[[Event], None] | None = None, **config: Any) -> None:
        self.events: queue.Queue[Event] = queue.Queue()
        self.backlog: list[Event] = []
        self._emit = emit
        config.setdefault("listen_address", LOOPBACK)
        self.driver = NetworkDriver(DriverConfig(**config), self._record)

    def _record(self, event: Event) -> None:
        if self._emit is not None:
            self._emit(event)
        self.events.put(event)

    @property
    def peer_id(self) -> str:
        return self.driver.peer_id

    @property
    def address(self) -> str:
        return self.driver.listen_addresses[0]

    def start(self) -> Node:
        self.driver.start()
        assert self.driver.wait_ready(20)
        return self

    def send(self, command: Command) -> None:
        assert self.driver.send(command)

    def expect(
        self,
        kind: type[E],
        predicate: Callable[[E], bool] = lambda _: True,
        timeout: float = 15.0,
    ) -> E:
        """The first (oldest) event of ``kind`` matching ``predicate``; others are kept."""
        for index, event in enumerate(self.backlog):
            if isinstance(event, kind) and predicate(event):
                del self.backlog[index]
                return event
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                event = self.events.get(timeout=min(left, 0.5))
            except queue.Empty:
                continue
            if isinstance(event, kind) and predicate(event):
                return event
            self.backlog.append(event)
        raise AssertionError(f"no {kind.__name__} within {timeout}s; backlog {self.backlog!r}")

    def expect_many(self, kind: type[E], count: int, timeout: float = 15.0) -> list[E]:
        return [self.expect(kind, timeout=timeout) for _ in range(count)]

    def drain(self) -> list[Event]:
        """Every event received so far that no ``expect`` took."""
        while True:
            try:
                self.backlog.append(self.events.get_nowait())
            except queue.Empty:
                taken, self.backlog = self.backlog, []
                return taken

    def stats(self) -> dict[str, Any]:
        return self.driver.statistics()

    def stop(self) -> None:
        self.driver.stop()
        assert self.driver.join(20)


def wait_until(condition: Callable[[], bool], timeout: float = 15.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what or condition}")


def meshed(node: Node, peers: int) -> bool:
    """``node`` has ``peers`` subscribed peers, all in its mesh, on every lean topic."""
    topics = node.stats()["topics"]
    return all(topics.get(topic.topic_string()) == (peers, peers) for topic in GossipTopic)


def connect_to_address(dialer: Node, address: str) -> str:
    """Dial a peer in another process; wait for the connection and the gossip mesh."""
    peer_id = address.rsplit("/p2p/", 1)[1]
    dialer.send(Dial(address))
    dialer.expect(PeerConnected, lambda e: e.peer_id == peer_id)
    wait_until(lambda: meshed(dialer, 1), what="mesh with the other process")
    return peer_id


def connect(dialer: Node, listener: Node, *, mesh_peers: tuple[int, int] = (1, 1)) -> None:
    """Dial and wait until both sides see the connection and the gossip meshes formed."""
    dialer.send(Dial(listener.address))
    dialer.expect(PeerConnected, lambda e: e.peer_id == listener.peer_id)
    listener.expect(PeerConnected, lambda e: e.peer_id == dialer.peer_id)
    wait_until(lambda: meshed(dialer, mesh_peers[0]), what="dialer mesh")
    wait_until(lambda: meshed(listener, mesh_peers[1]), what="listener mesh")

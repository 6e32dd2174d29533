"""The fault network: every fault on real loopback UDP sockets, and real drivers through it."""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar, cast

import pytest

from lean_p2p.driver.samples import sample_attestation
from lean_p2p.net.commands import Dial, Publish
from lean_p2p.net.events import GossipAttestation, PeerConnected
from lean_p2p.net.protocol import GossipTopic
from lean_p2p.tools.faultnet import (
    CLEAR,
    FaultNetwork,
    LinkFaults,
    UnknownNode,
)
from tests.driver.harness import Node, meshed, wait_until

T = TypeVar("T")


class Echo(asyncio.DatagramProtocol):
    """Node "b": answers every datagram with the same bytes."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # (asyncio's own datagram transport does not subclass DatagramTransport)
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.transport.sendto(data, addr)


class Client(asyncio.DatagramProtocol):
    """Node "a": records what comes back, with the loop time it arrived."""

    def __init__(self) -> None:
        self.arrived: list[tuple[bytes, float]] = []
        self.changed = asyncio.Event()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.arrived.append((data, asyncio.get_running_loop().time()))
        self.changed.set()

    async def wait_for(self, count: int) -> None:
        while len(self.arrived) < count:
            self.changed.clear()
            await asyncio.wait_for(self.changed.wait(), 10)


async def echo_through(
    faults: LinkFaults = CLEAR, *, seed: int = 0, back: LinkFaults = CLEAR
) -> tuple[FaultNetwork, Client, Callable[[bytes], None], Callable[[], None]]:
    """a ⇄ relay ⇄ b (an echo), with ``faults`` on a→b and ``back`` on b→a."""
    loop = asyncio.get_running_loop()
    echo, _ = await loop.create_datagram_endpoint(Echo, local_addr=("127.0.0.1", 0))
    network = FaultNetwork({"a": 1, "b": echo.get_extra_info("sockname")[1]}, seed=seed)
    await network.start()
    network.set_link("a", "b", faults, both_ways=False)
    network.set_link("b", "a", back, both_ways=False)
    client = Client()
    transport, _ = await loop.create_datagram_endpoint(
        lambda: client, remote_addr=("127.0.0.1", network.dial_port("a", "b"))
    )

    def close() -> None:
        transport.close()
        echo.close()
        network.close()

    return network, client, transport.sendto, close


async def settled(network: FaultNetwork) -> None:
    """Until no datagram is held by a delay (the relays have nothing in flight)."""
    for _ in range(1_000):
        if network.totals().in_flight == 0:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"datagrams still in flight: {network.totals()}")


async def test_a_clear_link_carries_everything_both_ways_and_counts_it() -> None:
    network, client, send, close = await echo_through()
    try:
        for number in range(50):
            send(b"%d" % number)
        await client.wait_for(50)
        assert sorted(int(data) for data, _ in client.arrived) == list(range(50))
        stats = network.statistics()
        for direction in (("a", "b"), ("b", "a")):
            assert stats[direction].received == stats[direction].forwarded == 50
            assert stats[direction].reconciles()
    finally:
        close()


async def test_loss_drops_what_it_counts_and_the_same_seed_drops_the_same() -> None:
    dropped = []
    for seed in (7, 7):
        network, client, send, close = await echo_through(LinkFaults(loss=0.3), seed=seed)
        try:
            for number in range(200):
                send(b"%d" % number)
            await _until(functools.partial(forward_done, network, 200))
            forward = network.statistics()["a", "b"]
            await client.wait_for(forward.forwarded)
            assert forward.lost + forward.forwarded == 200 and forward.reconciles()
            assert 0 < forward.lost < 200
            dropped.append(sorted({int(data) for data, _ in client.arrived} ^ set(range(200))))
        finally:
            close()
    assert dropped[0] == dropped[1]  # a replay with the seed loses the same datagrams


def forward_done(network: FaultNetwork, count: int) -> bool:
    return network.statistics()["a", "b"].received == count


async def _until(condition: Callable[[], bool]) -> None:
    """Until ``condition`` holds (polled: the relays have no event to wait on), at most
    about 10 s."""
    for _ in range(2_000):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"never reached: {condition}")


async def test_a_one_way_delay_holds_each_datagram_at_least_that_long() -> None:
    network, client, send, close = await echo_through(LinkFaults(delay_ms=60, jitter_ms=20))
    try:
        loop = asyncio.get_running_loop()
        sent = loop.time()
        send(b"late")
        await client.wait_for(1)
        # 60 ms less 20 ms of jitter at least (less asyncio's timer resolution).
        assert client.arrived[0][1] - sent >= 0.040 - 0.002
        await settled(network)
        assert network.statistics()["a", "b"].reconciles()
    finally:
        close()


async def test_duplication_sends_each_datagram_twice() -> None:
    network, client, send, close = await echo_through(LinkFaults(duplicate=1.0))
    try:
        for number in range(10):
            send(b"%d" % number)
        await client.wait_for(20)
        assert sorted(int(data) for data, _ in client.arrived) == sorted(list(range(10)) * 2)
        assert network.statistics()["a", "b"].duplicated == 10
    finally:
        close()


async def test_reordering_lets_later_datagrams_overtake_the_held_ones() -> None:
    # Held back a whole second: every later datagram surely overtakes them.
    network, client, send, close = await echo_through(
        LinkFaults(reorder=0.3, reorder_ms=1_000), seed=3
    )
    try:
        for number in range(40):
            send(b"%d" % number)
        await client.wait_for(40)
        order = [int(data) for data, _ in client.arrived]
        assert sorted(order) == list(range(40)) and order != list(range(40))
        held = network.statistics()["a", "b"].reordered
        assert 0 < held < 40
        assert order[-held:] == sorted(order[-held:])  # the held ones land last, in order
    finally:
        close()


async def test_a_bandwidth_cap_paces_datagrams_and_drops_the_tail_past_its_queue() -> None:
    # 800 kbit/s: a 1,000-byte datagram takes 10 ms on the wire.
    network, client, send, close = await echo_through(LinkFaults(bandwidth_kbps=800))
    try:
        loop = asyncio.get_running_loop()
        sent = loop.time()
        for number in range(10):
            send(b"%03d" % number + b"." * 997)
        await client.wait_for(10)
        assert client.arrived[-1][1] - sent >= 0.100 - 0.002
    finally:
        close()
    network, client, send, close = await echo_through(LinkFaults(bandwidth_kbps=80, queue_ms=200))
    try:
        # 100 ms each on the wire: about 3 fit the queue. (40, not more: a burst past the
        # relay socket's receive buffer is dropped by the kernel before the relay sees it.)
        for number in range(40):
            send(b"%03d" % number + b"." * 997)
        await _until(functools.partial(forward_done, network, 40))
        forward = network.statistics()["a", "b"]
        assert forward.queue_dropped >= 30
        assert forward.reconciles()
    finally:
        close()


async def test_a_partition_drops_both_ways_until_healed() -> None:
    network, client, send, close = await echo_through()
    try:
        network.partition([{"a"}, {"b"}])
        for number in range(5):
            send(b"%d" % number)
        await _until(functools.partial(forward_done, network, 5))
        assert network.statistics()["a", "b"].partitioned == 5
        assert client.arrived == []
        network.heal()
        send(b"after")
        await client.wait_for(1)
        assert client.arrived[0][0] == b"after"
        network.partition([{"a", "b"}])  # one group: nothing is cut
        send(b"together")
        await client.wait_for(2)
    finally:
        close()


async def test_bad_faults_and_unknown_nodes_are_refused_with_clear_errors() -> None:
    with pytest.raises(ValueError, match="loss is a probability"):
        LinkFaults(loss=1.5)
    with pytest.raises(ValueError, match="delay_ms must be >= 0"):
        LinkFaults(delay_ms=-1)
    with pytest.raises(ValueError, match="bandwidth_kbps must be > 0"):
        LinkFaults(bandwidth_kbps=0)
    with pytest.raises(ValueError, match="at least two nodes"):
        FaultNetwork({"a": 1})
    network = FaultNetwork({"a": 1, "b": 2, "c": 3})
    with pytest.raises(UnknownNode, match="no node 'z'"):
        network.set_link("a", "z", CLEAR)
    with pytest.raises(ValueError, match="in two groups"):
        network.partition([{"a", "b"}, {"b"}])
    with pytest.raises(RuntimeError, match="not started"):
        network.dial_port("a", "b")
    assert network.nodes == ("a", "b", "c")


# ---------------------------------------------------- real drivers through the relay


class LoopThread:
    """An asyncio loop on its own thread, for the relays while the test thread blocks."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="fault-network")
        self._thread.start()

    def run(self, call: Callable[[], Awaitable[T]]) -> T:
        async def wrapped() -> T:
            return await call()

        return asyncio.run_coroutine_threadsafe(wrapped(), self.loop).result(30)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


@pytest.fixture
def relay_loop() -> Iterator[LoopThread]:
    thread = LoopThread()
    yield thread
    thread.stop()


@pytest.mark.network
def test_two_real_drivers_gossip_through_a_lossy_delayed_link_and_not_across_a_partition(
    relay_loop: LoopThread,
) -> None:
    a, b = Node().start(), Node().start()
    network = FaultNetwork({"a": _port(a), "b": _port(b)}, seed=1)
    try:
        relay_loop.run(network.start)
        lossy = LinkFaults(delay_ms=20, jitter_ms=5, loss=0.05)
        relay_loop.run(lambda: _apply(lambda: network.set_all_links(lossy)))
        a.send(Dial(f"/ip4/127.0.0.1/udp/{network.dial_port('a', 'b')}/quic-v1/p2p/{b.peer_id}"))
        a.expect(PeerConnected, lambda event: event.peer_id == b.peer_id)
        wait_until(lambda: meshed(a, 1) and meshed(b, 1), what="mesh through the relay")
        for slot in range(1, 6):
            a.send(Publish(GossipTopic.ATTESTATION, sample_attestation(slot=slot)))
        got = {b.expect(GossipAttestation).attestation.data.slot for _ in range(5)}
        assert got == {1, 2, 3, 4, 5}  # QUIC recovered what the link lost
        forward = relay_loop.run(lambda: _apply(lambda: network.statistics()["a", "b"]))
        assert forward.forwarded > 0 and forward.reconciles()

        relay_loop.run(lambda: _apply(lambda: network.partition([{"a"}, {"b"}])))
        a.send(Publish(GossipTopic.ATTESTATION, sample_attestation(slot=99)))
        wait_until(
            lambda: relay_loop.run(lambda: _apply(lambda: network.totals().partitioned)) > 0,
            what="the partition to drop a datagram",
        )
        with pytest.raises(AssertionError, match="no GossipAttestation"):
            b.expect(GossipAttestation, timeout=1.0)
    finally:
        relay_loop.run(lambda: _apply(network.close))
        a.stop()
        b.stop()


async def _apply(call: Callable[[], T]) -> T:
    return call()


def _port(node: Node) -> int:
    return int(node.address.split("/udp/")[1].split("/")[0])

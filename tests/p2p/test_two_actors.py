"""Two P2P actors on a real loop, joined by a fake driver on its own thread.

The driver thread plays both nodes' network drivers: it takes commands from a
thread-safe queue and answers with events through ``P2PActor.send`` (the any-thread
entry), as the trio driver would. A client 1,000 blocks behind must catch up.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass

from lean_p2p.net import (
    Dial,
    Direction,
    DriverStarted,
    InboundRequest,
    PeerConnected,
    ReqRespProtocol,
    RequestCompleted,
    ResponseChunk,
    SendRequest,
    SendResponseChunk,
    SendResponseEnd,
)
from lean_p2p.net.commands import Command
from lean_p2p.p2p.chain import ToChain
from lean_p2p.p2p.core import P2PCore
from lean_p2p.p2p.shell import P2PActor
from lean_p2p.tools.memory_chain import MemoryChain, build_chain

CHAIN = build_chain(1001)
PROTOCOL_OF = {
    "Status": ReqRespProtocol.STATUS,
    "BlocksByRootRequest": ReqRespProtocol.BLOCKS_BY_ROOT,
    "BlocksByRangeRequest": ReqRespProtocol.BLOCKS_BY_RANGE,
}


@dataclass
class Node:
    name: str
    chain: MemoryChain
    actor: P2PActor | None = None

    @property
    def peer_id(self) -> str:
        return f"16Uiu2{self.name}"

    @property
    def address(self) -> str:
        return f"/ip4/127.0.0.1/udp/9000/quic-v1/p2p/{self.peer_id}"


class ThreadedLink:
    """Both drivers, on one thread: commands in through a queue, events out via send."""

    def __init__(self, server: Node, client: Node) -> None:
        self._nodes = {server.name: server, client.name: client}
        self._other = {server.name: client, client.name: server}
        self.commands: queue.Queue[tuple[str, Command] | None] = queue.Queue()
        # stream id -> (requesting node, its request id, protocol, chunks so far)
        self._streams: dict[int, tuple[Node, int, ReqRespProtocol, int]] = {}
        self._next_stream = 1
        self.thread = threading.Thread(target=self._run, name="fake-driver", daemon=True)

    def sink_for(self, node: Node) -> Callable[[Command], None]:
        def submit(command: Command) -> None:  # called on the loop thread, never blocks
            self.commands.put((node.name, command))

        return submit

    def _run(self) -> None:
        while (item := self.commands.get()) is not None:
            name, command = item
            self._route(self._nodes[name], command)

    def _send(self, node: Node, event: object) -> None:
        assert node.actor is not None
        node.actor.send(event)

    def _route(self, node: Node, command: Command) -> None:
        other = self._other[node.name]
        match command:
            case Dial():
                self._send(node, PeerConnected(other.peer_id, Direction.OUTBOUND, other.address))
                self._send(other, PeerConnected(node.peer_id, Direction.INBOUND, node.address))
            case SendRequest(request_id=request_id, request=request):
                protocol = PROTOCOL_OF[type(request).__name__]
                stream = self._next_stream
                self._next_stream += 1
                self._streams[stream] = (node, request_id, protocol, 0)
                self._send(other, InboundRequest(node.peer_id, stream, protocol, request))
            case SendResponseChunk(request_id=stream, payload=payload):
                requester, request_id, protocol, chunks = self._streams[stream]
                self._streams[stream] = (requester, request_id, protocol, chunks + 1)
                self._send(requester, ResponseChunk(node.peer_id, request_id, protocol, payload))
            case SendResponseEnd(request_id=stream):
                requester, request_id, protocol, chunks = self._streams.pop(stream)
                end = RequestCompleted(node.peer_id, request_id, protocol, chunks)
                self._send(requester, end)
            case _:
                pass


async def test_client_catches_up_1000_blocks_through_a_threaded_driver() -> None:
    server = Node("server", MemoryChain(CHAIN))
    client = Node("client", MemoryChain(CHAIN[:1]))
    link = ThreadedLink(server, client)
    caught_up = asyncio.Event()

    def deliver_to(node: Node) -> Callable[[ToChain], None]:
        def deliver(value: ToChain) -> None:  # loop thread
            fetch = node.chain.receive([value])
            if fetch is not None:
                assert node.actor is not None
                node.actor.send(fetch)
            if node is client and len(node.chain) == len(CHAIN):
                caught_up.set()

        return deliver

    for node, bootnodes in ((server, ()), (client, (server.address,))):
        core = P2PCore(node.chain, bootnodes=bootnodes)
        node.actor = P2PActor(core, link.sink_for(node), deliver_to(node), name=node.name)
    link.thread.start()
    try:
        for node in (server, client):
            assert node.actor is not None
            node.actor.send(DriverStarted(node.peer_id, (node.address,)))
        await asyncio.wait_for(caught_up.wait(), timeout=60)
        assert client.chain.head() == server.chain.head()
        assert client.actor is not None
        stats = client.actor.core_statistics()
        assert stats.counters["requests_by_range"] == 1
        assert stats.counters.get("requests_by_root", 0) == 0
        assert client.chain.parked_count == 0
    finally:
        link.commands.put(None)
        link.thread.join(timeout=10)
        for node in (server, client):
            assert node.actor is not None
            await node.actor.stop()
    assert not link.thread.is_alive()

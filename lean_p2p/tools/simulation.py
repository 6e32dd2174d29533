"""Two P2P cores joined by a fake, lossy link, on simulated time. Any single thread.

A test harness, public on purpose (like h11's and aioquic's two-endpoint tests): the
commands of one core become the events of the other, the way the real driver would
report them, through a link that drops, delays, duplicates and swaps messages, all
drawn from one seeded :class:`random.Random` — so a seed fully determines the run and
its command log. Like a real stream (and the mailbox's FIFO lanes), one response
stream's events keep their order; different streams and gossip interleave freely.
Time is simulated (a heap of timed deliveries plus the cores' own
deadlines); nothing sleeps, and nothing here reads a clock.

The "server" node has the whole chain; the "client" starts at genesis, has the server
as its bootnode, and must end with every block.
"""

from __future__ import annotations

import heapq
import math
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from lean_p2p.net.commands import (
    Command,
    Dial,
    Disconnect,
    Publish,
    SendRequest,
    SendResponseChunk,
    SendResponseEnd,
    SendResponseError,
)
from lean_p2p.net.events import (
    Direction,
    Event,
    GossipBlock,
    InboundRequest,
    PeerConnected,
    PeerDisconnected,
    RequestCompleted,
    RequestFailed,
    RequestFailure,
    ResponseChunk,
)
from lean_p2p.net.protocol import GossipTopic, ReqRespProtocol
from lean_p2p.p2p import backoff
from lean_p2p.p2p.chain import PublishBlock
from lean_p2p.p2p.core import P2PCore
from lean_p2p.tools.memory_chain import MemoryChain

if TYPE_CHECKING:
    from lean_p2p.containers import SignedBlock

__all__ = ["Chaos", "SimulatedNode", "SimulationResult", "TwoNodeSimulation"]

#: Most commands one input may produce: a full response plus a handful of others.
MAX_COMMANDS_PER_INPUT = backoff.MAX_BLOCKS_PER_REQUEST + 16


@dataclass(frozen=True, slots=True)
class Chaos:
    """Per-message probabilities of the link's misbehaviour, and its delays (seconds).

    Applied to requests, response chunks, response ends and gossip. ``mismatch``
    replaces a response chunk's block by a random block of the server's chain.
    ``resets`` is how many times the connection is cut during the run.
    """

    drop: float = 0.0
    duplicate: float = 0.0
    mismatch: float = 0.0
    min_delay: float = 0.001
    max_delay: float = 0.001
    resets: int = 0

    @classmethod
    def harsh(cls) -> Chaos:
        return cls(drop=0.02, duplicate=0.05, mismatch=0.02, max_delay=0.5, resets=1)


@dataclass(slots=True)
class SimulatedNode:
    name: str
    peer_id: str
    address: str
    core: P2PCore
    chain: MemoryChain


@dataclass(frozen=True, slots=True)
class SimulationResult:
    converged: bool
    simulated_seconds: float
    steps: int
    command_log: tuple[str, ...]
    #: SendRequest commands the client issued, by request type name.
    client_requests: dict[str, int]
    link: dict[str, int]
    #: Largest sizes seen after any step, per node: peers, pending_roots,
    #: requests_in_flight, deadline_heap, commands_per_input, parked.
    high_water: dict[str, int]


@dataclass(slots=True)
class _Stream:
    """A response stream the link carries from server to client."""

    client: SimulatedNode
    request_id: int
    protocol: ReqRespProtocol
    chunks: int = 0


@dataclass(order=True, slots=True)
class _Delivery:
    when: float
    sequence: int
    target: str = field(compare=False)
    item: Event | PublishBlock = field(compare=False)


_PROTOCOL_OF = {
    "Status": ReqRespProtocol.STATUS,
    "BlocksByRootRequest": ReqRespProtocol.BLOCKS_BY_ROOT,
    "BlocksByRangeRequest": ReqRespProtocol.BLOCKS_BY_RANGE,
}


class TwoNodeSimulation:
    """Sync ``chain`` from a server node to a client node over a chaotic link."""

    def __init__(
        self,
        chain: Sequence[SignedBlock],
        *,
        seed: int,
        chaos: Chaos = Chaos(),
        client_blocks: int = 1,
        gossip_blocks: Sequence[SignedBlock] = (),
        client_range_sync: bool = True,
        gossip_window: tuple[float, float] = (1.0, 30.0),
    ) -> None:
        self._rng = random.Random(seed)
        self._chaos = chaos
        self._full_chain = list(chain)
        self.server = self._node("server", MemoryChain(chain))
        self.client = self._node(
            "client",
            MemoryChain(chain[:client_blocks]),
            bootnodes=(self.server.address,),
            range_sync=client_range_sync,
        )
        self._nodes = {self.server.name: self.server, self.client.name: self.client}
        self._heap: list[_Delivery] = []
        self._sequence = 0
        self._now = 0.0
        self._streams: dict[int, _Stream] = {}
        # stream id -> time of its last scheduled delivery (keeps each stream FIFO)
        self._stream_clock: dict[int, float] = {}
        self._next_stream_id = 1
        self._connected = False
        self._log: list[str] = []
        self._link: Counter[str] = Counter()
        self._client_requests: Counter[str] = Counter()
        self._high_water: Counter[str] = Counter()
        # The server extends its chain and gossips each new block at a random time.
        self._unpublished = len(gossip_blocks)
        publish_times = sorted(self._rng.uniform(*gossip_window) for _ in gossip_blocks)
        for block, when in zip(gossip_blocks, publish_times, strict=True):
            self._schedule(self.server, PublishBlock(block), when)
        self._reset_times = sorted(self._rng.uniform(0.5, 20.0) for _ in range(chaos.resets))

    @staticmethod
    def _node(
        name: str, chain: MemoryChain, bootnodes: tuple[str, ...] = (), range_sync: bool = True
    ) -> SimulatedNode:
        peer_id = f"16Uiu2{name}"
        address = f"/ip4/127.0.0.1/udp/9000/quic-v1/p2p/{peer_id}"
        core = P2PCore(chain, bootnodes=bootnodes, range_sync=range_sync)
        return SimulatedNode(name, peer_id, address, core, chain)

    # --- running ------------------------------------------------------------------------

    def run(self, time_limit: float = 3600.0, step_limit: int = 1_000_000) -> SimulationResult:
        for node in self._nodes.values():
            node.core.start(self._now)
            self._flush(node)
        steps = 0
        while not self.converged() and self._now <= time_limit and steps < step_limit:
            if not self._step():
                break
            steps += 1
        return SimulationResult(
            converged=self.converged(),
            simulated_seconds=self._now,
            steps=steps,
            command_log=tuple(self._log),
            client_requests=dict(self._client_requests),
            link=dict(self._link),
            high_water=dict(self._high_water),
        )

    def converged(self) -> bool:
        """The client has every block and both cores have settled all their work."""
        client, server = self.client, self.server
        if self._unpublished:
            return False
        if len(client.chain) != len(server.chain) or client.chain.head() != server.chain.head():
            return False
        if client.chain.parked_count:
            return False
        for node in (client, server):
            stats = node.core.statistics()
            if stats.requests_in_flight or stats.pending_roots or stats.range_sync_active:
                return False
        return True

    def _step(self) -> bool:
        next_delivery = self._heap[0].when if self._heap else math.inf
        next_reset = self._reset_times[0] if self._reset_times else math.inf
        deadlines = [
            (when, node.name)
            for node in self._nodes.values()
            if (when := node.core.next_deadline()) is not None
        ]
        next_timer = min(deadlines)[0] if deadlines else math.inf
        upcoming = min(next_delivery, next_reset, next_timer)
        if upcoming == math.inf:
            return False
        self._now = max(self._now, upcoming)
        if upcoming == next_reset:
            self._reset_times.pop(0)
            self._reset_connection("link reset")
        elif upcoming == next_timer:
            for when, name in sorted(deadlines):
                if when <= self._now:
                    node = self._nodes[name]
                    node.core.handle_timer(self._now)
                    self._flush(node)
        else:
            delivery = heapq.heappop(self._heap)
            node = self._nodes[delivery.target]
            if isinstance(delivery.item, PublishBlock):
                node.chain.append(delivery.item.block)
                self._unpublished -= 1
                node.core.handle_request(delivery.item, self._now)
            else:
                node.core.handle_event(delivery.item, self._now)
            self._flush(node)
        return True

    def _flush(self, node: SimulatedNode) -> None:
        """Route the node's outputs until it has none (chain fetches feed back in)."""
        while True:
            commands = node.core.drain_commands()
            fetch = node.chain.receive(node.core.drain_to_chain())
            self._note_high_water(node, len(commands))
            for command in commands:
                self._log.append(f"{self._now:.6f} {node.name} {_summary(command)}")
                self._route(node, command)
            if fetch is None:
                if not commands:
                    return
                continue
            node.core.handle_request(fetch, self._now)

    def _note_high_water(self, node: SimulatedNode, commands: int) -> None:
        node.core.check_invariants()
        stats = node.core.statistics()
        sizes = {
            "peers": stats.peers,
            "pending_roots": stats.pending_roots,
            "requests_in_flight": stats.requests_in_flight,
            "deadline_heap": stats.deadline_heap,
            "commands_per_input": commands,
            "parked": node.chain.parked_count,
        }
        for name, size in sizes.items():
            key = f"{node.name}.{name}"
            self._high_water[key] = max(self._high_water[key], size)

    # --- the link -----------------------------------------------------------------------

    def _peer_of(self, node: SimulatedNode) -> SimulatedNode:
        return self.client if node is self.server else self.server

    def _route(self, node: SimulatedNode, command: Command) -> None:
        other = self._peer_of(node)
        match command:
            case Dial():
                self._connect(dialer=node)
            case Disconnect(reason=reason):
                self._reset_connection(reason)
            case SendRequest(request_id=request_id, request=request):
                protocol = _PROTOCOL_OF[type(request).__name__]
                if node is self.client:
                    self._client_requests[type(request).__name__] += 1
                if not self._connected:
                    failure = RequestFailed(
                        other.peer_id, request_id, protocol, RequestFailure.UNKNOWN_PEER
                    )
                    self._schedule(node, failure, self._chaos.min_delay)
                    return
                stream_id = self._next_stream_id
                self._next_stream_id += 1
                self._streams[stream_id] = _Stream(node, request_id, protocol)
                inbound = InboundRequest(node.peer_id, stream_id, protocol, request)
                self._send_lossy(other, inbound)
            case SendResponseChunk(request_id=stream_id, payload=payload):
                stream = self._streams.get(stream_id)
                if stream is None:
                    self._link["chunks_on_closed_streams"] += 1
                    return
                stream.chunks += 1
                if self._rng.random() < self._chaos.mismatch:
                    self._link["mismatched"] += 1
                    payload = self._rng.choice(self._full_chain)
                chunk = ResponseChunk(node.peer_id, stream.request_id, stream.protocol, payload)
                self._send_lossy(stream.client, chunk, stream_id)
            case SendResponseEnd(request_id=stream_id):
                stream = self._streams.pop(stream_id, None)
                if stream is not None:
                    end = RequestCompleted(
                        node.peer_id, stream.request_id, stream.protocol, stream.chunks
                    )
                    self._send_lossy(stream.client, end, stream_id)
                    self._stream_clock.pop(stream_id, None)
            case SendResponseError(request_id=stream_id, result_code=code, message=message):
                stream = self._streams.pop(stream_id, None)
                if stream is not None:
                    error = RequestFailed(
                        node.peer_id,
                        stream.request_id,
                        stream.protocol,
                        RequestFailure.ERROR_RESPONSE,
                        code,
                        message,
                    )
                    self._send_lossy(stream.client, error, stream_id)
                    self._stream_clock.pop(stream_id, None)
            case Publish(topic=GossipTopic.BLOCK, message=block):
                if self._connected:
                    gossip = GossipBlock(node.peer_id, b"%d" % self._sequence, block)  # type: ignore[arg-type]
                    self._send_lossy(other, gossip)
            case Publish():
                self._link["other_publishes"] += 1

    def _connect(self, dialer: SimulatedNode) -> None:
        if self._connected:
            self._link["dials_while_connected"] += 1
            return
        self._connected = True
        self._link["connections"] += 1
        listener = self._peer_of(dialer)
        delay = self._chaos.min_delay
        self._schedule(
            dialer, PeerConnected(listener.peer_id, Direction.OUTBOUND, listener.address), delay
        )
        self._schedule(
            listener, PeerConnected(dialer.peer_id, Direction.INBOUND, dialer.address), delay
        )

    def _reset_connection(self, reason: str) -> None:
        if not self._connected:
            return
        self._connected = False
        self._link["resets"] += 1
        # Streams die with the connection; each side hears of the disconnect.
        self._streams.clear()
        self._stream_clock.clear()
        for node in self._nodes.values():
            other = self._peer_of(node)
            self._schedule(node, PeerDisconnected(other.peer_id, reason), self._chaos.min_delay)

    def _send_lossy(self, target: SimulatedNode, event: Event, stream_id: int = 0) -> None:
        """Deliver with chaos; events of one stream (``stream_id`` > 0) stay in order."""
        chaos = self._chaos
        if self._rng.random() < chaos.drop:
            self._link["dropped"] += 1
            return
        copies = 2 if self._rng.random() < chaos.duplicate else 1
        self._link["duplicated"] += copies - 1
        for _ in range(copies):
            delay = self._rng.uniform(chaos.min_delay, chaos.max_delay)
            if stream_id:
                not_before = self._stream_clock.get(stream_id, 0.0)
                delay = max(delay, not_before - self._now)
                self._stream_clock[stream_id] = self._now + delay
            self._schedule(target, event, delay)

    def _schedule(self, target: SimulatedNode, item: Event | PublishBlock, delay: float) -> None:
        self._sequence += 1
        heapq.heappush(self._heap, _Delivery(self._now + delay, self._sequence, target.name, item))


def _summary(command: Command) -> str:
    """A short, deterministic description of a command for the command log."""
    match command:
        case SendRequest(peer_id=peer_id, request_id=request_id, request=request):
            name = type(request).__name__
            detail = ""
            if name == "BlocksByRootRequest":
                roots = request.roots  # type: ignore[union-attr]
                detail = f" roots={len(roots)} first={roots[0].hex()[:12]}"
            elif name == "BlocksByRangeRequest":
                detail = f" start={request.start_slot} count={request.count}"  # type: ignore[union-attr]
            return f"SendRequest {peer_id} #{request_id} {name}{detail}"
        case SendResponseChunk(request_id=request_id, payload=payload):
            return f"SendResponseChunk #{request_id} {payload.hash_tree_root().hex()[:12]}"
        case Publish(topic=topic, message=message):
            return f"Publish {topic.name} {message.hash_tree_root().hex()[:12]}"
        case _:
            return repr(command)

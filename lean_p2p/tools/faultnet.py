"""Faults on purpose: a user-space UDP relay between devnet nodes, per link and direction.

Loop thread: everything here runs on the asyncio loop of the process that starts the
:class:`FaultNetwork` (a devnet command's main thread); its sockets are that loop's
datagram endpoints and its delays are that loop's timers. Nothing blocks.

The nodes know nothing of it. Each node is told to dial every other node at a relay
address instead of the node's own (``lean-p2p node --bootnode``): the relay for the
ordered pair (a, b) listens on its own loopback port, and forwards what ``a`` sends
there to ``b``'s real QUIC port from an upstream socket of its own (one per sending
address, as a NAT would), and what ``b`` answers back to ``a``. Datagrams from ``a`` to
``b`` go through the faults of the direction a→b, the answers through those of b→a, so a
link is the same whoever dialed. The lean protocol has no identify or peer exchange,
so a node only ever reaches another through the address it was given.

Per direction (:class:`LinkFaults`): a one-way delay with uniform jitter (which also
reorders), loss, duplication, an explicit reordering (a datagram held back by an extra
delay), a bandwidth cap (a FIFO that serializes at the cap, tail-dropping past
``queue_ms`` of backlog); and a partition between groups of nodes, which drops every
datagram between two groups. Each direction draws from its own random generator,
seeded from the network's seed and the two names, so the same datagrams meet the same
fate in a replay (the timing of a real network of processes still varies between runs).
Every datagram is counted by what happened to it (:class:`DirectionStatistics`), so a
run's losses reconcile: what the nodes did not receive, the network dropped and said so.
(One exception: a burst larger than a relay socket's receive buffer, 1 MiB asked for,
is dropped by the kernel before the relay reads it, as a router's full queue would.)
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import random
import socket
from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = [
    "CLEAR",
    "DirectionStatistics",
    "FaultNetwork",
    "FaultNetworkClosed",
    "LinkFaults",
    "UnknownNode",
]

logger = logging.getLogger(__name__)

#: A datagram larger than any QUIC packet a node sends (and than the loopback MTU).
_MAX_DATAGRAM = 65_535
#: Receive buffer asked for on every relay socket (the kernel caps it at rmem_max): a
#: burst beyond it is dropped by the kernel before the relay reads it, uncounted.
_RECEIVE_BUFFER = 1 << 20
#: Upstream sockets a relay keeps per ordered pair: one per sending address; a node
#: that restarts sends from a new address, so a few stale ones are expected.
_MAX_UPSTREAMS = 64


class UnknownNode(KeyError):
    """A fault named a node the network does not have."""


class FaultNetworkClosed(RuntimeError):
    """The network was closed; it relays nothing more."""


@dataclass(frozen=True, slots=True)
class LinkFaults:
    """What one direction of a link does to each datagram. The default is a clear link.

    ``delay_ms`` ± ``jitter_ms`` (uniform, never below 0) is the one-way delay;
    ``loss``, ``duplicate`` and ``reorder`` are probabilities per datagram (a reordered
    datagram is held back ``reorder_ms`` more, so later ones overtake it);
    ``bandwidth_kbps`` caps the direction's rate (kilobits per second, None: no cap),
    with at most ``queue_ms`` of backlog before the tail is dropped.
    """

    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    loss: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    reorder_ms: float = 5.0
    bandwidth_kbps: float | None = None
    queue_ms: float = 1_000.0

    def __post_init__(self) -> None:
        for name in ("delay_ms", "jitter_ms", "reorder_ms", "queue_ms"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, not {getattr(self, name)}")
        for name in ("loss", "duplicate", "reorder"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} is a probability in [0, 1], not {getattr(self, name)}")
        if self.bandwidth_kbps is not None and self.bandwidth_kbps <= 0:
            raise ValueError(f"bandwidth_kbps must be > 0, not {self.bandwidth_kbps}")

    @property
    def clear(self) -> bool:
        return self == CLEAR

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


CLEAR = LinkFaults()


@dataclass(slots=True)
class DirectionStatistics:
    """What happened to the datagrams of one direction (a→b). Each datagram that arrived
    is counted once in ``received`` and once in exactly one of ``forwarded``,
    ``lost``, ``partitioned``, ``queue_dropped`` or (while its delay runs) ``in_flight``;
    ``duplicated`` counts the extra copies sent."""

    received: int = 0
    forwarded: int = 0
    lost: int = 0
    partitioned: int = 0
    queue_dropped: int = 0
    duplicated: int = 0
    reordered: int = 0
    in_flight: int = 0
    bytes_forwarded: int = 0

    def reconciles(self) -> bool:
        accounted = self.forwarded + self.lost + self.partitioned + self.queue_dropped
        return self.received == accounted + self.in_flight


@dataclass(slots=True)
class _Direction:
    """The live state of one direction: its faults, random generator and counters."""

    faults: LinkFaults
    random: random.Random
    statistics: DirectionStatistics = field(default_factory=DirectionStatistics)
    #: when the bandwidth cap's FIFO will have sent everything queued (loop time)
    busy_until: float = 0.0


class FaultNetwork:
    """Relays between named nodes, with faults per direction and partitions.

    ``nodes`` maps each node's name to the UDP port it listens on (QUIC, loopback).
    :meth:`start` (on the loop) opens one relay per ordered pair;
    :meth:`dial_port` says where node ``a`` must dial to reach ``b``.
    """

    def __init__(self, nodes: Mapping[str, int], *, seed: int = 0, host: str = "127.0.0.1") -> None:
        if len(nodes) < 2:
            raise ValueError("a fault network joins at least two nodes")
        self._targets = dict(nodes)
        self._seed = seed
        self._host = host
        self._directions: dict[tuple[str, str], _Direction] = {
            (a, b): _Direction(CLEAR, random.Random(_direction_seed(seed, a, b)))
            for a in nodes
            for b in nodes
            if a != b
        }
        self._groups: dict[str, int] | None = None  # node -> partition group
        self._relays: dict[tuple[str, str], _Relay] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    @property
    def nodes(self) -> tuple[str, ...]:
        return tuple(self._targets)

    async def start(self) -> None:
        """Open every relay (loop thread)."""
        if self._loop is not None:
            raise RuntimeError("a fault network starts once")
        self._loop = asyncio.get_running_loop()
        try:
            for a, b in self._directions:
                relay = _Relay(self, a, b, (self._host, self._targets[b]))
                await relay.open(self._host)
                self._relays[a, b] = relay
        except BaseException:
            self.close()
            raise

    def dial_port(self, dialer: str, target: str) -> int:
        """The loopback port ``dialer`` dials to reach ``target`` through the faults."""
        self._check(dialer, target)
        relay = self._relays.get((dialer, target))
        if relay is None:
            raise RuntimeError("the fault network has not started")
        return relay.port

    # -- faults ------------------------------------------------------------------------

    def set_link(self, a: str, b: str, faults: LinkFaults, *, both_ways: bool = True) -> None:
        """Apply ``faults`` to a→b (and b→a unless ``both_ways`` is False)."""
        self._check(a, b)
        self._directions[a, b].faults = faults
        if both_ways:
            self._directions[b, a].faults = faults

    def set_all_links(self, faults: LinkFaults) -> None:
        """Apply ``faults`` to every direction of every link."""
        for direction in self._directions.values():
            direction.faults = faults

    def partition(self, groups: Sequence[Collection[str]]) -> None:
        """Drop every datagram between nodes of different groups until :meth:`heal`. A
        node left out of every group is a group of its own."""
        assignment: dict[str, int] = {}
        for index, group in enumerate(groups):
            for node in group:
                self._check(node)
                if node in assignment:
                    raise ValueError(f"{node} is in two groups of one partition")
                assignment[node] = index
        for node in self._targets:
            assignment.setdefault(node, len(groups) + len(assignment))
        self._groups = assignment
        logger.info("fault network: partitioned %s", _groups_text(assignment))

    def heal(self) -> None:
        """End the partition (the links keep their other faults)."""
        self._groups = None
        logger.info("fault network: partition healed")

    def statistics(self) -> dict[tuple[str, str], DirectionStatistics]:
        """A copy of every direction's counters."""
        return {
            key: DirectionStatistics(**asdict(direction.statistics))
            for key, direction in self._directions.items()
        }

    def totals(self) -> DirectionStatistics:
        """Every direction's counters summed."""
        total = DirectionStatistics()
        for direction in self._directions.values():
            for name, value in asdict(direction.statistics).items():
                setattr(total, name, getattr(total, name) + value)
        return total

    def close(self) -> None:
        """Close every socket; datagrams still delayed are dropped uncounted as
        ``in_flight`` (loop thread)."""
        self._closed = True
        for relay in self._relays.values():
            relay.close()
        self._relays.clear()

    # -- the relays' hot path (loop thread) --------------------------------------------

    def _carry(self, source: str, target: str, data: bytes, send: _Send) -> None:
        """One datagram from ``source`` to ``target``: its faults decide its fate."""
        if self._closed:
            return
        direction = self._directions[source, target]
        counters = direction.statistics
        counters.received += 1
        groups = self._groups
        if groups is not None and groups[source] != groups[target]:
            counters.partitioned += 1
            return
        faults = direction.faults
        if faults.clear:
            self._forward(counters, data, send)
            return
        draw = direction.random.random
        if faults.loss and draw() < faults.loss:
            counters.lost += 1
            return
        loop = self._loop
        assert loop is not None  # started: only relays call this
        now = loop.time()
        wait = 0.0
        if faults.bandwidth_kbps is not None:
            # A FIFO serializing at the cap: this datagram leaves when those queued
            # before it have, plus its own time on the wire.
            start = max(now, direction.busy_until)
            if start - now > faults.queue_ms / 1e3:
                counters.queue_dropped += 1
                return
            direction.busy_until = start + len(data) * 8 / (faults.bandwidth_kbps * 1e3)
            wait = direction.busy_until - now
        delay = faults.delay_ms
        if faults.jitter_ms:
            delay += (2 * draw() - 1) * faults.jitter_ms
        if faults.reorder and draw() < faults.reorder:
            delay += faults.reorder_ms
            counters.reordered += 1
        wait += max(delay, 0.0) / 1e3
        copies = 2 if faults.duplicate and draw() < faults.duplicate else 1
        if copies == 2:
            counters.duplicated += 1
        if wait <= 0:
            for _ in range(copies):
                self._forward(counters, data, send)
            return
        counters.in_flight += 1
        loop.call_later(wait, self._land, counters, data, send, copies)

    def _land(self, counters: DirectionStatistics, data: bytes, send: _Send, copies: int) -> None:
        if self._closed:
            return
        counters.in_flight -= 1
        for _ in range(copies):
            self._forward(counters, data, send)

    @staticmethod
    def _forward(counters: DirectionStatistics, data: bytes, send: _Send) -> None:
        send(data)
        counters.forwarded += 1
        counters.bytes_forwarded += len(data)

    def _check(self, *names: str) -> None:
        for name in names:
            if name not in self._targets:
                raise UnknownNode(f"no node {name!r}; nodes are {sorted(self._targets)}")


class _Send:
    """Sends one datagram on a transport to a fixed address (or the connected peer)."""

    __slots__ = ("_address", "_transport")

    def __init__(self, transport: asyncio.DatagramTransport, address: Any = None) -> None:
        self._transport = transport
        self._address = address

    def __call__(self, data: bytes) -> None:
        if not self._transport.is_closing():
            self._transport.sendto(data, self._address)


class _Relay:
    """The relay for the ordered pair (dialer, target): its listening socket, and one
    upstream socket to the target per address the dialer sends from."""

    def __init__(
        self, network: FaultNetwork, dialer: str, target: str, address: tuple[str, int]
    ) -> None:
        self._network = network
        self._dialer = dialer
        self._target = target
        self._target_address = address
        self._listener: asyncio.DatagramTransport | None = None
        self._upstreams: dict[Any, _Upstream] = {}
        self.port = 0

    async def open(self, host: str) -> None:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _ListenerProtocol(self), local_addr=(host, 0)
        )
        _enlarge_receive_buffer(transport)
        self._listener = transport
        self.port = transport.get_extra_info("sockname")[1]

    def from_dialer(self, data: bytes, sender: Any) -> None:
        upstream = self._upstreams.get(sender)
        if upstream is None:
            if len(self._upstreams) >= _MAX_UPSTREAMS:  # the oldest first: dicts keep order
                self._upstreams.pop(next(iter(self._upstreams))).close()
            upstream = _Upstream(self, sender)
            self._upstreams[sender] = upstream
        upstream.send(data)

    def carry_out(self, data: bytes, send: _Send) -> None:
        self._network._carry(self._dialer, self._target, data, send)

    def carry_back(self, data: bytes, to: Any) -> None:
        if self._listener is not None:
            self._network._carry(self._target, self._dialer, data, _Send(self._listener, to))

    def close(self) -> None:
        for upstream in self._upstreams.values():
            upstream.close()
        self._upstreams.clear()
        if self._listener is not None:
            self._listener.close()
            self._listener = None


class _Upstream:
    """The socket a relay sends one dialer address's datagrams to the target from."""

    def __init__(self, relay: _Relay, dialer_address: Any) -> None:
        self._relay = relay
        self._dialer_address = dialer_address
        self._transport: asyncio.DatagramTransport | None = None
        self._pending: list[bytes] = []
        loop = asyncio.get_running_loop()
        # Opening is a coroutine; datagrams that come first wait for it, in order.
        self._opening = loop.create_task(self._open(loop, relay._target_address))

    async def _open(self, loop: asyncio.AbstractEventLoop, address: tuple[str, int]) -> None:
        try:
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _UpstreamProtocol(self), remote_addr=address
            )
        except OSError as error:
            logger.warning("fault network: cannot open an upstream socket: %s", error)
            self._pending.clear()
            return
        _enlarge_receive_buffer(transport)
        self._transport = transport
        pending, self._pending = self._pending, []
        for data in pending:
            self._relay.carry_out(data, _Send(transport))

    def send(self, data: bytes) -> None:
        if self._transport is None:
            self._pending.append(data)
            return
        self._relay.carry_out(data, _Send(self._transport))

    def from_target(self, data: bytes) -> None:
        self._relay.carry_back(data, self._dialer_address)

    def close(self) -> None:
        self._opening.cancel()
        if self._transport is not None:
            self._transport.close()
            self._transport = None


class _ListenerProtocol(asyncio.DatagramProtocol):
    def __init__(self, relay: _Relay) -> None:
        self._relay = relay

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self._relay.from_dialer(data, addr)

    def error_received(self, exc: Exception) -> None:
        # ICMP "port unreachable" after a node died: the datagram is gone, as on a
        # real network; the node's QUIC stack retransmits or times out.
        logger.debug("fault network: %s", exc)


class _UpstreamProtocol(asyncio.DatagramProtocol):
    def __init__(self, upstream: _Upstream) -> None:
        self._upstream = upstream

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self._upstream.from_target(data)

    def error_received(self, exc: Exception) -> None:
        logger.debug("fault network: %s", exc)


def _enlarge_receive_buffer(transport: asyncio.BaseTransport) -> None:
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):  # best effort: the default buffer still works
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RECEIVE_BUFFER)


def _direction_seed(seed: int, a: str, b: str) -> int:
    digest = hashlib.sha256(f"{seed}\0{a}\0{b}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


def _groups_text(assignment: Mapping[str, int]) -> str:
    groups: dict[int, list[str]] = {}
    for node, group in assignment.items():
        groups.setdefault(group, []).append(node)
    return " | ".join(",".join(sorted(nodes)) for _, nodes in sorted(groups.items()))

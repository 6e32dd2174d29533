"""Path-MTU discovery (``lean_p2p.driver.pmtu``): probes on an in-memory aioquic pair,
the route's ceiling, the never-fragmenting sockets, and two real hosts on loopback."""

from __future__ import annotations

import socket
import ssl
from pathlib import Path
from typing import Any

import pytest
from aioquic._buffer import Buffer
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.quic.events import StreamDataReceived
from aioquic.quic.packet import QuicTransportParameters, push_quic_transport_parameters
from aioquic.quic.packet_builder import QuicDeliveryState

from lean_p2p.driver.pmtu import (
    AIOQUIC_MAX_DATAGRAM,
    FALLBACK_SIZES,
    PathMtu,
    PathMtuStatistics,
    _build_probe,
    datagram_ceiling,
    path_mtu_of,
    peer_max_udp_payload,
    route_mtu,
)
from lean_p2p.driver.samples import sample_block
from lean_p2p.driver.udp import InOrderUdpSocketFactory
from lean_p2p.net.commands import Publish
from lean_p2p.net.events import GossipBlock
from lean_p2p.net.protocol import GossipTopic
from lean_p2p.tools.bench.block_path import self_signed_certificate
from tests.driver.harness import Node, connect

CLIENT = ("10.0.0.1", 4001)
SERVER = ("10.0.0.2", 4002)


class _Pair:
    """Two aioquic connections wired in memory, past their handshake; ``drop`` loses
    client datagrams larger than ``drop_above`` on the way."""

    def __init__(self, directory: Path) -> None:
        cert, key = self_signed_certificate(directory)
        client_config = QuicConfiguration(is_client=True, alpn_protocols=["t"])
        client_config.verify_mode = ssl.CERT_NONE
        server_config = QuicConfiguration(is_client=False, alpn_protocols=["t"])
        server_config.load_cert_chain(str(cert), str(key))
        self.client = QuicConnection(configuration=client_config)
        self.server = QuicConnection(
            configuration=server_config,
            original_destination_connection_id=self.client.original_destination_connection_id,
        )
        self.now = 1.0
        self.drop_above: int | None = None
        self.client_sizes: list[int] = []
        self.client.connect(SERVER, now=self.now)
        self.exchange()
        assert self.client._handshake_complete and self.server._handshake_complete

    def deliver_to_server(self, datagram: bytes) -> None:
        self.client_sizes.append(len(datagram))
        if self.drop_above is None or len(datagram) <= self.drop_above:
            self.server.receive_datagram(datagram, CLIENT, now=self.now)

    def exchange(self, rounds: int = 10) -> None:
        for _ in range(rounds):
            for datagram, _ in self.client.datagrams_to_send(now=self.now):
                self.deliver_to_server(datagram)
            for datagram, _ in self.server.datagrams_to_send(now=self.now):
                self.client.receive_datagram(datagram, SERVER, now=self.now)
            self.now += 0.001

    def run_timers_until(self, done: Any, limit_s: float = 5.0) -> None:
        """Advance time to each timer that falls due (delayed ACKs, loss detection)."""
        end = self.now + limit_s
        self.exchange(rounds=2)
        while not done() and self.now < end:
            # The next timer, but never past the idle timeout's: 0.1 s at most.
            timers = [t for t in (self.client.get_timer(), self.server.get_timer()) if t]
            self.now = min(max(self.now + 0.001, min(timers, default=self.now)), self.now + 0.1)
            self.client.handle_timer(self.now)
            self.server.handle_timer(self.now)
            self.exchange(rounds=2)


def test_a_probe_is_one_datagram_of_its_size_and_its_acknowledgement_widens_the_connection(
    tmp_path: Path,
) -> None:
    pair = _Pair(tmp_path)
    state = PathMtu(base=1200, size=1200)
    state.start(ceiling=9000, peer_limit=None)
    assert state.candidates == [9000, 8952, 1452]
    number, size = state.next_probe() or (0, 0)
    window_before = pair.client._loss.congestion_window
    in_flight_before = pair.client._loss.bytes_in_flight
    probe = _build_probe(pair.client, size, number, state, pair.now)
    assert len(probe) == 9000
    # Outside the congestion window: nothing counted in flight.
    assert pair.client._loss.bytes_in_flight == in_flight_before
    pair.deliver_to_server(probe)
    pair.run_timers_until(lambda: state.probing is None)
    assert state.size == 9000 and state.probes_lost == 0
    assert pair.client._max_datagram_size == 9000
    assert pair.client._loss.congestion_window >= window_before
    # A 100 KB stream now leaves in datagrams of up to 9,000 bytes, and arrives whole.
    pair.client_sizes.clear()
    stream = pair.client.get_next_available_stream_id()
    pair.client.send_stream_data(stream, bytes(100_000), end_stream=True)
    received = 0

    def all_received() -> bool:
        nonlocal received
        while (event := pair.server.next_event()) is not None:
            if isinstance(event, StreamDataReceived):
                received += len(event.data)
        return received == 100_000

    pair.run_timers_until(all_received)
    assert received == 100_000
    assert max(pair.client_sizes) == 9000
    assert len([s for s in pair.client_sizes if s > 1200]) >= 10


def test_a_lost_probe_leaves_the_size_and_the_next_candidate_is_probed(tmp_path: Path) -> None:
    pair = _Pair(tmp_path)
    state = PathMtu(base=1200, size=1200)
    state.start(ceiling=9000, peer_limit=None)
    pair.drop_above = 1452  # the path carries 1,452 bytes and no more
    window_before = pair.client._loss.congestion_window
    for lost, expected_size in enumerate((9000, 8952), start=1):
        number, size = state.next_probe() or (0, 0)
        assert size == expected_size
        pair.deliver_to_server(_build_probe(pair.client, size, number, state, pair.now))
        # Lost once later packets are acknowledged and its time threshold passes.
        pair.client.send_ping(lost)
        pair.run_timers_until(lambda: state.probing is None)
        assert state.probes_lost == lost and state.size == 1200
        assert pair.client._max_datagram_size == 1200
    # A lost probe is not congestion (RFC 9000 section 14.4).
    assert pair.client._loss.congestion_window >= window_before
    number, size = state.next_probe() or (0, 0)
    assert size == 1452
    pair.deliver_to_server(_build_probe(pair.client, size, number, state, pair.now))
    pair.run_timers_until(lambda: state.probing is None)
    assert state.size == 1452 and pair.client._max_datagram_size == 1452
    assert state.next_probe() is None  # nothing left to try


def test_a_late_report_of_a_probe_given_up_on_changes_nothing(tmp_path: Path) -> None:
    pair = _Pair(tmp_path)
    state = PathMtu(base=1200, size=1200)
    state.start(ceiling=9000, peer_limit=None)
    number, _ = state.next_probe() or (0, 0)
    state.unsent(number)  # the send buffer was full
    assert state.candidates[0] == 9000 and state.probes_sent == 0
    state.on_probe(QuicDeliveryState.ACKED, number, pair.client)
    assert state.size == 1200 and pair.client._max_datagram_size == 1200
    again, size = state.next_probe() or (0, 0)
    assert again == number + 1 and size == 9000


def test_a_refused_send_returns_the_connection_to_its_base_size(tmp_path: Path) -> None:
    pair = _Pair(tmp_path)
    totals = PathMtuStatistics()
    state = PathMtu(base=1200, size=1200, totals=totals)
    state.start(ceiling=9000, peer_limit=None)
    number, _ = state.next_probe() or (0, 0)
    state.on_probe(QuicDeliveryState.ACKED, number, pair.client)
    assert pair.client._max_datagram_size == 9000
    assert totals.widened == {9000: 1} and totals.probes_acknowledged == 1
    state.on_refused(pair.client)
    assert state.size == 1200 and pair.client._max_datagram_size == 1200
    assert state.refused == 1 and state.next_probe() is None
    assert totals.widened == {} and totals.refused_sends == 1


@pytest.mark.parametrize(
    ("ceiling", "peer_limit", "expected"),
    [
        (16_384, None, [16_384, 8_952, 1_452]),
        (16_384, 4_000, [4_000, 1_452]),
        (1_472, None, [1_472, 1_452]),
        (1_200, None, []),
        (None, None, []),
    ],
)
def test_the_probes_are_planned_from_the_ceiling_and_what_the_peer_accepts(
    ceiling: int | None, peer_limit: int | None, expected: list[int]
) -> None:
    state = PathMtu(base=1200, size=1200)
    state.start(ceiling, peer_limit)
    assert state.candidates == expected
    assert all(size in FALLBACK_SIZES or size in (ceiling, peer_limit) for size in expected)


def test_the_peers_max_udp_payload_size_is_read_from_its_transport_parameters() -> None:
    buffer = Buffer(capacity=256)
    push_quic_transport_parameters(buffer, QuicTransportParameters(max_udp_payload_size=1350))

    class _Tls:
        received_extensions = [(0x10, b"h3"), (0x39, buffer.data)]

    class _Quic:
        tls = _Tls()

    assert peer_max_udp_payload(_Quic()) == 1350
    _Tls.received_extensions = [(0x10, b"h3")]
    assert peer_max_udp_payload(_Quic()) is None


def test_the_ceiling_on_loopback_is_aioquics_largest_datagram() -> None:
    assert (route_mtu(("127.0.0.1", 9)) or 0) > AIOQUIC_MAX_DATAGRAM + 28  # 64 KiB here
    assert datagram_ceiling(("127.0.0.1", 9)) == AIOQUIC_MAX_DATAGRAM
    assert route_mtu(("not-an-address", 9)) is None


def test_driver_sockets_never_fragment_and_drop_what_the_path_cannot_carry() -> None:
    import trio

    async def main() -> None:
        sock = InOrderUdpSocketFactory().socket(socket.AF_INET, socket.SOCK_DGRAM)
        await sock.bind(("127.0.0.1", 0))
        assert sock.never_fragments
        assert sock.getsockopt(socket.IPPROTO_IP, 10) == 2  # IP_PMTUDISC_DO
        target = sock.getsockname()
        # Larger than loopback's 64 KiB MTU allows: refused by the kernel.
        too_large = bytes(65_508)
        assert await sock.sendto(too_large, target) == len(too_large)  # dropped, counted
        assert sock.oversized_drops_by_address == {tuple(target): 1}
        assert sock.try_send(too_large, target) is False
        assert sock.try_send(b"fits", target) is True
        sock.close()

    trio.run(main)


@pytest.mark.network
def test_real_hosts_find_loopbacks_size_and_carry_blocks_in_it() -> None:
    dialer, listener = Node().start(), Node().start()
    try:
        connect(dialer, listener)
        blocks = [sample_block(slot, 100_000) for slot in (1, 2, 3)]
        for block in blocks:
            dialer.send(Publish(GossipTopic.BLOCK, block))
        received = listener.expect_many(GossipBlock, 3)
        assert {b.block for b in received} == set(blocks)
        sizes = {node: _path_sizes(node) for node in (dialer, listener)}
        # Each side probed its own sending direction and uses the largest size.
        assert sizes == {dialer: [AIOQUIC_MAX_DATAGRAM], listener: [AIOQUIC_MAX_DATAGRAM]}
        for node in (dialer, listener):
            assert node.driver.statistics()["path_mtu"] == {
                "probes_sent": 1,
                "probes_acknowledged": 1,
                "probes_lost": 0,
                "refused_sends": 0,
                "widened": {AIOQUIC_MAX_DATAGRAM: 1},
            }
    finally:
        dialer.stop()
        listener.stop()


@pytest.mark.network
def test_without_path_mtu_discovery_connections_keep_their_size() -> None:
    dialer = Node(path_mtu_discovery=False).start()
    listener = Node(path_mtu_discovery=False).start()
    try:
        connect(dialer, listener)
        dialer.send(Publish(GossipTopic.BLOCK, sample_block(1, 100_000)))
        listener.expect_many(GossipBlock, 1)
        assert _path_sizes(dialer) == [] and _path_sizes(listener) == []
        assert _aioquic_sizes(dialer) == [1200] and _aioquic_sizes(listener) == [1200]
        assert dialer.driver.statistics()["path_mtu"]["probes_sent"] == 0
    finally:
        dialer.stop()
        listener.stop()


def _connections(node: Node) -> list[Any]:
    network = node.driver._host.get_network()
    return [conn for conns in network.connections.values() for conn in _as_list(conns)]


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else [value]


def _quic_connection(swarm_connection: Any) -> Any:
    return swarm_connection.muxed_conn


def _path_sizes(node: Node) -> list[int]:
    states = [path_mtu_of(_quic_connection(c)) for c in _connections(node)]
    return [state.size for state in states if state is not None]


def _aioquic_sizes(node: Node) -> list[int]:
    return [_quic_connection(c)._quic._max_datagram_size for c in _connections(node)]

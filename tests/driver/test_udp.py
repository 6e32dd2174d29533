"""In-order UDP sockets of the driver's trio run (``lean_p2p.driver.udp``)."""

from __future__ import annotations

import itertools
import socket
import sys
from pathlib import Path
from typing import Any

import pytest
import trio

from lean_p2p.driver.samples import sample_attestation
from lean_p2p.driver.udp import (
    SOCKET_BUFFER_BYTES,
    InOrderUdpSocket,
    install_in_order_udp_sockets,
)
from lean_p2p.net.commands import Publish
from lean_p2p.net.events import GossipAttestation
from lean_p2p.net.protocol import GossipTopic
from tests.driver.harness import Node, connect

BATCH = 100  # datagrams per task: 2 x 100 small ones fit any receive buffer


async def _bound_pair() -> tuple[Any, Any]:
    sender = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    await sender.bind(("127.0.0.1", 0))
    await receiver.bind(("127.0.0.1", 0))
    return sender, receiver


async def _two_senders_interleave(install: bool) -> bool:
    """Two tasks each send a numbered batch the way py-libp2p's ``_transmit`` does (one
    ``await sendto`` per datagram); True when the batches interleaved on the wire."""
    if install:
        install_in_order_udp_sockets()
    sender, receiver = await _bound_pair()
    destination = receiver.getsockname()

    async def send_batch(name: bytes) -> None:
        for index in range(BATCH):
            await sender.sendto(name + index.to_bytes(2, "big"), destination)

    with sender, receiver:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(send_batch, b"a")
            nursery.start_soon(send_batch, b"b")
        with trio.fail_after(10):  # a lost datagram must fail the test, not hang it
            arrived = [(await receiver.recvfrom(64))[0][:1] for _ in range(2 * BATCH)]
    switches = sum(1 for first, second in itertools.pairwise(arrived) if first != second)
    return switches > 1


def test_each_burst_leaves_in_one_piece_with_in_order_sockets() -> None:
    assert not trio.run(_two_senders_interleave, True)


def test_trio_sockets_interleave_concurrent_bursts() -> None:
    # The behaviour the module works around: if trio ever stops yielding after a
    # successful send, this fails and the wrapper can go.
    assert trio.run(_two_senders_interleave, False)


def test_datagram_sockets_only_and_only_in_the_installing_run() -> None:
    async def kinds() -> tuple[type, type]:
        install_in_order_udp_sockets()
        with (
            trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp,
            trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp,
        ):
            return type(udp), type(tcp)

    async def plain() -> type:
        with trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            return type(udp)

    udp, tcp = trio.run(kinds)
    assert udp is InOrderUdpSocket
    assert not issubclass(tcp, InOrderUdpSocket)
    assert isinstance(tcp, type) and issubclass(tcp, trio.socket.SocketType)
    assert trio.run(plain) is not InOrderUdpSocket  # another trio run is untouched


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux buffer limits")
def test_datagram_socket_buffers_are_raised() -> None:
    granted_max = int(Path("/proc/sys/net/core/rmem_max").read_text())
    default = int(Path("/proc/sys/net/core/rmem_default").read_text())

    async def buffer() -> int:
        install_in_order_udp_sockets()
        with trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            return int(udp.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF))

    # Linux reports twice what it granted; it grants min(request, rmem_max).
    assert trio.run(buffer) == 2 * min(SOCKET_BUFFER_BYTES, max(granted_max, default))


class _FullOnce:
    """A stdlib socket stand-in whose first send finds the buffer full."""

    def __init__(self, real: socket.socket) -> None:
        self._real = real
        self.refused = 0

    def sendto(self, *args: Any) -> int:
        if not self.refused:
            self.refused += 1
            raise BlockingIOError
        return self._real.sendto(*args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def test_full_send_buffer_falls_back_to_waiting_send(monkeypatch: pytest.MonkeyPatch) -> None:
    async def main() -> tuple[bytes, InOrderUdpSocket, _FullOnce]:
        install_in_order_udp_sockets()
        sender, receiver = await _bound_pair()
        assert isinstance(sender, InOrderUdpSocket)
        full = _FullOnce(sender._raw)
        monkeypatch.setattr(sender, "_raw", full)
        with sender, receiver:
            await sender.sendto(b"waited", receiver.getsockname())
            data, _ = await receiver.recvfrom(64)
        return data, sender, full

    data, sender, full = trio.run(main)
    assert data == b"waited"
    assert full.refused == 1
    assert (sender.immediate_sends, sender.waited_sends) == (0, 1)


def test_host_names_are_resolved_by_trio_not_on_the_immediate_path() -> None:
    async def main() -> tuple[bytes, InOrderUdpSocket]:
        install_in_order_udp_sockets()
        sender, receiver = await _bound_pair()
        port = receiver.getsockname()[1]
        with sender, receiver:
            await sender.sendto(b"named", ("localhost", port))
            await sender.sendto(b"numeric", 0, ("127.0.0.1", port))  # the flags form too
            first, _ = await receiver.recvfrom(64)
            second, _ = await receiver.recvfrom(64)
        assert first + second == b"namednumeric"
        return first, sender

    _, sender = trio.run(main)
    assert (sender.immediate_sends, sender.waited_sends) == (1, 1)


@pytest.mark.network
def test_driver_quic_runs_on_in_order_sockets() -> None:
    dialer, listener = Node().start(), Node().start()
    try:
        connect(dialer, listener)
        for index in range(40):
            attestation = sample_attestation(index % 4, index)
            dialer.send(Publish(GossipTopic.ATTESTATION, attestation))
        received = listener.expect_many(GossipAttestation, 40)
        assert len(received) == 40
        for node in (dialer, listener):
            sockets = _quic_sockets(node)
            assert sockets and all(isinstance(s, InOrderUdpSocket) for s in sockets)
        assert sum(s.immediate_sends for s in _quic_sockets(dialer)) > 0
    finally:
        dialer.stop()
        listener.stop()


def _quic_sockets(node: Node) -> list[Any]:
    """The UDP sockets of a driver's QUIC listener and connections (py-libp2p internals)."""
    network = node.driver._host.get_network()
    sockets = []
    for transport in getattr(network, "transport", None), *getattr(network, "transports", ()):
        getter = getattr(transport, "get_listener_socket", None)
        if getter is not None and getter() is not None:
            sockets.append(getter())
    for connections in network.connections.values():
        for connection in connections if isinstance(connections, list) else [connections]:
            muxed: Any = getattr(connection, "muxed_conn", connection)
            udp = getattr(muxed, "_socket", None)
            if udp is not None:
                sockets.append(udp)
    return sockets


def test_try_recvfrom_takes_queued_datagrams_and_never_waits() -> None:
    async def main() -> list[Any]:
        install_in_order_udp_sockets()
        sender, receiver = await _bound_pair()
        assert isinstance(receiver, InOrderUdpSocket)
        with sender, receiver:
            taken = [receiver.try_recvfrom(64)]  # nothing queued: None at once
            for payload in (b"first", b"second"):
                await sender.sendto(payload, receiver.getsockname())
            with trio.fail_after(10):
                await receiver.wait_readable()
            taken += [receiver.try_recvfrom(64), receiver.try_recvfrom(64)]
            taken.append(receiver.try_recvfrom(64))
            return [None if t is None else t[0] for t in taken]

    assert trio.run(main) == [None, b"first", b"second", None]


def test_closing_the_socket_wakes_a_reader_parked_in_wait_readable() -> None:
    async def main() -> None:
        install_in_order_udp_sockets()
        sender, receiver = await _bound_pair()
        sender.close()
        assert isinstance(receiver, InOrderUdpSocket)

        async def close_soon() -> None:
            await trio.sleep(0.05)
            receiver.close()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(close_soon)
            with pytest.raises(trio.ClosedResourceError), trio.fail_after(10):
                await receiver.wait_readable()

    trio.run(main)

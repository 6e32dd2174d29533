"""Host construction: QUIC-v1 only, TLS only, and py-libp2p agrees on our peer ids."""

from __future__ import annotations

from typing import Any

import trio

from lean_p2p.driver.host import build_host
from lean_p2p.wire.keys import NodeKey

# The EIP-778 example key; its peer id is what other lean clients derive from it.
EXAMPLE_KEY = NodeKey.from_hex("b71c71a67e1177ad4e901695e1b4b9ee17ae16c6668d313eac2f96dbcda3f291")
EXAMPLE_PEER_ID = "16Uiu2HAmSH2XVgZqYHWucap5kuPzLnt2TsNQkoppVxB5eJGvaXwm"


def _build_on_trio(secret: bytes) -> Any:
    """build_host belongs on the driver's trio thread: call it inside a trio run."""

    async def build() -> Any:
        return build_host(secret)

    return trio.run(build)


def test_host_offers_only_quic_and_no_insecure_channel() -> None:
    host = _build_on_trio(EXAMPLE_KEY.private_key)
    network = host.get_network()
    transports = network.transport_manager.get_transports()
    assert [type(t).__name__ for t in transports] == ["LeanQUICTransport"]
    quic_config = transports[0]._config
    assert quic_config.enable_v1 and not quic_config.enable_draft29
    offered = set(network.upgrader.security_multistream.transports)
    assert offered == {"/tls/1.0.0"}  # no /plaintext/2.0.0, no /secio/1.0.0, no noise


def test_py_libp2p_derives_the_same_peer_id_as_our_keys() -> None:
    # Our peer ids (lean_p2p.wire.peer_id) are computed without py-libp2p; the host's
    # own identity must agree, or dials to /p2p/<peer id> would fail the TLS check.
    assert str(_build_on_trio(EXAMPLE_KEY.private_key).get_id()) == EXAMPLE_PEER_ID
    other = NodeKey.generate()
    assert str(_build_on_trio(other.private_key).get_id()) == other.peer_id


def test_a_connection_starts_no_identify() -> None:
    # The lean protocol has no identify, and leanSpec's node answers it with "na" (then
    # logs a warning for the stream py-libp2p resets). py-libp2p schedules it
    # synchronously on connect, so right after connect() it is either in flight on the
    # dialer, or already arrived at the listener; neither may happen.
    import multiaddr
    from libp2p.identity.identify.identify import ID as IDENTIFY
    from libp2p.peer.peerinfo import PeerInfo

    identify_streams: list[str] = []
    echoed: list[bytes] = []

    async def scenario() -> None:
        dialer = build_host(NodeKey.generate().private_key)
        listener = build_host(NodeKey.generate().private_key)

        async def on_identify(stream: Any) -> None:
            identify_streams.append(str(stream.muxed_conn.peer_id))
            await stream.close()

        async def on_echo(stream: Any) -> None:
            await stream.write(await stream.read(5))
            await stream.close()

        listener.set_stream_handler(IDENTIFY, on_identify)
        listener.set_stream_handler("/lean-p2p-test/echo/1", on_echo)
        loopback = multiaddr.Multiaddr("/ip4/127.0.0.1/udp/0/quic-v1")
        async with (
            listener.run(listen_addrs=[loopback]),
            dialer.run(listen_addrs=[loopback]),
        ):
            try:
                address = listener.get_addrs()[0]
                await dialer.connect(PeerInfo(listener.get_id(), [address]))
                assert not dialer._identify_tasks and not dialer._identify_inflight
                # A stream after the connection: by its answer, the listener has served
                # whatever the dialer opened before it.
                stream = await dialer.new_stream(listener.get_id(), ["/lean-p2p-test/echo/1"])
                await stream.write(b"hello")
                echoed.append(await stream.read(5))
                await stream.close()
                assert not dialer._identify_tasks and not dialer._identify_inflight
            finally:
                # as the driver does: py-libp2p's own shutdown leaks the UDP sockets
                with trio.CancelScope(shield=True):
                    await dialer.close()
                    await listener.close()

    trio.run(scenario)
    assert echoed == [b"hello"]
    assert identify_streams == []

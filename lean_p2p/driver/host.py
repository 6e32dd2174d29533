"""Construction of the lean py-libp2p host: QUIC-v1, libp2p-TLS, secp256k1 identity.

Trio driver thread: :func:`build_host` must be called on the driver's trio thread
(py-libp2p objects belong to the trio run that uses them). Identity keys, key files
and peer ids are :mod:`lean_p2p.wire.keys` (any thread, shared with the node).

The lean network speaks only QUIC-v1 with the libp2p TLS handshake built into QUIC, and
identifies peers by secp256k1 keys (peer ids ``16Uiu2...``). py-libp2p's defaults are
different (TCP, Ed25519, and an upgrader that offers Noise, TLS, SECIO *and plaintext*),
so every choice is made explicitly here: the only transport is a QUIC transport with
draft-29 disabled, and the TCP upgrader (unused, but constructed by the swarm) is given
TLS alone so that no insecure channel can ever be negotiated.
"""

from __future__ import annotations

from typing import Any

__all__ = ["build_host"]

_STREAM_WINDOW = 16 * 1024 * 1024
_CONNECTION_WINDOW = 32 * 1024 * 1024
_NO_STREAM_READ_TIMEOUT = 365 * 24 * 3600.0


def build_host(
    secret: bytes,
    *,
    idle_timeout: float = 60.0,
    max_datagram_size: int = 1200,
    path_mtu_discovery: bool = True,
) -> Any:
    """Build (not start) a QUIC-v1-only host with the given secp256k1 identity.

    Trio thread. Returns a py-libp2p ``IHost`` (typed ``Any``: py-libp2p ships no
    usable stubs for it).
    """
    from libp2p import new_host
    from libp2p.crypto.secp256k1 import create_new_key_pair
    from libp2p.network.config import ConnectionConfig
    from libp2p.security.tls.transport import PROTOCOL_ID as TLS_PROTOCOL_ID
    from libp2p.security.tls.transport import TLSTransport
    from libp2p.transport.quic.config import QUICTransportConfig

    from lean_p2p.driver.quic import LeanQUICTransport
    from lean_p2p.driver.udp import install_in_order_udp_sockets

    # py-libp2p's QUIC sends datagrams from several tasks with a scheduling point after
    # each one, which reorders them on the wire and makes aioquic's loss detection
    # shrink the congestion window for packets that arrived (see udp.py). Sockets made
    # by this trio run from here on send in order.
    install_in_order_udp_sockets()
    key_pair = create_new_key_pair(secret)
    quic_config = QUICTransportConfig(enable_draft29=False, enable_v1=True)
    quic_config.idle_timeout = idle_timeout
    # 1200 bytes is safe on every path (QUIC's minimum); each connection then probes
    # its path for larger datagrams (aioquic has no path-MTU discovery of its own).
    quic_config.max_datagram_size = max_datagram_size
    # Flow control: py-libp2p's 1 MiB stream window would stall a 10 MiB gossip
    # message or block response on window updates; raise windows and buffers above
    # the largest lean message.
    quic_config.STREAM_FLOW_CONTROL_WINDOW = _STREAM_WINDOW
    quic_config.CONNECTION_FLOW_CONTROL_WINDOW = _CONNECTION_WINDOW
    quic_config.MAX_STREAM_RECEIVE_BUFFER = _CONNECTION_WINDOW
    quic_config.STREAM_SEND_BUFFER_HIGH_WATERMARK = _STREAM_WINDOW
    # py-libp2p's QUIC streams time a read out after 30 s by default. Gossip streams
    # are legitimately idle longer than that, and req/resp applies its own deadlines
    # (reqresp.py), so the stream-level read timeout is effectively disabled.
    quic_config.STREAM_READ_TIMEOUT = _NO_STREAM_READ_TIMEOUT
    transport = LeanQUICTransport(
        key_pair.private_key, config=quic_config, path_mtu_discovery=path_mtu_discovery
    )
    host: Any = new_host(
        key_pair=key_pair,
        transports=[transport],
        # Only used by stream-upgraded transports (none are registered), but the swarm
        # builds an upgrader regardless: leave nothing insecure in it.
        sec_opt={TLS_PROTOCOL_ID: TLSTransport(key_pair)},
        enable_tcp=False,
        # Lean peers come from configuration and explicit dials only: switch off the
        # swarm's auto-connector, which otherwise redials every peerstore entry.
        connection_config=ConnectionConfig(min_connections=0, low_watermark=0),
    )
    # py-libp2p runs identify (/ipfs/id/1.0.0) on every new connection. The lean
    # protocol has no identify: its peers' protocols are fixed by the spec, and
    # leanSpec's node answers "na", after which py-libp2p resets the stream and leanSpec
    # logs a WARNING per connection. So we never start it; we still answer a peer's.
    host._schedule_identify = _no_identify
    return host


def _no_identify(peer_id: Any, *, reason: str) -> None:
    """Stands in for py-libp2p's ``BasicHost._schedule_identify``: starts nothing."""

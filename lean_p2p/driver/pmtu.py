"""Path-MTU discovery for the driver's QUIC connections (RFC 9000 section 14.3, the
probing of RFC 8899). Trio driver thread.

WHY. aioquic builds, encrypts, acknowledges and parses every packet in Python, so a
block's cost is per datagram, not per byte: a 100 KB block is 86 datagrams of 1,200
bytes, and an in-memory pair of aioquic connections spends about 6.8 ms of CPU moving
it at that size against 1.3 ms in 9,000-byte datagrams (docs/bench-gossip.md). 1,200
bytes is QUIC's minimum, safe on every path; a path that carries more should be used
at its size, and only a probe can tell.

HOW. Every connection starts at the configured datagram size. Once its handshake is
complete:

- the largest size worth trying is the kernel's MTU for the route to the peer
  (``IP_MTU``/``IPV6_MTU`` of a UDP socket connected to it: the interface's MTU, or
  a smaller path MTU the kernel learned) less the IP and UDP headers, capped at
  :data:`AIOQUIC_MAX_DATAGRAM` and at the ``max_udp_payload_size`` the peer
  announced;
- a probe is one PING in a datagram padded to that size, sent outside the congestion
  window (its loss says nothing about congestion, RFC 9000 section 14.4). When the
  peer acknowledges it, the connection sends datagrams of that size from then on;
  when it is lost, the next smaller candidate is probed (:data:`FALLBACK_SIZES`), and
  when none is left the connection keeps its size;
- the driver's UDP sockets never fragment (``IP_PMTUDISC_DO``,
  :mod:`lean_p2p.driver.udp`): a datagram larger than the path's MTU is refused by the
  kernel or dropped on the way, never delivered in pieces. If the kernel later refuses
  a send as too large (the route's MTU fell), the datagram is dropped (QUIC resends its
  frames) and the connection goes back to its base size.

aioquic has no public API for any of this; the probe is built with its packet builder
and registered with its loss recovery exactly as its own packets are, and the size
lives in three private fields (the connection's, its congestion controller's and its
pacer's). ``tests/driver/test_pmtu.py`` pins that behaviour against the installed
aioquic.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import time
from dataclasses import dataclass, field
from typing import Any

from aioquic._buffer import Buffer
from aioquic.quic.connection import QuicConnectionState
from aioquic.quic.packet import (
    QuicFrameType,
    QuicPacketType,
    pull_quic_transport_parameters,
)
from aioquic.quic.packet_builder import QuicDeliveryState, QuicPacketBuilder
from aioquic.tls import Epoch

from lean_p2p.driver.udp import InOrderUdpSocket

__all__ = [
    "AIOQUIC_MAX_DATAGRAM",
    "FALLBACK_SIZES",
    "PathMtu",
    "PathMtuStatistics",
    "datagram_ceiling",
    "path_mtu_of",
    "route_mtu",
    "set_datagram_size",
]

logger = logging.getLogger(__name__)

#: aioquic writes a STREAM frame's length as a 2-byte varint (at most 16,383 bytes), so
#: a larger datagram would carry frames it cannot encode; 16,384 leaves room for the
#: packet header, the frame header and the AEAD tag within that bound
AIOQUIC_MAX_DATAGRAM = 16_384
#: smaller sizes probed after a larger probe was lost: a 9,000-byte (jumbo) and a
#: 1,500-byte (Ethernet) link under IPv6 and UDP headers
FALLBACK_SIZES = (8_952, 1_452)
#: IP and UDP header bytes a datagram pays on top of its payload
_HEADERS = {socket.AF_INET: 20 + 8, socket.AF_INET6: 40 + 8}
# Linux socket options the socket module does not name
_IP_MTU = 14
_IPV6_MTU = 24
#: QUIC's transport parameters TLS extension (RFC 9001 section 8.2)
_QUIC_TRANSPORT_PARAMETERS = 0x39
#: the initial congestion window of RFC 9002 section 7.2, in datagrams
_INITIAL_WINDOW_PACKETS = 10


def route_mtu(address: tuple[Any, ...]) -> int | None:
    """The kernel's MTU for the route to ``address`` (an IP literal and a port), or None
    where the platform cannot tell. No datagram is sent: connecting a UDP socket only
    looks the route up."""
    try:
        family = (
            socket.AF_INET6 if ipaddress.ip_address(address[0]).version == 6 else socket.AF_INET
        )
    except ValueError:
        return None
    level, option = (
        (socket.IPPROTO_IPV6, _IPV6_MTU)
        if family == socket.AF_INET6
        else (socket.IPPROTO_IP, _IP_MTU)
    )
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.connect(address[:2] if family == socket.AF_INET else address)
            return int(probe.getsockopt(level, option))
    except OSError:
        return None


def datagram_ceiling(address: tuple[Any, ...]) -> int | None:
    """The largest datagram worth probing towards ``address``: the route's MTU less
    the IP and UDP headers, at most :data:`AIOQUIC_MAX_DATAGRAM`; None if unknown."""
    mtu = route_mtu(address)
    if mtu is None:
        return None
    family = socket.AF_INET6 if ":" in str(address[0]) else socket.AF_INET
    return min(mtu - _HEADERS[family], AIOQUIC_MAX_DATAGRAM)


def peer_max_udp_payload(quic: Any) -> int | None:
    """The ``max_udp_payload_size`` the peer announced in its transport parameters, or
    None if it announced none (then 65,527 applies)."""
    tls = getattr(quic, "tls", None)
    for extension_type, data in getattr(tls, "received_extensions", None) or ():
        if extension_type == _QUIC_TRANSPORT_PARAMETERS:
            parameters = pull_quic_transport_parameters(Buffer(data=data))
            size = parameters.max_udp_payload_size
            return None if size is None else int(size)
    return None


def set_datagram_size(quic: Any, size: int) -> None:
    """Make the aioquic connection ``quic`` build datagrams of up to ``size`` bytes.

    Its congestion window, which counts bytes, is left as it is, except that it is
    raised to the initial window RFC 9002 gives datagrams of this size (ten of them,
    but no more than max(14,720, 2 x size) bytes) if it is smaller."""
    quic._max_datagram_size = size
    recovery = quic._loss
    controller = recovery._cc
    controller._max_datagram_size = size
    recovery._pacer._max_datagram_size = size
    initial = min(_INITIAL_WINDOW_PACKETS * size, max(14_720, 2 * size))
    controller.congestion_window = max(controller.congestion_window, initial)


@dataclass(slots=True)
class PathMtuStatistics:
    """Path-MTU discovery over all of a transport's connections (trio thread writes;
    any thread may read a snapshot, possibly a few increments stale)."""

    probes_sent: int = 0
    probes_acknowledged: int = 0
    probes_lost: int = 0
    #: datagrams the kernel refused as too large for the path (then back to the base)
    refused_sends: int = 0
    #: connections that send larger datagrams than they started with, by size
    widened: dict[int, int] = field(default_factory=dict)


@dataclass(slots=True)
class PathMtu:
    """One connection's path-MTU state (see the module docstring)."""

    base: int
    #: the size the connection sends now
    size: int
    #: sizes still to probe, largest first
    candidates: list[int] = field(default_factory=list)
    #: the size of the probe in flight, if any, and that probe's number
    probing: int | None = None
    probe_number: int = 0
    probes_sent: int = 0
    probes_lost: int = 0
    #: sends the kernel refused as too large for the path
    refused: int = 0
    #: the transport's totals, kept up to date by this connection's events
    totals: PathMtuStatistics = field(default_factory=PathMtuStatistics)

    def start(self, ceiling: int | None, peer_limit: int | None) -> None:
        """Plan the probes: the ceiling, then the fallbacks below it, all above the
        base size and within what the peer accepts."""
        if ceiling is None:
            return
        limit = ceiling if peer_limit is None else min(ceiling, peer_limit)
        sizes = {limit, *FALLBACK_SIZES}
        self.candidates = sorted((s for s in sizes if self.base < s <= limit), reverse=True)

    def next_probe(self) -> tuple[int, int] | None:
        """The number and size of the probe to send now, if one is due (none while a
        probe is in flight)."""
        if self.probing is not None or not self.candidates:
            return None
        self.probing = self.candidates.pop(0)
        self.probe_number += 1
        self.probes_sent += 1
        self.totals.probes_sent += 1
        return self.probe_number, self.probing

    def unsent(self, number: int) -> None:
        """Probe ``number`` could not be sent (the send buffer was full): its size is
        due again. Its packet stays registered with loss recovery, so its loss is
        still reported, and ignored: it is no longer the probe in flight."""
        if number == self.probe_number and self.probing is not None:
            self.candidates.insert(0, self.probing)
            self.probing = None
            self.probes_sent -= 1
            self.totals.probes_sent -= 1

    def on_probe(self, delivery: QuicDeliveryState, number: int, quic: Any) -> None:
        """aioquic's delivery handler of probe ``number``: called once, when it is
        acknowledged or declared lost (within ``receive_datagram`` or a timer)."""
        if number != self.probe_number or self.probing is None:
            return  # a probe given up on (unsent, or from before a fall back)
        size, self.probing = self.probing, None
        if delivery == QuicDeliveryState.ACKED:
            self.totals.probes_acknowledged += 1
            if size > self.size:
                self._count_widened(self.size, size)
                self.size = size
                self.candidates.clear()
                set_datagram_size(quic, size)
                logger.info("QUIC path-MTU probe acknowledged: datagrams of %d bytes", size)
        else:
            self.probes_lost += 1
            self.totals.probes_lost += 1
            logger.debug("QUIC path-MTU probe of %d bytes lost", size)

    def on_refused(self, quic: Any) -> None:
        """The kernel refused a datagram as too large for the path: back to the base
        size, with no probe left (the path's MTU fell under the connection)."""
        self.refused += 1
        self.totals.refused_sends += 1
        if self.size == self.base:
            return
        logger.warning(
            "QUIC datagram of %d bytes refused as too large for the path; back to %d",
            self.size,
            self.base,
        )
        self._count_widened(self.size, self.base)
        self.size = self.base
        self.candidates.clear()
        self.probing = None
        set_datagram_size(quic, self.base)

    def _count_widened(self, old: int, new: int) -> None:
        widened = self.totals.widened
        if old != self.base:
            widened[old] -= 1
            if not widened[old]:
                del widened[old]
        if new != self.base:
            widened[new] = widened.get(new, 0) + 1


def path_mtu_of(connection: Any) -> PathMtu | None:
    """The path-MTU state of a py-libp2p QUIC connection, once probing has begun."""
    state: PathMtu | None = getattr(connection, "_lean_path_mtu", None)
    return state


def probe_path_mtu(connection: Any, totals: PathMtuStatistics | None = None) -> None:
    """Start or continue path-MTU discovery on a py-libp2p ``QUICConnection``: call
    after each batch of datagrams the connection took. Sends at most one probe, at
    once (no scheduling point), and only on the driver's own never-fragmenting UDP
    sockets. ``totals``: the transport's statistics, which this connection adds to."""
    quic = connection._quic
    sock = connection._socket
    if (
        not quic._handshake_complete
        or quic._state is not QuicConnectionState.CONNECTED  # closing: no new packets
        or connection._closed
        or not isinstance(sock, InOrderUdpSocket)
        or not sock.never_fragments
    ):
        return
    address = tuple(connection._remote_addr)
    state = path_mtu_of(connection)
    if state is None:
        state = PathMtu(
            base=quic._max_datagram_size,
            size=quic._max_datagram_size,
            totals=totals if totals is not None else PathMtuStatistics(),
        )
        connection._lean_path_mtu = state
        state.start(datagram_ceiling(address), peer_max_udp_payload(quic))
    if sock.oversized_drops_by_address.pop(address, 0):
        state.on_refused(quic)
    probe = state.next_probe()
    if probe is None:
        return
    number, size = probe
    # py-libp2p and the batching receivers drive aioquic on time.time()
    sent = sock.try_send(_build_probe(quic, size, number, state, time.time()), address)
    if sent is None:
        state.unsent(number)
    elif not sent:  # too large for the route as the kernel knows it now
        state.on_probe(QuicDeliveryState.LOST, number, quic)


def _build_probe(quic: Any, size: int, number: int, state: PathMtu, now: float) -> bytes:
    """A 1-RTT datagram of exactly ``size`` bytes: a PING and PADDING, registered with
    the connection's loss recovery (its acknowledgement or loss calls
    :meth:`PathMtu.on_probe`) but not counted against the congestion window. ``now``
    is on the clock the connection is driven by."""
    builder = QuicPacketBuilder(
        host_cid=quic.host_cid,
        is_client=quic._is_client,
        max_datagram_size=size,
        packet_number=quic._packet_number,
        peer_cid=quic._peer_cid.cid,
        peer_token=quic._peer_token,
        spin_bit=quic._spin_bit,
        version=quic._version,
    )
    builder.start_packet(QuicPacketType.ONE_RTT, quic._cryptos[Epoch.ONE_RTT])
    builder.start_frame(QuicFrameType.PING, handler=state.on_probe, handler_args=(number, quic))
    # Padded inside the packet up to the datagram's size, as aioquic pads datagrams
    # that must reach 1,200 bytes.
    builder._datagram_needs_padding = True
    datagrams, packets = builder.flush()
    quic._packet_number = builder.packet_number
    for packet in packets:
        packet.sent_time = now
        packet.in_flight = False  # outside the congestion window (RFC 9000 14.4)
        quic._loss.on_packet_sent(packet=packet, space=quic._spaces[Epoch.ONE_RTT])
    assert len(datagrams) == 1 and len(datagrams[0]) == size, "a probe is one datagram"
    return datagrams[0]

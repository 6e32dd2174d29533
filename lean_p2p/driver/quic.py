"""A QUIC transport that takes datagrams in batches. Trio driver thread.

WHY THIS MODULE EXISTS. py-libp2p's QUIC handles one datagram at a time, on both of
its receive paths (the listener's, for connections peers dialed, and each dialed
connection's own): ``await sock.recvfrom`` (a trip through trio's scheduler), on the
listener a connection-id lookup under an async lock, aioquic's ``receive_datagram``,
a pass over the connection's events, and a ``_transmit`` that asks aioquic for
datagrams to send — for every datagram. Profiled on the receiving side of
``lean-p2p bench gossip`` (a 2.6 KB attestation is about three 1,200-byte datagrams),
that per-datagram path was most of the ~0.7 ms of CPU each attestation cost, and
4,000-byte datagrams (one per message) cut the receiver's cost per message to a
third: the cost is per datagram, not per byte.

What changes, and only on sockets made by :mod:`lean_p2p.driver.udp` (other sockets
keep py-libp2p's loops):

- a receiver waits for readability once, then takes every datagram already queued
  (up to :data:`MAX_BATCH`) with non-blocking ``recvfrom`` calls, without scheduling
  points in between;
- on the listener, a short-header datagram whose destination connection id belongs
  to an established connection goes straight to that connection's aioquic state (a
  dict lookup; the registry's lock guards nothing a synchronous lookup on the one
  trio thread could race with); everything else — long headers (handshakes, new
  connections, version negotiation), unknown connection ids — goes through
  py-libp2p's own ``_process_packet``, in the order received;
- each connection touched by the batch then processes all its events and transmits
  once, after the whole batch, instead of once per datagram; its event loop, which
  sleeps until the aioquic timer it last read, is woken when the batch moved that
  timer earlier, so aioquic's timers (delayed ACKs, loss detection) are served as
  before.

Ordering: datagrams of one connection reach aioquic in the order the kernel queued
them, exactly as before; only the moment of event processing and transmission moves to
the end of the batch (microseconds later). A connection that fails while taking a
datagram is removed as py-libp2p's routing removes it.

A READ RACE IN py-libp2p's QUIC STREAM, made frequent by batching: ``QUICStream.read``
finds its buffer empty, then awaits its state lock; if the stream's last data and its
FIN are both delivered in that gap, the reader sees ``_read_closed`` and raises end of
stream with the data still buffered. Per-datagram processing rarely let data and FIN
land in one scheduling turn; batches do (a Status request lost its 43 bytes in about
one round trip in 150). :func:`take_data_left_at_end` returns those bytes; the
driver's readers call it when py-libp2p reports the end of a stream.

Thread: everything here runs on the driver's trio thread.
"""

from __future__ import annotations

import functools
import logging
import time
from typing import Any

import trio
from libp2p.transport.quic.connection import QUICConnection
from libp2p.transport.quic.exceptions import QUICListenError
from libp2p.transport.quic.listener import QUICListener
from libp2p.transport.quic.transport import QUICTransport

from lean_p2p.driver.pmtu import PathMtuStatistics, probe_path_mtu
from lean_p2p.driver.udp import InOrderUdpSocket

__all__ = [
    "MAX_BATCH",
    "BatchingQUICListener",
    "LeanQUICTransport",
    "receive_dialed_connection",
    "take_data_left_at_end",
]

logger = logging.getLogger(__name__)

#: datagrams taken per wake-up before the batch is processed (bounds the time the
#: listener holds the trio thread: ~64 x 1,200 bytes, a few milliseconds of work)
MAX_BATCH = 64

_RECEIVE_SIZE = 65536
_RETRY_AFTER_ERROR = 0.01  # seconds, as py-libp2p's receive loops pause after an error
_SHORT_HEADER_CID_LENGTH = 8  # py-libp2p issues 8-byte connection ids


class BatchingQUICListener(QUICListener):
    """``QUICListener`` whose receive loop takes queued datagrams in batches."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        #: batches that reached an established connection, and their datagrams
        self.batches = 0
        self.batched_datagrams = 0
        self.receive_errors = 0

    async def _handle_incoming_packets(self) -> None:
        sock = self._socket
        if not isinstance(sock, InOrderUdpSocket):
            await super()._handle_incoming_packets()
            return
        while self._listening and self._socket is sock:
            try:
                await sock.wait_readable()
                await self._take_batch(sock)
            except Exception as error:
                if _socket_closed(sock, error):
                    logger.debug("QUIC listener socket closed: %s", error)
                    break
                # As py-libp2p's loop does: a failed receive is not the listener's end.
                self.receive_errors += 1
                logger.warning("QUIC listener receive failed: %r", error)
                await trio.sleep(_RETRY_AFTER_ERROR)

    async def _take_batch(self, sock: InOrderUdpSocket) -> None:
        touched: dict[int, Any] = {}
        timers_before: dict[int, float | None] = {}
        for _ in range(MAX_BATCH):
            received = sock.try_recvfrom(_RECEIVE_SIZE)
            if received is None:
                break
            data, address = received
            connection = self._established_connection(data)
            if connection is None:
                # py-libp2p's path, after this batch's earlier datagrams were taken:
                # handshakes and unknown connection ids keep its semantics.
                await self._process_packet(data, address)
                continue
            self._stats["packets_processed"] += 1
            self._stats["bytes_received"] += len(data)
            if id(connection) not in touched:
                timers_before[id(connection)] = connection._quic.get_timer()
            try:
                connection._quic.receive_datagram(data, address, now=time.time())
            except Exception:
                logger.exception("QUIC datagram from %s failed; closing its connection", address)
                touched.pop(id(connection), None)
                await self._remove_connection_by_addr(address)
                continue
            touched[id(connection)] = connection
            self.batched_datagrams += 1
        if not touched:
            return
        self.batches += 1
        for key, connection in touched.items():
            await _after_batch(connection, timers_before[key])

    def _established_connection(self, data: bytes) -> Any:
        """The established connection a short-header datagram is for, or None."""
        if not data or data[0] & 0x80:  # empty, or a long header: py-libp2p's path
            return None
        destination = bytes(data[1 : 1 + _SHORT_HEADER_CID_LENGTH])
        return self._registry._connections.get(destination)


def _socket_closed(sock: InOrderUdpSocket, error: Exception) -> bool:
    return isinstance(error, trio.ClosedResourceError) or sock.fileno() == -1


async def _after_batch(connection: Any, timer_before: float | None) -> None:
    """Once per connection per batch: deliver every event the batch produced, send
    what aioquic has, probe the path's MTU (:mod:`lean_p2p.driver.pmtu`) where the
    transport does, and wake the connection's own loop if it must re-read aioquic's
    timer. ``timer_before`` is ``get_timer()`` from before the batch's datagrams."""
    try:
        # py-libp2p takes 10 events per call: a batch of stream data makes many more,
        # and events left in aioquic's queue would wait for the connection's idle
        # timer (up to 2 s), stalling bulk transfers.
        while await connection._process_quic_events_batched():
            pass
        await connection._transmit()  # ACKs due, flow-control updates, responses
    except Exception:
        logger.exception("QUIC connection %s failed after a batch", connection)
    transport = getattr(connection, "_transport", None)
    if getattr(transport, "path_mtu_discovery", False):
        try:
            # At most one probe, sent at once; before the timer is read below, since a
            # probe in flight can move the loss-detection timer earlier.
            probe_path_mtu(connection, getattr(transport, "path_mtu", None))
        except Exception:
            logger.exception("QUIC path-MTU probe on %s failed", connection)
    # The connection's loop sleeps until the aioquic timer it last read (at most 2 s).
    # Wake it only when the batch moved that timer earlier (typically: a delayed ACK
    # is now due); a full pass of its loop per batch was ~10 % of the receiver's
    # thread. Events our calls could not take because its own pass was running are
    # taken by that pass: it loops while it finds events.
    timer_after = connection._quic.get_timer()
    if timer_after is not None and (timer_before is None or timer_after < timer_before):
        connection._signal_activity()


async def receive_dialed_connection(connection: Any) -> None:
    """The packet receiver of a connection we dialed (its own socket), in batches.

    Replaces py-libp2p's ``_client_packet_receiver`` (one datagram, one event pass and
    one transmit at a time) on sockets from :mod:`lean_p2p.driver.udp`.
    """
    sock = connection._socket
    if not isinstance(sock, InOrderUdpSocket):
        await connection._client_packet_receiver()
        return
    while not connection._closed and connection._socket is sock:
        taken = 0
        try:
            await sock.wait_readable()
            timer_before = connection._quic.get_timer()
            for _ in range(MAX_BATCH):
                received = sock.try_recvfrom(_RECEIVE_SIZE)
                if received is None:
                    break
                data, address = received
                connection._quic.receive_datagram(data, address, now=time.time())
                taken += 1
        except Exception as error:
            if _socket_closed(sock, error) or connection._closed:
                logger.debug("QUIC dialed connection's socket closed: %s", error)
                break
            # As py-libp2p's receiver does: log, pause briefly, go on (datagrams
            # already taken are still processed below).
            logger.warning("QUIC dialed connection receive failed: %r", error)
            await trio.sleep(_RETRY_AFTER_ERROR)
        if taken:
            await _after_batch(connection, timer_before)


class _DialNursery:
    """The transport's background nursery as the connections it dials see it: the
    packet receiver they start is :func:`receive_dialed_connection`. Everything else
    is the nursery's own.

    py-libp2p's ``dial`` builds the connection and starts its tasks in one call, so
    the nursery it hands the connection is the one place to choose the receiver
    without re-implementing ``dial``.
    """

    def __init__(self, nursery: trio.Nursery) -> None:
        self._nursery = nursery
        self.batching_receivers = 0

    def start_soon(self, function: Any, *args: Any, name: object = None) -> None:
        if args and getattr(args[0], "__func__", None) is QUICConnection._client_packet_receiver:
            connection = args[0].__self__
            args = (functools.partial(receive_dialed_connection, connection), *args[1:])
            self.batching_receivers += 1
        self._nursery.start_soon(function, *args, name=name)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._nursery, name)


class LeanQUICTransport(QUICTransport):
    """``QUICTransport`` whose listeners are :class:`BatchingQUICListener` and whose
    dialed connections receive through :func:`receive_dialed_connection`; with
    ``path_mtu_discovery``, each connection probes for larger datagrams once its
    handshake is complete (:mod:`lean_p2p.driver.pmtu`)."""

    def __init__(self, *args: Any, path_mtu_discovery: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.path_mtu_discovery = path_mtu_discovery
        #: what discovery did over all of this transport's connections
        self.path_mtu = PathMtuStatistics()

    def set_background_nursery(self, nursery: trio.Nursery) -> None:
        super().set_background_nursery(_DialNursery(nursery))  # type: ignore[arg-type]

    def create_listener(self, handler_function: Any) -> QUICListener:
        # The same construction as py-libp2p's create_listener, with our class.
        if self._closed:
            raise QUICListenError("Transport is closed")
        server_configs = {
            version: config
            for version, config in self._quic_configs.items()
            if version.endswith("_server")
        }
        listener = BatchingQUICListener(
            transport=self,
            handler_function=handler_function,
            quic_configs=server_configs,
            config=self._config,
            security_manager=self._security_manager,
        )
        self._listeners.append(listener)
        return listener


def take_data_left_at_end(stream: Any) -> bytes:
    """Bytes a QUIC stream still buffers when py-libp2p has reported its end (see the
    module docstring); empty for other streams. Removes what it returns.

    Trio thread; synchronous, so nothing else touches the buffer meanwhile.
    """
    muxed = getattr(stream, "muxed_stream", stream)
    buffer = getattr(muxed, "_receive_buffer", None)
    if not isinstance(buffer, bytearray) or not buffer:
        return b""
    data = bytes(buffer)
    buffer.clear()
    return data

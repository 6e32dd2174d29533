"""A QUIC transport whose listener takes datagrams in batches. Trio driver thread.

WHY THIS MODULE EXISTS. py-libp2p's ``QUICListener`` handles one datagram at a time:
``await sock.recvfrom`` (a trip through trio's scheduler), a connection-id lookup
under an async lock, aioquic's ``receive_datagram``, a pass over the connection's
events, and a ``_transmit`` that asks aioquic for datagrams to send — for every
datagram. Profiled on the receiving side of ``lean-p2p bench gossip`` (a 2.6 KB
attestation is about three 1,200-byte datagrams), that per-datagram path was most of
the ~0.7 ms of CPU each attestation cost, and 4,000-byte datagrams (one per message)
cut the receiver's cost per message to a third: the cost is per datagram, not per byte.

What changes, and only on sockets made by :mod:`lean_p2p.driver.udp` (other sockets
keep py-libp2p's loop):

- the listener waits for readability once, then takes every datagram already queued
  (up to :data:`MAX_BATCH`) with non-blocking ``recvfrom`` calls, without scheduling
  points in between;
- a short-header datagram whose destination connection id belongs to an established
  connection goes straight to that connection's aioquic state (a dict lookup; the
  registry's lock guards nothing a synchronous lookup on the one trio thread could
  race with);
- each connection touched by the batch then processes its events and transmits
  once, after the whole batch, instead of once per datagram; its event loop is woken
  once, so aioquic's timers (delayed ACKs, loss detection) are served as before;
- everything else — long headers (handshakes, new connections, version negotiation),
  unknown connection ids — goes through py-libp2p's own ``_process_packet``, in the
  order received.

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

import logging
import time
from typing import Any

import trio
from libp2p.transport.quic.exceptions import QUICListenError
from libp2p.transport.quic.listener import QUICListener
from libp2p.transport.quic.transport import QUICTransport

from lean_p2p.driver.udp import InOrderUdpSocket

__all__ = ["MAX_BATCH", "BatchingQUICListener", "LeanQUICTransport", "take_data_left_at_end"]

logger = logging.getLogger(__name__)

#: datagrams taken per wake-up before the batch is processed (bounds the time the
#: listener holds the trio thread: ~64 x 1,200 bytes, a few milliseconds of work)
MAX_BATCH = 64

_RECEIVE_SIZE = 65536
_SHORT_HEADER_CID_LENGTH = 8  # py-libp2p issues 8-byte connection ids


class BatchingQUICListener(QUICListener):
    """``QUICListener`` whose receive loop takes queued datagrams in batches."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        #: batches that reached an established connection, and their datagrams
        self.batches = 0
        self.batched_datagrams = 0

    async def _handle_incoming_packets(self) -> None:
        sock = self._socket
        if not isinstance(sock, InOrderUdpSocket):
            await super()._handle_incoming_packets()
            return
        while self._listening and self._socket is sock:
            try:
                await sock.wait_readable()
                await self._take_batch(sock)
            except (trio.ClosedResourceError, OSError) as error:
                if self._listening:
                    logger.debug("QUIC listener socket closed: %s", error)
                break

    async def _take_batch(self, sock: InOrderUdpSocket) -> None:
        touched: dict[int, Any] = {}
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
        for connection in touched.values():
            # Once per connection per batch: deliver every event the batch produced
            # (py-libp2p takes 10 per call: a batch of stream data makes many more,
            # and events left in aioquic's queue would wait for the connection's
            # idle timer, up to 2 s), then send what aioquic has (ACKs due,
            # flow-control updates, responses).
            try:
                while await connection._process_quic_events_batched():
                    pass
                await connection._transmit()
            except Exception:
                logger.exception("QUIC connection %s failed after a batch", connection)
            # Then wake the connection's own loop, after the pass above: it re-reads
            # aioquic's timer (a delayed ACK is now due) and takes any events a pass
            # of its own, running meanwhile, kept our calls from taking.
            connection._signal_activity()

    def _established_connection(self, data: bytes) -> Any:
        """The established connection a short-header datagram is for, or None."""
        if not data or data[0] & 0x80:  # empty, or a long header: py-libp2p's path
            return None
        destination = bytes(data[1 : 1 + _SHORT_HEADER_CID_LENGTH])
        return self._registry._connections.get(destination)


class LeanQUICTransport(QUICTransport):
    """``QUICTransport`` whose listeners are :class:`BatchingQUICListener`."""

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

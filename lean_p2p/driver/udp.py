"""UDP sockets that put QUIC datagrams on the wire in the order aioquic numbered them.

Trio driver thread: :func:`install_in_order_udp_sockets` is called inside the driver's
``trio.run`` (it sets a per-run socket factory, trio's public hook
``trio.socket.set_custom_socket_factory``), and the sockets it makes are used only by
that run's tasks.

Why: py-libp2p's QUIC connection calls its ``_transmit`` from several tasks at once (the
packet receiver, the connection's event loop, stream writes). Each takes aioquic's
datagrams in packet-number order and awaits ``sock.sendto`` for each one, and trio's
``sendto`` yields to the scheduler after every successful send. Another task's
``_transmit`` then sends *later* packet numbers before the first task's remaining
datagrams. Measured in ``lean-p2p bench gossip`` on loopback: about one datagram in five
arrived out of order; the sender's loss detection (RFC 9002 time threshold, 9/8 of an
RTT of ~1-2 ms) declared ~300 of ~10,000 packets lost that had in fact arrived, and Reno
halved its window ~200 times, holding it near 10-15 KB (about 3 MB/s).

What changes: ``sendto`` on a datagram socket first tries the send synchronously and
returns without yielding when the kernel takes the datagram (a UDP send either succeeds
at once or fails with ``BlockingIOError``), so a burst from one ``_transmit`` leaves in
one piece and in order. Only when the send buffer is full does it fall back to trio's
waiting ``sendto``. Every other socket operation, and every non-datagram socket, is
trio's own.

The receive and send buffers of datagram sockets are also raised to 4 MiB (the kernel
caps the request at ``net.core.rmem_max``/``wmem_max``, as quic-go's sockets do): with
the congestion window no longer collapsing, a 100 KB block is ~85 datagrams in flight,
and the 208 KiB Linux default overflowed (counted in ``/proc/net/snmp``
``RcvbufErrors``) while the receiving trio thread was busy decoding.

For :mod:`lean_p2p.driver.quic`'s batching receivers, the sockets also offer
``wait_readable`` (park until a datagram is queued) and ``try_recvfrom`` (a queued
datagram, or None at once, without a scheduling point).

Datagram sockets never fragment (``IP_PMTUDISC_DO``): path-MTU discovery
(:mod:`lean_p2p.driver.pmtu`) probes larger datagrams, and a probe must be lost, not
delivered in pieces, where the path cannot carry it. A datagram the kernel then
refuses as larger than the path's MTU (``EMSGSIZE``) is dropped and counted by
destination (QUIC resends what it carried; the path-MTU state reads the count), not
raised into py-libp2p's transmit, which would end the connection.
"""

from __future__ import annotations

import errno
import ipaddress
import socket as stdlib_socket
from typing import Any

import trio

__all__ = [
    "SOCKET_BUFFER_BYTES",
    "InOrderUdpSocket",
    "InOrderUdpSocketFactory",
    "install_in_order_udp_sockets",
]

#: requested SO_RCVBUF / SO_SNDBUF of datagram sockets (the kernel may grant less)
SOCKET_BUFFER_BYTES = 4 * 1024 * 1024
# Linux: set DF and never fragment (the socket module does not name these)
_DONT_FRAGMENT = {
    stdlib_socket.AF_INET: (stdlib_socket.IPPROTO_IP, 10, 2),  # IP_MTU_DISCOVER, _DO
    stdlib_socket.AF_INET6: (stdlib_socket.IPPROTO_IPV6, 23, 2),  # IPV6_MTU_DISCOVER, _DO
}


class InOrderUdpSocket(trio.socket.SocketType):
    """A trio UDP socket whose ``sendto`` does not yield when the kernel accepts at once.

    Forwards the operations py-libp2p's QUIC transport uses (``bind``, ``getsockname``,
    ``setsockopt``, ``recvfrom``, ``sendto``, ``close``, ``fileno``) to a regular trio
    socket over the same stdlib socket.
    """

    def __init__(self, raw: stdlib_socket.socket) -> None:
        super().__init__()
        self._raw = raw
        self._trio = trio.socket.from_stdlib_socket(raw)  # sets non-blocking
        #: destinations already known to be numeric (no resolution needed)
        self._numeric: set[tuple[Any, ...]] = set()
        self.immediate_sends = 0
        self.waited_sends = 0
        #: datagrams the kernel refused as larger than the path's MTU, by destination
        #: (read and reset by the path-MTU state of the connection to it)
        self.oversized_drops_by_address: dict[tuple[Any, ...], int] = {}
        #: True once DF is set: only then is a delivered probe proof of the path's MTU
        self.never_fragments = False

    @property
    def family(self) -> int:
        return int(self._raw.family)

    @property
    def type(self) -> int:
        return int(self._raw.type)

    @property
    def proto(self) -> int:
        return self._raw.proto

    def fileno(self) -> int:
        return self._raw.fileno()

    def getsockname(self) -> Any:
        return self._raw.getsockname()

    def setsockopt(self, *args: Any) -> None:
        self._raw.setsockopt(*args)

    def getsockopt(self, *args: Any) -> Any:
        return self._raw.getsockopt(*args)

    def close(self) -> None:
        self._trio.close()

    def is_readable(self) -> bool:
        return bool(self._trio.is_readable())

    async def bind(self, address: Any) -> None:
        await self._trio.bind(address)

    async def recvfrom(self, bufsize: int, flags: int = 0) -> Any:
        return await self._trio.recvfrom(bufsize, flags)

    async def wait_readable(self) -> None:
        """Park until a datagram is queued (or the socket is closed)."""
        # Closing the trio socket notifies this waiter (ClosedResourceError).
        await trio.lowlevel.wait_readable(self._raw.fileno())

    def try_recvfrom(self, bufsize: int) -> tuple[bytes, Any] | None:
        """A queued datagram and its sender, or None at once when none is queued."""
        try:
            data, address = self._raw.recvfrom(bufsize)
        except BlockingIOError:
            return None
        return data, address

    async def sendto(self, *args: Any) -> int:  # (data, address) or (data, flags, address)
        """Send at once, without a scheduling point, when the kernel accepts; else wait.
        A datagram too large for the path is dropped and counted (module docstring)."""
        try:
            if self._is_numeric(args[-1]):
                try:
                    sent = self._raw.sendto(*args)
                except BlockingIOError:
                    pass  # send buffer full: trio waits for writability, in its own way
                else:
                    self.immediate_sends += 1
                    return sent
            self.waited_sends += 1
            return int(await self._trio.sendto(*args))
        except OSError as error:
            if error.errno != errno.EMSGSIZE:
                raise
            address = tuple(args[-1])
            self.oversized_drops_by_address[address] = (
                self.oversized_drops_by_address.get(address, 0) + 1
            )
            return len(args[0])

    def try_send(self, data: bytes, address: tuple[Any, ...]) -> bool | None:
        """Send one datagram at once, without a scheduling point: True if the kernel
        took it, False if it refused it as larger than the path's MTU, None if the
        send buffer is full (nothing sent). For probes, which must know."""
        try:
            self._raw.sendto(data, address)
        except BlockingIOError:
            return None
        except OSError as error:
            if error.errno != errno.EMSGSIZE:
                raise
            return False
        return True

    def _is_numeric(self, address: Any) -> bool:
        # A host name would make the stdlib resolve it, blocking the trio thread:
        # only literal IP addresses take the synchronous path.
        if address in self._numeric:
            return True
        if not (isinstance(address, tuple) and address and isinstance(address[0], str)):
            return False
        try:
            ipaddress.ip_address(address[0])
        except ValueError:
            return False
        self._numeric.add(address)
        return True

    def __enter__(self) -> InOrderUdpSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class InOrderUdpSocketFactory(trio.abc.SocketFactory):
    """Datagram sockets become :class:`InOrderUdpSocket`; others stay trio's own."""

    def socket(
        self,
        family: int = stdlib_socket.AF_INET,
        type: int = stdlib_socket.SOCK_STREAM,  # trio's signature
        proto: int = 0,
    ) -> Any:
        raw = stdlib_socket.socket(family, type, proto)
        if type == stdlib_socket.SOCK_DGRAM:
            _raise_buffers(raw)
            sock = InOrderUdpSocket(raw)
            sock.never_fragments = _never_fragment(raw)
            return sock
        return trio.socket.from_stdlib_socket(raw)


def _raise_buffers(raw: stdlib_socket.socket) -> None:
    for option in (stdlib_socket.SO_RCVBUF, stdlib_socket.SO_SNDBUF):
        try:
            raw.setsockopt(stdlib_socket.SOL_SOCKET, option, SOCKET_BUFFER_BYTES)
        except OSError:  # a platform that refuses: keep its default, still correct
            continue


def _never_fragment(raw: stdlib_socket.socket) -> bool:
    """Set DF on ``raw``; False where the platform refuses (then no path-MTU probing:
    a probe delivered in fragments would prove nothing)."""
    option = _DONT_FRAGMENT.get(raw.family)
    if option is None:
        return False
    try:
        raw.setsockopt(*option)
    except OSError:
        return False
    return True


def install_in_order_udp_sockets() -> None:
    """Make UDP sockets created later in the current ``trio.run`` in-order sockets.

    Trio thread; affects only the calling trio run (trio keeps the factory in a
    ``RunVar``), so other trio runs in the process are untouched.
    """
    trio.socket.set_custom_socket_factory(InOrderUdpSocketFactory())

"""The network driver: a py-libp2p host on its own trio thread.

Thread map:

- :meth:`NetworkDriver.start`, :meth:`send`, :meth:`stop` and :meth:`statistics` are
  callable from any thread and never block (``send`` schedules with
  ``TrioToken.run_sync_soon``, the trio analogue of ``call_soon_threadsafe``).
- :meth:`wait_ready` and :meth:`join` block their caller: for owners that are *not* the
  loop thread (tests, command-line tools), never for the loop.
- Everything else runs on the driver's trio thread: the host, gossipsub, req/resp,
  decoding and rejecting bad input, and executing commands.

Events leave through ``emit`` (the node routes them into mailbox lanes). ``emit`` must
be thread-safe and must not block; if it raises (the loop side went away: the mailbox
is closed), the driver shuts itself down. A crash of the trio thread is reported as a
:class:`DriverStopped` event with ``error`` set and re-raised by :meth:`join` as
:class:`DriverCrashed`.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import threading
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import trio
from libp2p.abc import INotifee

from lean_p2p import net
from lean_p2p.driver import codec, log_limits
from lean_p2p.driver.config import DriverConfig
from lean_p2p.driver.gossipsub import LeanGossipsub, Verdict
from lean_p2p.driver.host import build_host
from lean_p2p.driver.pmtu import PathMtuStatistics
from lean_p2p.driver.reqresp import ReqResp
from lean_p2p.wire.errors import WireError
from lean_p2p.wire.keys import NodeKey

__all__ = ["DriverCrashed", "NetworkDriver"]

logger = logging.getLogger(__name__)

_CLOSE_TIMEOUT = 5.0  # seconds allowed for closing connections and sockets at stop
_PROBE_TIMEOUT = 2.0  # seconds a live connection has to answer a QUIC PING
_PING_IDS = itertools.count(1)


class DriverCrashed(RuntimeError):
    """The driver's trio thread died from an unexpected exception (the ``__cause__``)."""


class NetworkDriver:
    """Owns the network on a dedicated trio thread; see the module docstring."""

    def __init__(self, config: DriverConfig, emit: Callable[[net.Event], None]) -> None:
        self.config = config
        self.peer_id = NodeKey(config.private_key).peer_id
        self._emit_to_loop = emit
        self._thread: threading.Thread | None = None
        self._log_limiter: log_limits.DependencyLogLimiter | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._ready = threading.Event()
        self._finished = threading.Event()
        self._stop_requested = False
        self._stop_reason = "stopped by owner"
        self._crash: BaseException | None = None
        self._listen_addresses: tuple[str, ...] = ()
        self._topics = {topic.topic_string(config.network_name): topic for topic in config.topics}
        self._gossip = LeanGossipsub(codec.gossip_message_id, self._accept_gossip, config.gossip)
        self._reqresp = ReqResp(self._emit, config.reqresp)
        self._counters: dict[str, int] = {
            "commands": 0,
            "commands_refused": 0,
            "publish_failed": 0,
            "gossip_decode_rejected": 0,
            "emit_failures": 0,
            "dial_failed": 0,
        }
        self._host: Any = None
        self._nursery: trio.Nursery | None = None
        # peer id -> its live connections, oldest first
        self._connections: dict[str, list[Any]] = {}
        # trio.Event binds to no run until awaited, so it can be made here.
        self._stop_event = trio.Event()

    # --------------------------------------------------------- owner interface

    @property
    def listen_addresses(self) -> tuple[str, ...]:
        """Addresses with ``/p2p/<peer id>``; empty until ready."""
        return self._listen_addresses

    @property
    def running(self) -> bool:
        return self._ready.is_set() and not self._finished.is_set()

    def start(self) -> None:
        """Start the trio thread (any thread; returns at once). Ready is signalled by a
        :class:`DriverStarted` event and by :meth:`wait_ready`."""
        if self._thread is not None:
            raise RuntimeError("driver already started")
        # py-libp2p and aioquic are imported by now, their loggers with them: from here
        # on, what a peer makes them log is summarized, not repeated (log_limits).
        self._log_limiter = log_limits.install()
        self._thread = threading.Thread(
            target=self._thread_main, name=self.config.thread_name, daemon=True
        )
        self._thread.start()

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Block until ready or finished. Not for the loop thread."""
        deadline_hit = not self._ready.wait(timeout)
        if self._crash is not None:
            raise DriverCrashed(f"driver crashed: {self._crash!r}") from self._crash
        return not deadline_hit and not self._finished.is_set()

    def send(self, command: net.Command) -> bool:
        """Hand a command to the driver (any thread, never blocks).

        Returns False (counted) when the driver is not running; the command is then
        not executed. Commands are executed in the order they were sent.
        """
        token = self._token
        if token is None or self._finished.is_set():
            self._counters["commands_refused"] += 1
            return False
        try:
            token.run_sync_soon(self._execute, command)
        except trio.RunFinishedError:
            self._counters["commands_refused"] += 1
            return False
        return True

    def stop(self, reason: str = "stopped by owner") -> None:
        """Ask the driver to stop (any thread, returns at once); see :meth:`join`."""
        self._stop_reason = reason
        self._stop_requested = True
        token = self._token
        if token is None:
            return
        with contextlib.suppress(trio.RunFinishedError):
            token.run_sync_soon(self._request_stop_on_trio)

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the thread to end (not on the loop thread); True when it has.

        Raises :class:`DriverCrashed` if the trio thread crashed.
        """
        if self._thread is not None:
            self._thread.join(timeout)
        if self._crash is not None:
            raise DriverCrashed(f"driver crashed: {self._crash!r}") from self._crash
        return self._thread is None or not self._thread.is_alive()

    def statistics(self) -> dict[str, Any]:
        """Counters of the driver, its gossipsub router and req/resp (any thread; a
        snapshot of plain integers, possibly a few increments stale)."""
        outbound, inbound = self._reqresp.in_flight
        return {
            "driver": dict(self._counters),
            "gossipsub": asdict(self._gossip.statistics),
            "reqresp": {
                **asdict(self._reqresp.statistics),
                "outbound_in_flight": outbound,
                "inbound_in_flight": inbound,
            },
            "connected_peers": len(self._connections),
            "path_mtu": self._path_mtu_statistics(),
            "logs": self._log_limiter.statistics() if self._log_limiter is not None else {},
            # {topic: (subscribed peers, mesh peers)}
            "topics": self._gossip.topology,
        }

    def _path_mtu_statistics(self) -> dict[str, Any]:
        """Path-MTU discovery's counters (``lean_p2p.driver.pmtu``); empty before the
        host is built."""
        if self._host is None:
            return {}
        for transport in self._host.get_network().transport_manager.get_transports():
            totals = getattr(transport, "path_mtu", None)
            if isinstance(totals, PathMtuStatistics):
                # Field by field: dict() copies the dict in one C call, which the trio
                # thread cannot interleave with (asdict would iterate it in Python).
                return {
                    "probes_sent": totals.probes_sent,
                    "probes_acknowledged": totals.probes_acknowledged,
                    "probes_lost": totals.probes_lost,
                    "refused_sends": totals.refused_sends,
                    "widened": dict(totals.widened),  # {datagram size: connections}
                }
        return {}

    # ------------------------------------------------------------- trio thread

    def _thread_main(self) -> None:
        try:
            trio.run(self._main)
        except BaseException as error:
            self._crash = error
            logger.exception("network driver crashed")
            self._emit_final(net.DriverStopped("crashed", repr(error)))
        else:
            self._emit_final(net.DriverStopped(self._stop_reason))
        finally:
            self._finished.set()
            self._ready.set()  # release wait_ready on a crash before readiness

    def _emit_final(self, event: net.DriverStopped) -> None:
        try:
            self._emit_to_loop(event)
        except Exception:
            self._counters["emit_failures"] += 1
            logger.info("loop gone before the driver's final event", extra={"event": repr(event)})

    async def _main(self) -> None:
        import multiaddr

        host = build_host(
            self.config.private_key,
            max_datagram_size=self.config.max_datagram_size,
            path_mtu_discovery=self.config.path_mtu_discovery,
        )
        self._host = host
        self._gossip.attach(host)
        self._reqresp.attach(host)
        host.get_network().register_notifee(_ConnectionNotifee(self))
        listen = [multiaddr.Multiaddr(self.config.listen_address)]
        async with host.run(listen):
            try:
                async with trio.open_nursery() as nursery:
                    self._nursery = nursery
                    await self._serve(host, nursery)
            finally:
                # py-libp2p's own shutdown path runs cancelled and leaks the QUIC UDP
                # sockets; close the host explicitly, shielded but bounded.
                with trio.CancelScope(shield=True) as scope:
                    scope.deadline = trio.current_time() + _CLOSE_TIMEOUT
                    await host.close()

    async def _serve(self, host: Any, nursery: trio.Nursery) -> None:
        await nursery.start(self._gossip.run)
        for topic in self._topics:
            self._gossip.subscribe(topic)
        self._listen_addresses = tuple(str(address) for address in host.get_addrs())
        # The host and its transports are up: their modules' loggers exist now too.
        log_limits.install()
        self._token = trio.lowlevel.current_trio_token()
        for address in self.config.static_peers:
            nursery.start_soon(self._keep_dialled, address)
        if self.config.liveness_interval > 0:
            nursery.start_soon(self._watch_connections)
        self._emit(net.DriverStarted(self.peer_id, self._listen_addresses))
        self._ready.set()
        if self._stop_requested:
            self._stop_event.set()
        await self._stop_event.wait()
        # Settle requests first so every pending one gets its terminal event before
        # the tasks that carry them are cancelled.
        self._reqresp.fail_all(self._stop_reason)
        nursery.cancel_scope.cancel()

    def _request_stop_on_trio(self) -> None:
        self._stop_event.set()

    def _emit(self, event: net.Event) -> None:
        """Hand an event to the loop; if the loop side is gone, stop the driver."""
        try:
            self._emit_to_loop(event)
        except Exception as error:
            self._counters["emit_failures"] += 1
            if not self._stop_event.is_set():
                logger.warning("loop side gone; stopping the driver", extra={"error": repr(error)})
                self._stop_reason = f"loop gone: {error!r}"
                self._stop_event.set()

    # ------------------------------------------------------------------ gossip

    def _accept_gossip(
        self, peer_id: str, topic: str, message_id: bytes, prepared: object
    ) -> Verdict:
        """Decode on the driver thread; only valid messages reach the loop, which then
        judges them (``validate_on_loop``) before anything is forwarded."""
        kind = self._topics.get(topic)
        if kind is None:
            return Verdict.IGNORE
        if not isinstance(prepared, bytes):  # snappy failed or over the size limit
            self._counters["gossip_decode_rejected"] += 1
            logger.info("gossip rejected: bad snappy", extra={"peer": peer_id, "topic": topic})
            return Verdict.REJECT
        try:
            message = codec.decode_gossip(kind, prepared)
        except WireError as error:
            self._counters["gossip_decode_rejected"] += 1
            logger.info(
                "gossip rejected: bad ssz",
                extra={"peer": peer_id, "topic": topic, "reason": error.reason.value},
            )
            return Verdict.REJECT
        if kind is net.GossipTopic.BLOCK:
            self._emit(net.GossipBlock(peer_id, message_id, message))  # type: ignore[arg-type]
        elif kind is net.GossipTopic.ATTESTATION:
            self._emit(net.GossipAttestation(peer_id, message_id, message))  # type: ignore[arg-type]
        else:
            self._emit(net.GossipAggregate(peer_id, message_id, message))  # type: ignore[arg-type]
        # Held for the loop's verdict, or (without a loop to judge) forwarded now.
        return Verdict.PENDING if self.config.validate_on_loop else Verdict.ACCEPT

    # ---------------------------------------------------------------- commands

    def _execute(self, command: net.Command) -> None:
        """Run one command on the trio thread (scheduled by :meth:`send`)."""
        self._counters["commands"] += 1
        nursery = self._nursery
        if nursery is None or self._stop_event.is_set():
            self._refuse(command)
            return
        match command:
            case net.Publish():
                self._publish(command)
            case net.Dial(address=address):
                nursery.start_soon(self._dial, address)
            case net.Disconnect(peer_id=peer_id, reason=reason):
                nursery.start_soon(self._disconnect, peer_id, reason)
            case net.SendRequest():
                self._reqresp.start_request(nursery, command)
            case net.SendResponseChunk() | net.SendResponseEnd() | net.SendResponseError():
                self._reqresp.respond(command)
            case net.ReportValidation(message_id=message_id, verdict=verdict):
                self._gossip.report_validation(message_id, Verdict(verdict.value))

    def _refuse(self, command: net.Command) -> None:
        """A command that arrived while stopping: report what the loop waits for."""
        self._counters["commands_refused"] += 1
        if isinstance(command, net.Publish):
            self._publish_failed(command, b"", "driver stopping")
        elif isinstance(command, net.SendRequest):
            self._reqresp.refuse_request(command, "driver stopping")

    def _publish(self, command: net.Publish) -> None:
        topic = command.topic.topic_string(self.config.network_name)
        try:
            data = codec.encode_gossip(command.message)
        except Exception as error:
            self._publish_failed(command, b"", f"encode error: {error!r}")
            return
        if len(data) > self.config.gossip.max_rpc_size:
            self._publish_failed(command, b"", "message over the size limit")
            return
        if topic not in self._gossip.subscriptions:
            self._publish_failed(command, b"", "not subscribed to the topic")
            return
        message_id, sent = self._gossip.publish(topic, data)
        if sent == 0:
            self._publish_failed(command, message_id, "no peer accepted the message")

    def _publish_failed(self, command: net.Publish, message_id: bytes, reason: str) -> None:
        self._counters["publish_failed"] += 1
        self._emit(net.PublishFailed(command.topic, message_id, reason))

    async def _dial(self, address: str) -> bool:
        import multiaddr
        from libp2p.peer.peerinfo import info_from_p2p_addr

        peer_id: str | None = None
        try:
            info = info_from_p2p_addr(multiaddr.Multiaddr(address))
            peer_id = str(info.peer_id)
            # Whoever asks for a dial decides when (a static peer's redial interval, the
            # P2P core's backoff). py-libp2p also remembers a peer whose addresses all
            # failed and refuses to dial it for a minute: a peer that failed once while
            # it restarted would stay unreachable far past its return.
            unblock = getattr(self._host.get_network(), "unblock_peer", None)
            if unblock is not None:
                unblock(info.peer_id)
            with trio.fail_after(self.config.dial_timeout):
                await self._host.connect(info)
        except Exception as error:  # bad address, timeout, handshake failure
            self._counters["dial_failed"] += 1
            self._emit(net.DialFailed(address, peer_id, repr(error)))
            return False
        return True

    async def _keep_dialled(self, address: str) -> None:
        """Dial a static peer, and redial it whenever it is not connected."""
        peer_id = address.rsplit("/p2p/", 1)[-1]
        while True:
            if not self._connections.get(peer_id):
                await self._dial(address)
            if self.config.redial_interval <= 0:
                return
            await trio.sleep(self.config.redial_interval)

    async def _disconnect(self, peer_id: str, reason: str) -> None:
        from libp2p.peer.id import ID

        logger.info("disconnecting peer", extra={"peer": peer_id, "reason": reason})
        try:
            await self._host.get_network().close_peer(ID.from_base58(peer_id))
        except Exception as error:
            logger.info("disconnect failed", extra={"peer": peer_id, "error": repr(error)})

    # -------------------------------------------------------------- connections

    def _on_connected(self, conn: Any) -> None:
        muxed = conn.muxed_conn
        peer = muxed.peer_id
        key = str(peer)
        existing = self._connections.setdefault(key, [])
        existing.append(conn)
        if len(existing) > 1:
            # A second connection: either both sides dialled at once (both alive), or
            # the peer restarted with the same identity while its old connection is
            # dead but not yet idled out. py-libp2p would keep using the old one (it
            # prefers the connection with more streams), so probe the older ones and
            # drop the dead.
            self._start_soon(self._prune_dead_connections, key, existing[:-1])
            return
        initiator = getattr(muxed, "is_initiator", False)
        if callable(initiator):
            initiator = initiator()
        direction = net.Direction.OUTBOUND if initiator else net.Direction.INBOUND
        self._gossip.add_peer(peer)
        self._emit(net.PeerConnected(key, direction, _remote_address(muxed)))

    def _on_disconnected(self, conn: Any) -> None:
        peer = conn.muxed_conn.peer_id
        key = str(peer)
        connections = self._connections.get(key)
        if connections is None or conn not in connections:
            return
        connections.remove(conn)
        if connections:
            return
        del self._connections[key]
        self._gossip.remove_peer(peer)
        self._emit(net.PeerDisconnected(key, "connection closed"))

    def _start_soon(self, function: Callable[..., Any], *args: Any) -> None:
        """Start a background task unless the driver is already shutting down."""
        if self._nursery is None or self._stop_event.is_set():
            return
        try:
            self._nursery.start_soon(function, *args)
        except RuntimeError:  # the nursery closed between the check and the call
            logger.debug("task not started: driver stopping")

    async def _watch_connections(self) -> None:
        """Close connections whose peer stopped answering QUIC PINGs.

        A peer that vanishes without closing (killed, network cut) would otherwise keep
        its connection until the QUIC idle timeout (60 s): no PeerDisconnected, no
        redial of a static peer, gossip queued to a dead stream. Every
        ``liveness_interval`` each connection is probed; closing a dead one makes
        py-libp2p report the disconnection, which the driver turns into events.
        """
        while True:
            await trio.sleep(self.config.liveness_interval)
            connections = [conn for conns in self._connections.values() for conn in conns]
            async with trio.open_nursery() as probes:
                for conn in connections:
                    probes.start_soon(self._close_if_dead, conn)

    async def _close_if_dead(self, conn: Any) -> None:
        if await _connection_alive(conn, self.config.liveness_timeout):
            return
        peer = str(conn.muxed_conn.peer_id)
        logger.info("closing a connection that stopped answering", extra={"peer": peer})
        with trio.move_on_after(_CLOSE_TIMEOUT):
            try:
                await conn.close()
            except Exception as error:
                logger.debug("closing a dead connection failed", extra={"error": repr(error)})
        # py-libp2p normally reports the closed connection; make sure of it.
        self._on_disconnected(conn)

    async def _prune_dead_connections(self, key: str, older: list[Any]) -> None:
        dead = [conn for conn in older if not await _connection_alive(conn)]
        if not dead:
            return
        logger.info("closing dead connections", extra={"peer": key, "count": len(dead)})
        connections = self._connections.get(key, [])
        for conn in dead:
            if conn in connections:
                connections.remove(conn)
        peer = dead[0].muxed_conn.peer_id
        # The gossip stream lived on a dead connection: reopen it on a live one, and
        # tell the loop the peer came back (it should exchange Status again).
        self._gossip.remove_peer(peer)
        self._emit(net.PeerDisconnected(key, "previous connection dead (peer restarted)"))
        if connections:
            live = connections[-1].muxed_conn
            self._gossip.add_peer(peer)
            self._emit(net.PeerConnected(key, net.Direction.INBOUND, _remote_address(live)))
        else:
            self._connections.pop(key, None)
        for conn in dead:
            with trio.move_on_after(_CLOSE_TIMEOUT):
                try:
                    await conn.close()
                except Exception as error:
                    logger.debug("closing a dead connection failed", extra={"error": repr(error)})


async def _connection_alive(conn: Any, patience: float = _PROBE_TIMEOUT) -> bool:
    """Send a QUIC PING on ``conn`` and report whether anything came back in time.

    Reads aioquic's ``_ack_eliciting_sent_since_receipt`` (set when we send an
    ack-eliciting packet, cleared when any packet is received): py-libp2p exposes no
    per-connection liveness. A connection without those internals counts as alive.
    """
    muxed = conn.muxed_conn
    quic = getattr(muxed, "_quic", None)
    transmit = getattr(muxed, "_transmit", None)
    if quic is None or transmit is None or getattr(muxed, "_closed", False):
        return quic is None
    try:
        quic.send_ping(next(_PING_IDS))
        await transmit()
    except Exception:
        return False
    with trio.move_on_after(patience) as scope:
        # Polled: aioquic flips a plain attribute, there is no event to wait on.
        while getattr(quic, "_ack_eliciting_sent_since_receipt", False):  # noqa: ASYNC110
            await trio.sleep(0.05)
    return not scope.cancelled_caught


def _remote_address(muxed: Any) -> str:
    remote = getattr(muxed, "_remote_addr", None)
    if isinstance(remote, tuple) and len(remote) >= 2:
        return f"/ip4/{remote[0]}/udp/{remote[1]}/quic-v1"
    return ""


class _ConnectionNotifee(INotifee):
    """py-libp2p network notifee forwarding connection changes to the driver."""

    def __init__(self, driver: NetworkDriver) -> None:
        self._driver = driver

    async def connected(self, network: Any, conn: Any) -> None:
        self._driver._on_connected(conn)

    async def disconnected(self, network: Any, conn: Any) -> None:
        self._driver._on_disconnected(conn)

    async def opened_stream(self, network: Any, stream: Any) -> None:
        return None

    async def closed_stream(self, network: Any, stream: Any) -> None:
        return None

    async def listen(self, network: Any, multiaddr: Any) -> None:
        return None

    async def listen_close(self, network: Any, multiaddr: Any) -> None:
        return None

"""The sans-IO P2P core: all P2P business logic, no clock, no tasks, no I/O. Loop thread.

Driven by three inputs, each given the current time ``now`` by the caller:

- :meth:`P2PCore.handle_event` — driver events (:mod:`lean_p2p.net.events`);
- :meth:`P2PCore.handle_request` — chain requests (:mod:`lean_p2p.p2p.chain`);
- :meth:`P2PCore.handle_timer` — called at (or after) :meth:`P2PCore.next_deadline`.

It answers through two outboxes, drained by the caller after every input:
:meth:`P2PCore.drain_commands` (driver commands) and :meth:`P2PCore.drain_to_chain`
(blocks, attestations and aggregates to import, fetches given up, publishes failed).
Since the caller drains after each input, an outbox never holds more than one input's
output (at most ``MAX_BLOCKS_PER_REQUEST`` response chunks plus a few commands).

What it does: peer table and Status handshake (sent on every new connection, answered
when received, incompatible peers disconnected with a reason); block fetch by root,
deduplicated, batched up to 1,024 roots per request, correlated by request id, retried
with capped exponential backoff on another peer; range sync from the best peer;
bootnode redial at a fixed interval, scheduled only in answer to a disconnect or a
failed dial (never by itself); publishing; serving Status, BlocksByRoot and
BlocksByRange from the store.

Misbehaving peers never raise out of the core: their input is counted (see
:meth:`P2PCore.statistics`) and logged with structured fields.

Why one module: each part with state of its own already lives apart (``peers``,
``fetch``, ``sync``, ``serve``, ``deadlines``, ``backoff``). What stays here is the one
idea that ties them together: every input settles requests, peers, fetches and the
range sync against each other, in one order, with one set of counters. Split across
modules, a request's life (sent, chunks, completed or failed, retried elsewhere) would
be read in three files instead of one.
"""

from __future__ import annotations

import enum
import logging
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lean_p2p import net
from lean_p2p.p2p import backoff, serve
from lean_p2p.p2p.chain import (
    AggregateReceived,
    AttestationReceived,
    BlockReceived,
    BlockSource,
    ChainReader,
    ChainRequest,
    FetchAbandoned,
    FetchRoots,
    PublishAggregate,
    PublishAttestation,
    PublishBlock,
    PublishRejected,
    ReportGossip,
    ToChain,
)
from lean_p2p.p2p.deadlines import Deadlines
from lean_p2p.p2p.fetch import OutboundRequest, RequestKind, RootFetcher
from lean_p2p.p2p.logs import log_event
from lean_p2p.p2p.peers import PeerTable, status_conflict
from lean_p2p.p2p.sync import RangeSync

if TYPE_CHECKING:
    from lean_p2p.containers import SignedBlock, Status

__all__ = ["P2PCore", "P2PStatistics", "block_root", "bootnode_peer_id"]


class _Timer(enum.Enum):
    """What a deadline is for; its subject says for whom."""

    REQUEST_DEADLINE = enum.auto()  # subject: the request id
    ROOT_RETRY = enum.auto()  # subject: the block root to ask for again
    REDIAL = enum.auto()  # subject: the bootnode address
    STATUS_REFRESH = enum.auto()  # subject: the peer id
    RANGE_RETRY = enum.auto()  # no subject: there is one range sync at a time


@dataclass(frozen=True, slots=True)
class _Deadline:
    """A key in :class:`Deadlines`: kinds never collide, and ``match`` dispatches on them."""

    timer: _Timer
    subject: int | bytes | str | None = None


_RANGE_RETRY = _Deadline(_Timer.RANGE_RETRY)

#: seconds between WARNING lines for publishes failing the same way (all are counted)
PUBLISH_FAILURE_LOG_INTERVAL = 60.0


def block_root(block: SignedBlock) -> bytes:
    """The root a block is known by: the hash tree root of the (unsigned) block."""
    return block.block.hash_tree_root()


def bootnode_peer_id(address: str) -> str | None:
    """The peer id in a multiaddr's ``/p2p/<id>`` component, if any."""
    parts = address.split("/")
    for index, part in enumerate(parts[:-1]):
        if part == "p2p" and parts[index + 1]:
            return parts[index + 1]
    return None


@dataclass(frozen=True, slots=True)
class P2PStatistics:
    """A snapshot of the core's sizes (each bounded) and counters."""

    peers: int
    pending_roots: int
    ready_roots: int
    requests_in_flight: int
    deadlines: int
    deadline_heap: int
    range_sync_active: bool
    stopped: bool
    counters: Mapping[str, int]


class P2PCore:
    """The P2P actor's state machine. Every method runs on the loop thread."""

    def __init__(
        self,
        chain: ChainReader,
        *,
        bootnodes: Sequence[str] = (),
        block_root: Callable[[SignedBlock], bytes] = block_root,
        max_peers: int = backoff.MAX_PEERS,
        max_pending_roots: int = backoff.MAX_PENDING_ROOTS,
        max_requests_in_flight: int = backoff.MAX_REQUESTS_IN_FLIGHT,
        range_sync: bool = True,
    ) -> None:
        """``range_sync=False`` follows gossip only: a node behind then learns its
        missing blocks one parent at a time (the slow path range sync exists to avoid;
        kept for comparison and for nodes that must not bulk-download)."""
        self._chain = chain
        self._range_sync_enabled = range_sync
        self._block_root = block_root
        self._bootnodes: dict[str, str | None] = {a: bootnode_peer_id(a) for a in bootnodes}
        self._max_requests = max_requests_in_flight
        self._peers = PeerTable(max_peers)
        self._fetcher = RootFetcher(max_pending_roots)
        self._requests: dict[int, OutboundRequest] = {}
        self._deadlines = Deadlines()
        self._range: RangeSync | None = None
        self._next_request_id = 1
        self._commands: list[net.Command] = []
        self._to_chain: list[ToChain] = []
        self._counters: Counter[str] = Counter()
        #: (topic, reason) -> (when last logged, failures not logged since)
        self._publish_failures_logged: dict[tuple[str, str], tuple[float, int]] = {}
        self._started = False
        self._stopped_reason: str | None = None
        # Set whenever roots may have become sendable (new or retried roots, a settled
        # request, a peer change); cleared by the dispatch pass that looks at them.
        self._roots_dirty = False

    # --- outboxes and introspection -------------------------------------------------

    def drain_commands(self) -> list[net.Command]:
        """Commands for the driver produced since the last drain, in order."""
        commands, self._commands = self._commands, []
        return commands

    def drain_to_chain(self) -> list[ToChain]:
        """Values for the chain produced since the last drain, in order."""
        values, self._to_chain = self._to_chain, []
        return values

    @property
    def stopped_reason(self) -> str | None:
        """Why the core stopped; None while it runs."""
        return self._stopped_reason

    def statistics(self) -> P2PStatistics:
        return P2PStatistics(
            peers=len(self._peers),
            pending_roots=len(self._fetcher),
            ready_roots=self._fetcher.ready_count,
            requests_in_flight=len(self._requests),
            deadlines=len(self._deadlines),
            deadline_heap=self._deadlines.heap_size,
            range_sync_active=self._range is not None,
            stopped=self._stopped_reason is not None,
            counters=dict(self._counters),
        )

    def next_deadline(self) -> float | None:
        """When :meth:`handle_timer` must next run; None when nothing is scheduled."""
        return self._deadlines.next()

    def check_invariants(self) -> None:
        """Raise AssertionError naming every broken invariant (for tests and harnesses).

        Each wanted root is in exactly one place (ready, in flight in a live request, or
        backing off with a deadline); each request has its deadline and a connected
        peer; the range sync's request or retry is live; every table is within bounds.
        """
        problems: list[str] = []
        for root, fetch in self._fetcher.items():
            places = [
                self._fetcher.is_ready(root),
                fetch.request_id is not None,
                _Deadline(_Timer.ROOT_RETRY, root) in self._deadlines,
            ]
            if sum(places) != 1:
                problems.append(f"root {root.hex()[:16]} is in {sum(places)} places")
            if fetch.request_id is not None:
                request = self._requests.get(fetch.request_id)
                if request is None or root not in request.roots:
                    problems.append(f"root {root.hex()[:16]} in flight in a dead request")
        for request_id, request in self._requests.items():
            if _Deadline(_Timer.REQUEST_DEADLINE, request_id) not in self._deadlines:
                problems.append(f"request {request_id} has no deadline")
            if request.peer_id not in self._peers:
                problems.append(f"request {request_id} outlived peer {request.peer_id}")
        sync = self._range
        if sync is not None:
            if sync.request_id is not None and sync.request_id not in self._requests:
                problems.append(f"range request {sync.request_id} is gone")
            if sync.backing_off and _RANGE_RETRY not in self._deadlines:
                problems.append("range sync backs off without a deadline")
        kinds = Counter(request.kind for request in self._requests.values())
        data_requests = kinds[RequestKind.BY_ROOT] + kinds[RequestKind.BY_RANGE]
        if data_requests > self._max_requests:
            problems.append(f"{data_requests} block requests in flight")
        status_peers = Counter(
            r.peer_id for r in self._requests.values() if r.kind is RequestKind.STATUS
        )
        if status_peers and max(status_peers.values()) > 1:
            problems.append("more than one Status request in flight to a peer")
        if self._stopped_reason is not None and (self._requests or len(self._deadlines)):
            problems.append("stopped with live requests or deadlines")
        if problems:
            raise AssertionError("; ".join(problems))

    # --- lifecycle --------------------------------------------------------------------

    def start(self, now: float) -> None:
        """Dial the bootnodes (once). Also done on :class:`DriverStarted`."""
        if self._started or self._stopped_reason is not None:
            return
        self._started = True
        for address in self._bootnodes:
            self._dial(address)

    def stop(self, reason: str, *, orderly: bool = False) -> None:
        """Stop for good: no more commands or timers; wanted roots are reported given up.

        Nothing is rescheduled after this: in particular no redial, whatever events
        still arrive (the reference design's redial loop outlived its driver).
        ``orderly``: its owner is shutting down, which is logged at INFO, not WARNING.
        """
        if self._stopped_reason is not None:
            return
        self._stopped_reason = reason
        log_event(logging.INFO if orderly else logging.WARNING, "p2p stopped", reason=reason)
        abandoned = self._fetcher.roots()
        if abandoned:
            self._to_chain.append(FetchAbandoned(abandoned, f"p2p stopped: {reason}"))
        self._fetcher.clear()
        self._requests.clear()
        self._deadlines.clear()
        self._range = None
        self._commands.clear()

    # --- inputs -----------------------------------------------------------------------

    def handle_event(self, event: net.Event, now: float) -> None:
        if self._stopped_reason is not None:
            self._counters["inputs_after_stop"] += 1
            return
        match event:
            case net.ResponseChunk():
                self._on_response_chunk(event, now)
            case net.RequestCompleted():
                self._on_request_completed(event, now)
            case net.RequestFailed():
                self._on_request_failed(event, now)
            case net.GossipBlock():
                self._on_block(
                    event.block, event.peer_id, BlockSource.GOSSIP, message_id=event.message_id
                )
            case net.GossipAttestation():
                self._counters["gossip_attestations"] += 1
                self._to_chain.append(
                    AttestationReceived(event.attestation, event.peer_id, event.message_id)
                )
            case net.GossipAggregate():
                self._counters["gossip_aggregates"] += 1
                self._to_chain.append(
                    AggregateReceived(event.aggregate, event.peer_id, event.message_id)
                )
            case net.InboundRequest():
                self._on_inbound_request(event, now)
            case net.PeerConnected():
                self._on_peer_connected(event, now)
            case net.PeerDisconnected():
                self._on_peer_disconnected(event, now)
            case net.DialFailed():
                self._on_dial_failed(event, now)
            case net.PublishFailed():
                self._counters[f"publish_failed_{event.topic.name.lower()}"] += 1
                self._log_publish_failure(event, now)
                self._to_chain.append(PublishRejected(event.topic, event.message_id, event.reason))
            case net.DriverStarted():
                self.start(now)
            case net.DriverStopped():
                detail = f": {event.error}" if event.error else ""
                self.stop(f"driver stopped ({event.reason}){detail}")
        self._dispatch(now)

    def _log_publish_failure(self, event: net.PublishFailed, now: float) -> None:
        """WARNING for the first failure of a kind, then at most one per interval with
        the count left unlogged: a lone node fails every publish, and each is already
        counted and reported to the chain."""
        key = (event.topic.value, event.reason)
        previous = self._publish_failures_logged.get(key)
        if previous is not None and now - previous[0] < PUBLISH_FAILURE_LOG_INTERVAL:
            self._publish_failures_logged[key] = (previous[0], previous[1] + 1)
            return
        hint = {}
        if not self._peers:
            # The usual cause, said where the user looks: a node alone cannot publish.
            hint["hint"] = "no peer is connected: check the bootnodes and that they are up"
        log_event(
            logging.WARNING,
            "publish failed",
            topic=event.topic.value,
            message_id=event.message_id,
            reason=event.reason,
            connected_peers=len(self._peers),
            not_logged_since_last=previous[1] if previous is not None else 0,
            **hint,
        )
        self._publish_failures_logged[key] = (now, 0)

    def handle_request(self, request: ChainRequest, now: float) -> None:
        if self._stopped_reason is not None:
            self._counters["inputs_after_stop"] += 1
            return
        match request:
            case FetchRoots():
                self._fetch_roots(request.roots)
            case PublishBlock():
                self._publish(net.GossipTopic.BLOCK, request.block)
            case PublishAttestation():
                self._publish(net.GossipTopic.ATTESTATION, request.attestation)
            case PublishAggregate():
                self._publish(net.GossipTopic.AGGREGATION, request.aggregate)
            case ReportGossip(message_id=message_id, verdict=verdict):
                self._counters[f"gossip_verdicts_{verdict.value}"] += 1
                self._commands.append(net.ReportValidation(message_id, verdict))
        self._dispatch(now)

    def handle_timer(self, now: float) -> None:
        """Run everything due at ``now`` (early or spurious calls are harmless)."""
        if self._stopped_reason is not None:
            return
        for key in self._deadlines.pop_due(now):
            self._on_deadline(key, now)
        self._dispatch(now)

    # --- peers and status -------------------------------------------------------------

    def _our_status(self) -> Status:
        from lean_p2p.containers import Status

        return Status(finalized=self._chain.finalized(), head=self._chain.head())

    def _on_peer_connected(self, event: net.PeerConnected, now: float) -> None:
        peer_id = event.peer_id
        if peer_id in self._peers:
            # A second connection to the same peer: one handshake is enough.
            self._counters["duplicate_connections"] += 1
            return
        if self._peers.full:
            self._counters["peers_refused_full"] += 1
            self._disconnect(peer_id, "peer table full")
            return
        self._peers.add(peer_id, event.direction, event.address)
        self._roots_dirty = True
        self._counters["peers_connected"] += 1
        log_event(
            logging.INFO,
            "peer connected",
            peer_id=peer_id,
            direction=event.direction.value,
            address=event.address,
        )
        for address, bootnode_id in self._bootnodes.items():
            if bootnode_id == peer_id:
                self._deadlines.cancel(_Deadline(_Timer.REDIAL, address))
        self._send_status(peer_id, now)

    def _send_status(self, peer_id: str, now: float) -> None:
        request_id = self._send_request(peer_id, RequestKind.STATUS, self._our_status(), now)
        log_event(logging.DEBUG, "status sent", peer_id=peer_id, request_id=request_id)

    def _status_settled(self, peer_id: str, now: float, *, ok: bool) -> None:
        """Our Status request to ``peer_id`` ended: schedule the next one.

        Refreshed periodically (peers' heads move; a lost exchange must not leave us
        unaware of a peer that is ahead); a peer that keeps failing the handshake is
        dropped.
        """
        peer = self._peers.get(peer_id)
        if peer is None:
            return
        if ok:
            peer.status_failures = 0
            self._deadlines.set(
                _Deadline(_Timer.STATUS_REFRESH, peer_id), now + backoff.STATUS_REFRESH_INTERVAL
            )
            return
        peer.failures += 1
        peer.status_failures += 1
        if peer.status_failures >= backoff.FETCH_MAX_ATTEMPTS:
            self._counters["peers_dropped_no_status"] += 1
            self._drop_peer(peer_id, "status handshake failed repeatedly", now)
            return
        self._deadlines.set(
            _Deadline(_Timer.STATUS_REFRESH, peer_id),
            now + backoff.retry_delay(peer.status_failures),
        )

    def _on_peer_disconnected(self, event: net.PeerDisconnected, now: float) -> None:
        peer = self._peers.remove(event.peer_id)
        self._deadlines.cancel(_Deadline(_Timer.STATUS_REFRESH, event.peer_id))
        if peer is None:
            self._counters["unknown_peer_disconnected"] += 1
        else:
            self._counters["peers_disconnected"] += 1
            log_event(logging.INFO, "peer disconnected", peer_id=event.peer_id, reason=event.reason)
        # The driver may not report the fate of requests to a vanished peer: settle
        # them here, so no entry outlives its peer.
        for request in [r for r in self._requests.values() if r.peer_id == event.peer_id]:
            self._settle_failed(request, now, f"peer disconnected: {event.reason}")
        for address, bootnode_id in self._bootnodes.items():
            if bootnode_id == event.peer_id:
                self._schedule_redial(address, now)

    def _on_dial_failed(self, event: net.DialFailed, now: float) -> None:
        self._counters["dials_failed"] += 1
        log_event(
            logging.INFO,
            "dial failed",
            address=event.address,
            peer_id=event.peer_id,
            reason=event.reason,
        )
        for address, bootnode_id in self._bootnodes.items():
            if address == event.address or (bootnode_id and bootnode_id == event.peer_id):
                self._schedule_redial(address, now)

    def _schedule_redial(self, address: str, now: float) -> None:
        # Only ever scheduled in answer to a disconnect or failed dial event, so once
        # the driver is gone (no more events) or the core stopped, redialling ends.
        self._deadlines.set(
            _Deadline(_Timer.REDIAL, address), now + backoff.BOOTNODE_REDIAL_INTERVAL
        )

    def _on_peer_status(self, peer_id: str, status: Status, now: float) -> None:
        peer = self._peers.get(peer_id)
        if peer is None:
            self._counters["status_from_unknown_peer"] += 1
            return
        conflict = status_conflict(status, self._chain)
        if conflict is not None:
            self._counters["peers_incompatible"] += 1
            self._drop_peer(peer_id, conflict, now)
            return
        peer.status = status
        self._roots_dirty = True
        log_event(
            logging.DEBUG,
            "peer status",
            peer_id=peer_id,
            slot=status.head.slot,
            root=status.head.root,
            finalized_slot=status.finalized.slot,
        )
        self._consider_range_sync()

    def _drop_peer(self, peer_id: str, reason: str, now: float) -> None:
        """Disconnect a peer ourselves; forget it now (the driver's event may follow)."""
        self._peers.remove(peer_id)
        self._deadlines.cancel(_Deadline(_Timer.STATUS_REFRESH, peer_id))
        self._disconnect(peer_id, reason)
        for request in [r for r in self._requests.values() if r.peer_id == peer_id]:
            self._settle_failed(request, now, f"peer dropped: {reason}")

    def _disconnect(self, peer_id: str, reason: str) -> None:
        log_event(logging.INFO, "disconnecting peer", peer_id=peer_id, reason=reason)
        self._commands.append(net.Disconnect(peer_id, reason))

    def _dial(self, address: str) -> None:
        self._counters["dials"] += 1
        log_event(logging.DEBUG, "dialling", address=address)
        self._commands.append(net.Dial(address))

    # --- requests out -----------------------------------------------------------------

    def _send_request(
        self,
        peer_id: str,
        kind: RequestKind,
        payload: Any,
        now: float,
        *,
        roots: frozenset[bytes] = frozenset(),
        start_slot: int = 0,
        count: int = 0,
    ) -> int:
        request_id = self._next_request_id
        self._next_request_id += 1
        deadline = now + backoff.REQUEST_DEADLINE
        self._requests[request_id] = OutboundRequest(
            request_id, peer_id, kind, deadline, roots=roots, start_slot=start_slot, count=count
        )
        self._deadlines.set(_Deadline(_Timer.REQUEST_DEADLINE, request_id), deadline)
        self._counters[f"requests_{kind.value}"] += 1
        self._commands.append(net.SendRequest(peer_id, request_id, payload))
        return request_id

    def _dispatch(self, now: float) -> None:
        """Send whatever is ready and allowed: the next range batch, ready roots.

        Roots go out only when something that can change the outcome happened
        (``_roots_dirty``), not after every response chunk.
        """
        if self._stopped_reason is not None or len(self._peers) == 0:
            return
        self._dispatch_roots(now)
        self._dispatch_range(now)

    def _dispatch_roots(self, now: float) -> None:
        if not self._roots_dirty or self._fetcher.ready_count == 0:
            return
        if self._range is not None and self._range.request_id is not None:
            # A range batch is streaming in: the roots the chain misses now are mostly
            # its blocks still on the way (or gaps in it). Send them once the batch
            # settles, together, instead of walking parents one round trip at a time.
            return
        self._roots_dirty = False
        from lean_p2p.containers import BlocksByRootRequest

        busy = Counter(r.peer_id for r in self._requests.values() if r.kind is RequestKind.BY_ROOT)
        ranked = [peer.peer_id for peer in self._peers.ranked()]
        full = {peer_id for peer_id, n in busy.items() if n >= backoff.BY_ROOT_REQUESTS_PER_PEER}
        for peer_id, roots in self._fetcher.group_by_peer(ranked, full):
            if len(self._requests) >= self._max_requests:
                self._counters["dispatch_deferred_request_limit"] += 1
                return
            if busy[peer_id] >= backoff.BY_ROOT_REQUESTS_PER_PEER:
                # Roots wanted while a request to this peer is out wait for it to
                # settle and then go together: a burst of missing parents becomes one
                # request, not one each.
                continue
            busy[peer_id] += 1
            request_id = self._send_request(
                peer_id,
                RequestKind.BY_ROOT,
                BlocksByRootRequest(roots=roots),
                now,
                roots=frozenset(roots),
            )
            self._fetcher.mark_in_flight(roots, request_id)
            log_event(
                logging.DEBUG,
                "blocks by root requested",
                peer_id=peer_id,
                request_id=request_id,
                count=len(roots),
                root=roots[0],
            )

    # --- block fetch by root ----------------------------------------------------------

    def _fetch_roots(self, roots: Iterable[bytes]) -> None:
        refused: list[bytes] = []
        for root in roots:
            if self._chain.get_block(root) is not None:
                self._counters["fetch_already_known"] += 1
                continue
            added = self._fetcher.add(root)
            if added is None:
                refused.append(root)
            elif added:
                self._counters["fetch_roots_added"] += 1
                self._roots_dirty = True
            else:
                self._counters["fetch_deduplicated"] += 1
        if refused:
            # Overload: never grow past the bound; count, log and tell the chain.
            self._counters["fetch_refused_full"] += len(refused)
            log_event(logging.WARNING, "fetch table full", count=len(refused), root=refused[0])
            self._to_chain.append(FetchAbandoned(tuple(refused), "fetch table full"))

    def _fail_roots(
        self, request: OutboundRequest, roots: Iterable[bytes], now: float, reason: str
    ) -> None:
        """``request`` did not bring ``roots``: back each off, or give it up."""
        abandoned: list[bytes] = []
        for root in sorted(roots):  # sorted: the command log must not depend on hashing
            fetch = self._fetcher.get(root)
            if fetch is None or fetch.request_id != request.request_id:
                continue  # settled meanwhile (e.g. by gossip): nothing to retry
            attempt = self._fetcher.fail(root, request.peer_id)
            if attempt is None:
                abandoned.append(root)
            else:
                self._deadlines.set(
                    _Deadline(_Timer.ROOT_RETRY, root), now + backoff.retry_delay(attempt)
                )
                self._counters["root_retries"] += 1
        if abandoned:
            self._counters["roots_abandoned"] += len(abandoned)
            log_event(
                logging.WARNING,
                "fetch abandoned",
                peer_id=request.peer_id,
                request_id=request.request_id,
                count=len(abandoned),
                root=abandoned[0],
                reason=reason,
            )
            self._to_chain.append(FetchAbandoned(tuple(abandoned), reason))

    # --- responses --------------------------------------------------------------------

    def _owned_request(self, request_id: int, peer_id: str) -> OutboundRequest | None:
        request = self._requests.get(request_id)
        if request is None:
            # Late (after a timeout or disconnect settled it) or never ours: ignore.
            self._counters["stale_response_events"] += 1
            return None
        if request.peer_id != peer_id:
            self._counters["response_from_wrong_peer"] += 1
            log_event(
                logging.WARNING,
                "response from wrong peer",
                peer_id=peer_id,
                request_id=request_id,
                expected_peer_id=request.peer_id,
            )
            return None
        return request

    def _on_response_chunk(self, event: net.ResponseChunk, now: float) -> None:
        from lean_p2p.containers import SignedBlock, Status

        request = self._owned_request(event.request_id, event.peer_id)
        if request is None:
            return
        payload = event.payload
        if request.kind is RequestKind.STATUS:
            if isinstance(payload, Status) and not request.status_received:
                request.status_received = True
                self._on_peer_status(event.peer_id, payload, now)
            else:
                request.rejected += 1
                self._counters["status_response_invalid"] += 1
            return
        if not isinstance(payload, SignedBlock):
            request.rejected += 1
            self._counters["response_wrong_payload_type"] += 1
            return
        root = self._block_root(payload)
        if root in request.received:
            self._counters["response_duplicate_chunks"] += 1
            return
        if request.kind is RequestKind.BY_ROOT:
            accepted = root in request.roots
        else:
            accepted = self._extends_range(request, payload)
            if accepted:
                request.highest_slot = payload.block.slot
                request.last_root = root
        if not accepted:
            # Not what we asked for: never imported (it could be anything).
            request.rejected += 1
            self._counters["response_unrequested_blocks"] += 1
            log_event(
                logging.INFO,
                "unrequested block in response",
                peer_id=event.peer_id,
                request_id=event.request_id,
                root=root,
                slot=payload.block.slot,
            )
            return
        request.received.add(root)
        by_root = request.kind is RequestKind.BY_ROOT
        source = BlockSource.BY_ROOT if by_root else BlockSource.BY_RANGE
        self._on_block(payload, event.peer_id, source, root)

    def _extends_range(self, request: OutboundRequest, block: SignedBlock) -> bool:
        """Whether to accept a BlocksByRange chunk.

        It must lie in the requested slots, after the last accepted slot, and either be
        the child of the last accepted block (of this batch or the previous one; for a
        sync's first block, of a block the chain has), or leave a short gap of at most
        ``RANGE_GAP_TOLERANCE`` slots: a lost chunk, whose block the chain then asks for
        by root (one batched request for all such gaps). A block further ahead is
        rejected: accepting it would make the sync skip every slot in between, which
        the chain could only recover by walking parents back one round trip at a time.
        """
        slot = block.block.slot
        if not (request.start_slot <= slot < request.start_slot + request.count):
            return False
        if slot <= request.highest_slot:
            return False
        parent = block.block.parent_root
        if request.last_root is None:
            linked = self._chain.get_block(parent) is not None
        else:
            linked = parent == request.last_root
        if linked:
            return True
        previous_slot = max(request.highest_slot, request.start_slot - 1)
        if slot - previous_slot <= backoff.RANGE_GAP_TOLERANCE:
            self._counters["range_gaps_tolerated"] += 1
            return True
        return False

    def _on_block(
        self,
        block: SignedBlock,
        peer_id: str,
        source: BlockSource,
        root: bytes | None = None,
        message_id: bytes = b"",
    ) -> None:
        if root is None:
            root = self._block_root(block)
        peer = self._peers.get(peer_id)
        if source is BlockSource.GOSSIP and peer is not None:
            peer.seen_slot = max(peer.seen_slot, block.block.slot)
            if self._chain.get_block(block.block.parent_root) is None:
                # A gap: range-sync up to this block from whoever holds it, not only when
                # a Status says so (a peer's Status may never change; parents fetched by
                # root one round trip at a time are the slow way across a long gap).
                self._consider_range_sync()
        if self._fetcher.settle(root):
            self._deadlines.cancel(_Deadline(_Timer.ROOT_RETRY, root))
            self._counters["fetch_roots_settled"] += 1
        self._counters[f"blocks_{source.value}"] += 1
        self._to_chain.append(BlockReceived(block, root, peer_id, source, message_id))

    def _on_request_completed(self, event: net.RequestCompleted, now: float) -> None:
        request = self._owned_request(event.request_id, event.peer_id)
        if request is None:
            return
        self._forget_request(request)
        peer = self._peers.get(request.peer_id)
        match request.kind:
            case RequestKind.STATUS:
                if not request.status_received:
                    self._counters["status_response_missing"] += 1
                self._status_settled(request.peer_id, now, ok=request.status_received)
            case RequestKind.BY_ROOT:
                missing = request.roots - request.received
                if not request.received:
                    # Empty, or nothing matched: a failure of the whole request.
                    self._counters["by_root_nothing_useful"] += 1
                    if peer is not None:
                        peer.failures += 1
                if missing:
                    self._fail_roots(request, missing, now, "not served by peer")
            case RequestKind.BY_RANGE:
                clean = request.rejected == 0 and len(request.received) >= event.chunks
                self._settle_range(request, now, clean=clean)

    def _on_request_failed(self, event: net.RequestFailed, now: float) -> None:
        request = self._owned_request(event.request_id, event.peer_id)
        if request is None:
            return
        reason = event.failure.value
        if event.failure is net.RequestFailure.ERROR_RESPONSE and event.result_code is not None:
            reason = f"{reason} {event.result_code.name}: {event.message}"
        self._settle_failed(request, now, reason)

    def _settle_failed(self, request: OutboundRequest, now: float, reason: str) -> None:
        """End a request that did not complete normally; its entry goes, its work retries."""
        self._forget_request(request)
        self._counters[f"failed_{request.kind.value}"] += 1
        log_event(
            logging.INFO,
            "request failed",
            peer_id=request.peer_id,
            request_id=request.request_id,
            kind=request.kind.value,
            reason=reason,
        )
        peer = self._peers.get(request.peer_id)
        if peer is not None:
            peer.failures += 1
        if request.kind is RequestKind.BY_ROOT:
            self._fail_roots(request, request.roots - request.received, now, reason)
        elif request.kind is RequestKind.BY_RANGE:
            self._settle_range(request, now, clean=False)
        else:
            self._status_settled(request.peer_id, now, ok=request.status_received)

    def _forget_request(self, request: OutboundRequest) -> None:
        self._roots_dirty = True
        del self._requests[request.request_id]
        self._deadlines.cancel(_Deadline(_Timer.REQUEST_DEADLINE, request.request_id))

    # --- range sync -------------------------------------------------------------------

    def _consider_range_sync(self) -> None:
        if not self._range_sync_enabled:
            return
        best = self._peers.best_head_slot()
        if self._range is not None:
            self._range.target_slot = max(self._range.target_slot, best)
            return
        # The chain's head is the authority: blocks handed over but not yet imported
        # may be fetched twice, never skipped.
        start = self._chain.head().slot + 1
        if best >= start:
            self._range = RangeSync(cursor=start, target_slot=best)
            self._counters["range_syncs_started"] += 1
            log_event(logging.INFO, "range sync started", slot=start, target_slot=best)

    def _dispatch_range(self, now: float) -> None:
        sync = self._range
        if sync is None or sync.request_id is not None or sync.backing_off:
            return
        if len(self._requests) >= self._max_requests:
            return
        candidates = [p for p in self._peers.ranked() if p.head_slot >= sync.cursor]
        if not candidates:
            if any(p.status is not None for p in self._peers):
                # Nobody still connected has these slots: stop; a later Status restarts.
                self._finish_range("no peer has the remaining slots")
            return
        fresh = [p for p in candidates if p.peer_id not in sync.failed_peers]
        peer = (fresh or candidates)[0]
        from lean_p2p.containers import BlocksByRangeRequest

        count = sync.next_count()
        request = BlocksByRangeRequest(start_slot=sync.cursor, count=count)
        sync.request_id = self._send_request(
            peer.peer_id, RequestKind.BY_RANGE, request, now, start_slot=sync.cursor, count=count
        )
        self._requests[sync.request_id].last_root = sync.anchor_root
        log_event(
            logging.DEBUG,
            "blocks by range requested",
            peer_id=peer.peer_id,
            request_id=sync.request_id,
            slot=sync.cursor,
            count=count,
        )

    def _settle_range(self, request: OutboundRequest, now: float, *, clean: bool) -> None:
        sync = self._range
        if sync is None or sync.request_id != request.request_id:
            return
        outcome = sync.settle(
            peer_id=request.peer_id,
            start_slot=request.start_slot,
            count=request.count,
            highest_slot=request.highest_slot,
            last_root=request.last_root,
            clean=clean,
        )
        if not clean:
            self._counters["range_batches_incomplete"] += 1
        if outcome.retry_attempt is not None:
            self._deadlines.set(_RANGE_RETRY, now + backoff.retry_delay(outcome.retry_attempt))
        elif outcome.abandoned:
            self._counters["range_syncs_abandoned"] += 1
            self._finish_range("too many failed batches")
        elif outcome.finished:
            self._counters["range_syncs_completed"] += 1
            # No immediate restart even if the chain's head still lags (its import may
            # trail, or the peer overstated its head): the next Status decides, so a
            # peer that claims slots it never serves costs one batch per refresh.
            self._finish_range("caught up")

    def _finish_range(self, reason: str) -> None:
        if self._range is not None:
            log_event(
                logging.INFO,
                "range sync ended",
                slot=self._range.cursor,
                target_slot=self._range.target_slot,
                reason=reason,
            )
        self._range = None
        self._deadlines.cancel(_RANGE_RETRY)

    # --- timers -----------------------------------------------------------------------

    def _on_deadline(self, key: Hashable, now: float) -> None:
        match key:
            case _Deadline(_Timer.REQUEST_DEADLINE, int() as request_id):
                request = self._requests.get(request_id)
                if request is not None:
                    self._counters["request_deadlines_expired"] += 1
                    self._settle_failed(request, now, net.RequestFailure.TIMEOUT.value)
            case _Deadline(_Timer.ROOT_RETRY, bytes() as root):
                self._fetcher.mark_ready(root)
                self._roots_dirty = True
            case _Deadline(_Timer.REDIAL, str() as address):
                self._counters["redials"] += 1
                self._dial(address)
            case _Deadline(_Timer.STATUS_REFRESH, str() as peer_id):
                if peer_id in self._peers:
                    self._counters["status_refreshes"] += 1
                    self._send_status(peer_id, now)
            case _Deadline(_Timer.RANGE_RETRY):
                if self._range is not None:
                    self._range.backing_off = False

    # --- inbound requests and publishing ------------------------------------------------

    def _on_inbound_request(self, event: net.InboundRequest, now: float) -> None:
        response = serve.answer(event, self._chain, self._our_status())
        self._counters[response.counter] += 1
        if response.refused is not None:
            log_event(
                logging.INFO,
                "inbound request refused",
                peer_id=event.peer_id,
                request_id=event.request_id,
                protocol=event.protocol.name,
                reason=response.refused,
            )
        self._commands.extend(response.commands)
        if response.peer_status is not None:
            self._on_peer_status(event.peer_id, response.peer_status, now)

    def _publish(self, topic: net.GossipTopic, message: Any) -> None:
        self._counters[f"published_{topic.name.lower()}"] += 1
        self._commands.append(net.Publish(topic, message))

"""Lean gossipsub: the one module that replaces part of py-libp2p. Trio driver thread.

WHY THIS MODULE EXISTS. py-libp2p's ``Pubsub``/``GossipSub`` cannot be configured into
what the lean network requires (see docs/driver.md for the list with evidence):

1. anonymous messages (StrictNoSign): it always sets ``from``/``seqno`` and, with
   anonymous messages, its equivocation check and message cache collapse every message
   onto one key (empty from + seqno);
2. the spec's message id must key deduplication, the message cache, IHAVE/IWANT and
   IDONTWANT; py-libp2p's cache and gossip key on from + seqno whatever id function is
   given;
3. messages up to 10 MiB (its frames stop at 1 MiB);
4. no silent drops: its per-peer outbound queue and subscription channel drop at 32
   entries, logging at DEBUG;
5. spam limits that do not throttle honest traffic (its default is 10 msg/s per topic,
   own publishes included);
6. no leftover threads (each ``Pubsub`` starts a cleanup thread it never stops);
7. no signed peer record in every RPC (per-message cost the lean network does not need).

Overriding that much would replace nearly every method of two 2,000+ line classes, so
instead this module implements the gossipsub v1.1/v1.2 router on top of py-libp2p's
host, streams and protobuf schema (``libp2p.pubsub.pb.rpc_pb2``) — wire compatible with
other gossipsub implementations. Everything else (QUIC, TLS, multistream, identify)
stays py-libp2p's.

The router is this module; its caches (:mod:`lean_p2p.driver.gossip_caches`) and its
frame encoding and reading (:mod:`lean_p2p.driver.gossip_frames`) live beside it.

Threading: every method runs on the driver's trio thread. Nothing here touches the
loop; inbound messages go to the ``accept`` callback, which the driver turns into a
mailbox event.

VALIDATION BEFORE FORWARDING. ``accept`` may answer :attr:`Verdict.PENDING`: the
message went to the loop for validation, and the router holds it (bounded by
``max_pending_validations``, each for ``validation_timeout`` seconds) until
:meth:`LeanGossipsub.report_validation` brings the loop's verdict, as gossipsub's
asynchronous validation works in the Ethereum clients. Only ACCEPT caches and forwards
the message; REJECT counts against the peer that sent it, and a peer with too many
rejected messages is graylisted (its messages dropped, out of every mesh) until its
count decays; IGNORE and a time-out drop it quietly. Every outcome is a counter.
"""

from __future__ import annotations

import enum
import logging
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import trio

from lean_p2p.driver.gossip_caches import MessageCache, SeenCache
from lean_p2p.driver.gossip_frames import (
    FrameReader,
    FrameTooLarge,
    coalesce,
    encode_rpc,
)
from lean_p2p.driver.streams import reset_quietly

__all__ = [
    "PROTOCOL_IDS",
    "GossipParams",
    "GossipStatistics",
    "LeanGossipsub",
    "MessageCache",
    "SeenCache",
    "Verdict",
]

logger = logging.getLogger(__name__)

#: Offered in preference order; peers on 1.1.0 simply never receive IDONTWANT.
PROTOCOL_IDS = ("/meshsub/1.2.0", "/meshsub/1.1.0")
_IDONTWANT_PROTOCOL = "/meshsub/1.2.0"

_MiB = 1024 * 1024


def _snappy_max_compressed_length(length: int) -> int:
    return 32 + length + length // 6


class Verdict(enum.Enum):
    """What the driver's validator decided about an inbound message."""

    ACCEPT = "accept"  # deliver and forward
    IGNORE = "ignore"  # neither deliver nor forward, no penalty
    REJECT = "reject"  # invalid: not forwarded, counted against the peer
    PENDING = "pending"  # delivered for validation: held until report_validation


@dataclass(frozen=True, slots=True)
class GossipParams:
    """Lean gossipsub parameters (the defaults are the lean network's)."""

    mesh_degree: int = 8  # D
    mesh_degree_low: int = 6  # D_low
    mesh_degree_high: int = 12  # D_high
    gossip_degree: int = 6  # D_lazy
    heartbeat_interval: float = 0.7
    fanout_ttl: float = 60.0
    history_length: int = 6  # mcache windows
    history_gossip: int = 3  # windows advertised in IHAVE
    seen_ttl: float = 24.0
    prune_backoff: float = 60.0
    max_message_size: int = 10 * _MiB  # uncompressed payload limit
    # One RPC frame may carry a maximally compressed 10 MiB payload plus protobuf
    # framing (matches the ~12.2 MB Rust clients allow).
    max_rpc_size: int = _snappy_max_compressed_length(10 * _MiB) + 4096
    # Outbound RPCs buffered per peer before a send is dropped (and counted).
    outbound_queue_capacity: int = 8192
    # Spam limits: bound the work a peer can cause, never the honest message rate.
    max_ihave_messages: int = 10  # IHAVE RPCs accepted per peer per heartbeat
    max_ihave_length: int = 5000  # message ids requested per peer per heartbeat
    gossip_retransmission: int = 3  # times one peer may IWANT the same message
    max_idontwant_per_heartbeat: int = 5000  # IDONTWANT ids recorded per peer
    max_subscriptions_per_peer: int = 128
    idontwant_size_threshold: int = 1000  # send IDONTWANT for larger messages
    flood_publish: bool = True  # own messages go to every subscribed peer
    # Asynchronous validation: messages held for the loop's verdict, and for how long.
    max_pending_validations: int = 4096
    validation_timeout: float = 2.0
    # Rejected messages (decayed by ``invalid_decay`` each heartbeat) before a peer is
    # graylisted: its messages dropped unread and it leaves every mesh.
    graylist_invalid_messages: float = 16.0
    invalid_decay: float = 0.9

    def __post_init__(self) -> None:
        if not (0 < self.mesh_degree_low <= self.mesh_degree <= self.mesh_degree_high):
            raise ValueError("need 0 < D_low <= D <= D_high")
        if not 0 < self.history_gossip <= self.history_length:
            raise ValueError("need 0 < history_gossip <= history_length")
        if self.heartbeat_interval <= 0 or self.seen_ttl <= 0:
            raise ValueError("heartbeat interval and seen TTL must be positive")
        if self.max_pending_validations < 1 or self.validation_timeout <= 0:
            raise ValueError("validation needs a positive capacity and time-out")
        if not 0 <= self.invalid_decay < 1 or self.graylist_invalid_messages <= 0:
            raise ValueError("need 0 <= invalid_decay < 1 and a positive graylist threshold")


@dataclass(slots=True)
class GossipStatistics:
    """Counters; every drop and rejection anywhere in the router is one of these."""

    published: int = 0
    publish_no_peers: int = 0
    received: int = 0
    delivered: int = 0
    duplicates: int = 0
    rejected: int = 0
    ignored: int = 0
    forwarded: int = 0
    oversized_rpc: int = 0
    oversized_message: int = 0
    malformed_rpc: int = 0
    unsubscribed_topic: int = 0
    signed_or_attributed: int = 0  # messages carrying from/seqno/signature/key
    queue_full_drops: int = 0
    iwant_served: int = 0
    iwant_sent: int = 0
    ihave_sent: int = 0
    spam_ihave_dropped: int = 0
    spam_iwant_dropped: int = 0
    spam_idontwant_dropped: int = 0
    spam_subscriptions_dropped: int = 0
    graft_during_backoff: int = 0
    graft_unknown_topic: int = 0
    graft_mesh_full: int = 0
    graft_graylisted: int = 0
    idontwant_skips: int = 0
    grafts_sent: int = 0
    prunes_sent: int = 0
    stream_errors: int = 0
    # asynchronous validation
    validations_pending: int = 0  # held now (a gauge)
    validation_accepted: int = 0
    validation_rejected: int = 0
    validation_ignored: int = 0
    validation_timeouts: int = 0  # no verdict in time: dropped as IGNORE
    validation_overflow: int = 0  # arrived with the holding table full: IGNORE, unread
    validation_late: int = 0  # a verdict for a message no longer held
    peers_penalized: int = 0  # REJECT verdicts counted against the sending peer
    peers_graylisted: int = 0  # times a peer crossed the graylist threshold
    graylisted_dropped: int = 0  # messages from graylisted peers, dropped unread


@dataclass(slots=True)
class _Peer:
    peer_id: Any  # libp2p ID
    send: trio.MemorySendChannel[bytes]
    protocol: str = ""
    topics: set[str] = field(default_factory=set)
    dont_want: set[bytes] = field(default_factory=set)
    ihaves_this_heartbeat: int = 0
    iwant_ids_this_heartbeat: int = 0
    idontwant_this_heartbeat: int = 0
    iwant_counts: dict[bytes, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Held:
    """A message waiting for the loop's verdict."""

    peer_id: Any
    topic: str
    data: bytes
    deadline: float


#: (topic, data) -> (message id, prepared payload handed back to ``accept``)
IdentifyFn = Callable[[str, bytes], tuple[bytes, object]]
#: (peer id, topic, message id, prepared payload) -> verdict
AcceptFn = Callable[[str, str, bytes, object], Verdict]


class LeanGossipsub:
    """Gossipsub router with anonymous messages and the lean message id.

    ``identify(topic, data)`` computes the message id (and may return a prepared value,
    e.g. the decompressed payload, so the validator does not decompress twice);
    ``accept(peer_id, topic, message_id, prepared)`` validates and delivers.
    Call :meth:`attach` once the host exists, then run :meth:`run` in a nursery.
    """

    def __init__(
        self,
        identify: IdentifyFn,
        accept: AcceptFn,
        params: GossipParams | None = None,
        *,
        clock: Callable[[], float] = trio.current_time,
    ) -> None:
        self.params = params or GossipParams()
        self._identify = identify
        self._accept = accept
        self._clock = clock
        self.statistics = GossipStatistics()
        self.seen = SeenCache(self.params.seen_ttl)
        self.mcache = MessageCache(self.params.history_length, self.params.history_gossip)
        self.subscriptions: set[str] = set()
        self.mesh: dict[str, set[Any]] = {}
        self.fanout: dict[str, set[Any]] = {}
        self._fanout_last_publish: dict[str, float] = {}
        self.peers: dict[Any, _Peer] = {}
        self._backoff: dict[tuple[Any, str], float] = {}
        #: messages held for the loop's verdict, oldest first
        self._held: dict[bytes, _Held] = {}
        #: decayed count of rejected messages per peer (kept across reconnections)
        self._invalid: dict[Any, float] = {}
        self._host: Any = None
        self._nursery: trio.Nursery | None = None
        #: {topic: (subscribed peers, mesh peers)}; an immutable snapshot, any thread
        self.topology: dict[str, tuple[int, int]] = {}

    # ----------------------------------------------------------------- lifecycle

    def attach(self, host: Any) -> None:
        """Register the gossipsub stream handlers on ``host`` (before it listens)."""
        from libp2p.custom_types import TProtocol

        self._host = host
        for protocol in PROTOCOL_IDS:
            host.set_stream_handler(TProtocol(protocol), self._handle_inbound_stream)

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Own the per-peer tasks and the heartbeat until cancelled."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            while True:
                await trio.sleep(self.params.heartbeat_interval)
                self.heartbeat()

    def subscribe(self, topic: str) -> None:
        if topic in self.subscriptions:
            return
        self.subscriptions.add(topic)
        # Join: fanout peers first, then any subscribed peer, up to D.
        mesh = set(self.fanout.pop(topic, set()))
        self._fanout_last_publish.pop(topic, None)
        candidates = [p for p in self._topic_peers(topic) if p not in mesh]
        random.shuffle(candidates)
        for peer_id in candidates[: max(0, self.params.mesh_degree - len(mesh))]:
            mesh.add(peer_id)
        self.mesh[topic] = mesh
        announce = encode_rpc(subscriptions=[(topic, True)])
        for peer in list(self.peers.values()):
            self._enqueue(peer, announce)
        for peer_id in mesh:
            self._send_control(peer_id, graft=[topic])
        self._refresh_topology()

    # ---------------------------------------------------------------- peer set

    def add_peer(self, peer_id: Any) -> None:
        """A connection to ``peer_id`` exists: open our outbound gossip stream."""
        if peer_id in self.peers or self._nursery is None:
            return
        frames = self.open_peer_queue(peer_id)
        try:
            self._nursery.start_soon(self._write_loop, self.peers[peer_id], frames)
        except RuntimeError:  # shutting down: the nursery takes no new tasks
            self.peers.pop(peer_id, None)

    def open_peer_queue(self, peer_id: Any, protocol: str = "") -> trio.MemoryReceiveChannel[bytes]:
        """Register ``peer_id`` and return the receive side of its outbound queue.

        Every RPC the router sends to the peer is one length-prefixed frame on that
        queue. :meth:`add_peer` hands it to the peer's stream writer; a caller driving
        the router without a host (the leanSpec handler vectors) reads it instead.
        ``protocol`` is the negotiated gossipsub id when already known.
        """
        send, receive = trio.open_memory_channel[bytes](self.params.outbound_queue_capacity)
        peer = _Peer(peer_id=peer_id, send=send, protocol=protocol)
        self.peers[peer_id] = peer
        if self.subscriptions:
            self._enqueue(peer, encode_rpc(subscriptions=[(t, True) for t in self.subscriptions]))
        return receive

    def remove_peer(self, peer_id: Any) -> None:
        peer = self.peers.pop(peer_id, None)
        if peer is None:
            return
        peer.send.close()
        for members in (*self.mesh.values(), *self.fanout.values()):
            members.discard(peer_id)
        self._refresh_topology()

    def _refresh_topology(self) -> None:
        # Rebuilt on the trio thread whenever subscriptions or meshes change and
        # replaced in one assignment, so other threads may read ``topology`` safely.
        self.topology = {
            topic: (len(self._topic_peers(topic)), len(self.mesh.get(topic, ())))
            for topic in self.subscriptions
        }

    def _remove_if_current(self, peer: _Peer) -> None:
        # A writer on a dead connection may fail after the peer was re-added on a new
        # connection: only the writer of the current entry may remove it.
        if self.peers.get(peer.peer_id) is peer:
            self.remove_peer(peer.peer_id)

    def _topic_peers(self, topic: str) -> list[Any]:
        return [pid for pid, peer in self.peers.items() if topic in peer.topics]

    # ------------------------------------------------------------------ publish

    def publish(self, topic: str, data: bytes) -> tuple[bytes, int]:
        """Publish an anonymous message; returns (message id, peers it was queued to).

        Zero peers means the message was *not* sent (no subscribed peer or every queue
        full): the caller must report it, never drop it silently.
        """
        message_id, _ = self._identify(topic, data)
        now = self._clock()
        self.seen.add(message_id, now)
        self.mcache.put(message_id, topic, data)
        if self.params.flood_publish:
            targets: Iterable[Any] = self._topic_peers(topic)
        elif topic in self.mesh:
            targets = self.mesh[topic]
        else:
            targets = self._fanout_peers(topic, now)
        frame = encode_rpc(publish=[(topic, data)])
        sent = sum(1 for peer_id in list(targets) if self._enqueue(self.peers[peer_id], frame))
        self.statistics.published += 1
        if sent == 0:
            self.statistics.publish_no_peers += 1
        return message_id, sent

    def _fanout_peers(self, topic: str, now: float) -> set[Any]:
        peers = self.fanout.setdefault(topic, set())
        if len(peers) < self.params.mesh_degree:
            candidates = [p for p in self._topic_peers(topic) if p not in peers]
            random.shuffle(candidates)
            peers.update(candidates[: self.params.mesh_degree - len(peers)])
        self._fanout_last_publish[topic] = now
        return peers

    # ------------------------------------------------------------- inbound RPC

    async def _handle_inbound_stream(self, stream: Any) -> None:
        peer_id = stream.muxed_conn.peer_id
        reader = FrameReader(stream, self.params.max_rpc_size)
        try:
            while True:
                frame = await reader.next_frame()
                if frame is None:
                    return
                self.handle_rpc(peer_id, frame, str(stream.get_protocol() or ""))
        except FrameTooLarge:
            self.statistics.oversized_rpc += 1
            logger.warning("gossip rpc over size limit", extra={"peer": str(peer_id)})
            await reset_quietly(stream)
        except Exception as error:  # stream reset, connection closed, ...
            self.statistics.stream_errors += 1
            logger.debug(
                "gossip inbound stream ended", extra={"peer": str(peer_id), "error": repr(error)}
            )

    def handle_rpc(self, peer_id: Any, frame: bytes, protocol: str) -> None:
        """Handle one inbound RPC ``frame`` (protobuf, without its length prefix) from
        ``peer_id``, synchronously: every reply is queued before this returns."""
        from libp2p.pubsub.pb import rpc_pb2

        rpc = rpc_pb2.RPC()
        try:
            rpc.ParseFromString(frame)
        except Exception:
            self.statistics.malformed_rpc += 1
            return
        peer = self.peers.get(peer_id)
        if peer is None:
            # The inbound stream raced ahead of the connection notification.
            self.add_peer(peer_id)
            peer = self.peers.get(peer_id)
            if peer is None:
                return
        if protocol:
            peer.protocol = protocol
        for subscription in rpc.subscriptions:
            self._handle_subscription(peer, subscription.topicid, subscription.subscribe)
        for message in rpc.publish:
            self._handle_message(peer, message)
        if rpc.HasField("control"):
            self._handle_control(peer, rpc.control)

    def _handle_subscription(self, peer: _Peer, topic: str, subscribe: bool) -> None:
        if subscribe:
            if len(peer.topics) >= self.params.max_subscriptions_per_peer:
                self.statistics.spam_subscriptions_dropped += 1
                return
            peer.topics.add(topic)
        else:
            peer.topics.discard(topic)
            self.mesh.get(topic, set()).discard(peer.peer_id)
        self._refresh_topology()

    def _handle_message(self, peer: _Peer, message: Any) -> None:
        stats = self.statistics
        stats.received += 1
        if message.from_id or message.seqno or message.signature or message.key:
            # StrictNoSign: lean messages carry none of these.
            stats.signed_or_attributed += 1
            stats.rejected += 1
            return
        if len(message.topicIDs) != 1:
            stats.malformed_rpc += 1
            return
        topic = message.topicIDs[0]
        if topic not in self.subscriptions:
            stats.unsubscribed_topic += 1
            return
        if self.graylisted(peer.peer_id):
            stats.graylisted_dropped += 1
            return
        data: bytes = message.data
        message_id, prepared = self._identify(topic, data)
        now = self._clock()
        if not self.seen.add(message_id, now):
            stats.duplicates += 1
            return
        if len(self._held) >= self.params.max_pending_validations:
            # Never grow past the bound: what cannot be held is not read at all.
            stats.validation_overflow += 1
            stats.ignored += 1
            return
        verdict = self._accept(str(peer.peer_id), topic, message_id, prepared)
        if verdict is Verdict.PENDING:
            stats.delivered += 1
            self._held[message_id] = _Held(
                peer.peer_id, topic, data, now + self.params.validation_timeout
            )
            stats.validations_pending = len(self._held)
            return
        if verdict is Verdict.REJECT:
            stats.rejected += 1
            self._penalize(peer.peer_id)
            return
        if verdict is Verdict.IGNORE:
            stats.ignored += 1
            return
        stats.delivered += 1
        self.mcache.put(message_id, topic, data)
        self._forward(peer.peer_id, topic, message_id, data)

    # ---------------------------------------------------------- validation

    def report_validation(self, message_id: bytes, verdict: Verdict) -> None:
        """The loop's verdict on a held message: ACCEPT caches and forwards it, REJECT
        counts against its sender, IGNORE drops it."""
        stats = self.statistics
        held = self._held.pop(message_id, None)
        if held is None:
            stats.validation_late += 1  # timed out already, or never held
            return
        stats.validations_pending = len(self._held)
        if verdict is Verdict.ACCEPT:
            stats.validation_accepted += 1
            self.mcache.put(message_id, held.topic, held.data)
            self._forward(held.peer_id, held.topic, message_id, held.data)
        elif verdict is Verdict.REJECT:
            stats.validation_rejected += 1
            stats.rejected += 1
            self._penalize(held.peer_id)
        else:
            stats.validation_ignored += 1
            stats.ignored += 1

    def graylisted(self, peer_id: Any) -> bool:
        return self._invalid.get(peer_id, 0.0) >= self.params.graylist_invalid_messages

    def _penalize(self, peer_id: Any) -> None:
        was_graylisted = self.graylisted(peer_id)
        self._invalid[peer_id] = self._invalid.get(peer_id, 0.0) + 1.0
        self.statistics.peers_penalized += 1
        if not was_graylisted and self.graylisted(peer_id):
            self.statistics.peers_graylisted += 1
            for members in self.mesh.values():
                members.discard(peer_id)
            logger.warning(
                "gossip peer graylisted: too many invalid messages",
                extra={"peer": str(peer_id), "invalid": round(self._invalid[peer_id], 1)},
            )

    def _expire_held(self, now: float) -> None:
        """Drop held messages past their deadline (oldest first: insertion order)."""
        expired = []
        for message_id, held in self._held.items():
            if held.deadline > now:
                break
            expired.append(message_id)
        for message_id in expired:
            del self._held[message_id]
        if expired:
            self.statistics.validation_timeouts += len(expired)
            self.statistics.ignored += len(expired)
            self.statistics.validations_pending = len(self._held)

    def _forward(self, source: Any, topic: str, message_id: bytes, data: bytes) -> None:
        targets = [pid for pid in self.mesh.get(topic, ()) if pid != source]
        if not targets:
            return
        if len(data) > self.params.idontwant_size_threshold:
            dont_want = encode_rpc(idontwant=[message_id])
            for peer_id in targets:
                peer = self.peers.get(peer_id)
                if peer is not None and peer.protocol == _IDONTWANT_PROTOCOL:
                    self._enqueue(peer, dont_want)
        frame = encode_rpc(publish=[(topic, data)])
        for peer_id in targets:
            peer = self.peers.get(peer_id)
            if peer is None:
                continue
            if message_id in peer.dont_want:
                self.statistics.idontwant_skips += 1
                continue
            if self._enqueue(peer, frame):
                self.statistics.forwarded += 1

    # ----------------------------------------------------------------- control

    def _handle_control(self, peer: _Peer, control: Any) -> None:
        params = self.params
        stats = self.statistics
        wanted: list[bytes] = []
        for ihave in control.ihave:
            peer.ihaves_this_heartbeat += 1
            if peer.ihaves_this_heartbeat > params.max_ihave_messages:
                stats.spam_ihave_dropped += 1
                continue
            if ihave.topicID not in self.subscriptions:
                continue
            for message_id in ihave.messageIDs:
                if message_id in self.seen or message_id in wanted:
                    continue
                if peer.iwant_ids_this_heartbeat >= params.max_ihave_length:
                    stats.spam_ihave_dropped += 1
                    break
                peer.iwant_ids_this_heartbeat += 1
                wanted.append(message_id)
        if wanted:
            stats.iwant_sent += len(wanted)
            self._enqueue(peer, encode_rpc(iwant=wanted))
        for iwant in control.iwant:
            self._serve_iwant(peer, iwant.messageIDs)
        for graft in control.graft:
            self._handle_graft(peer, graft.topicID)
        for prune in control.prune:
            self._handle_prune(peer, prune.topicID, prune.backoff)
        for idontwant in control.idontwant:
            for message_id in idontwant.messageIDs:
                if peer.idontwant_this_heartbeat >= params.max_idontwant_per_heartbeat:
                    stats.spam_idontwant_dropped += 1
                    break
                peer.idontwant_this_heartbeat += 1
                peer.dont_want.add(message_id)

    def _serve_iwant(self, peer: _Peer, message_ids: Iterable[bytes]) -> None:
        messages: list[tuple[str, bytes]] = []
        for message_id in message_ids:
            cached = self.mcache.get(message_id)
            if cached is None:
                continue
            count = peer.iwant_counts.get(message_id, 0) + 1
            peer.iwant_counts[message_id] = count
            if count > self.params.gossip_retransmission:
                self.statistics.spam_iwant_dropped += 1
                continue
            messages.append(cached)
        if messages:
            self.statistics.iwant_served += len(messages)
            self._enqueue(peer, encode_rpc(publish=messages))

    def _handle_graft(self, peer: _Peer, topic: str) -> None:
        if topic not in self.subscriptions:
            # gossipsub v1.1 spam hardening: ignored, since answering with a PRUNE
            # would let a peer make us reply to GRAFTs for arbitrary topics.
            self.statistics.graft_unknown_topic += 1
            return
        mesh = self.mesh.setdefault(topic, set())
        if peer.peer_id in mesh:
            return  # a repeated GRAFT changes nothing (and is not refused at capacity)
        if self._backoff.get((peer.peer_id, topic), 0.0) > self._clock():
            self.statistics.graft_during_backoff += 1
            self._send_control(peer.peer_id, prune=[topic])
            return
        if self.graylisted(peer.peer_id):
            self.statistics.graft_graylisted += 1
            self._send_control(peer.peer_id, prune=[topic])
            return
        if len(mesh) >= self.params.mesh_degree_high:
            # v1.1 outbound quotas accept a GRAFT at D_high only on an outbound
            # connection; the router does not know directions, so it refuses them all.
            self.statistics.graft_mesh_full += 1
            self._send_control(peer.peer_id, prune=[topic])
            return
        peer.topics.add(topic)
        mesh.add(peer.peer_id)
        self._refresh_topology()

    def _handle_prune(self, peer: _Peer, topic: str, backoff: int) -> None:
        self.mesh.get(topic, set()).discard(peer.peer_id)
        duration = max(float(backoff), self.params.prune_backoff)
        self._backoff[(peer.peer_id, topic)] = self._clock() + duration
        self._refresh_topology()

    def set_backoff(self, peer_id: Any, topic: str, until: float) -> None:
        """No GRAFT with ``peer_id`` on ``topic`` either way before ``until`` (router
        clock); the heartbeat forgets it afterwards."""
        self._backoff[(peer_id, topic)] = until

    def _send_control(
        self, peer_id: Any, *, graft: list[str] | None = None, prune: list[str] | None = None
    ) -> None:
        peer = self.peers.get(peer_id)
        if peer is None:
            return
        if prune:
            now = self._clock()
            for topic in prune:
                self._backoff[(peer_id, topic)] = now + self.params.prune_backoff
            self.statistics.prunes_sent += len(prune)
        if graft:
            self.statistics.grafts_sent += len(graft)
        self._enqueue(
            peer,
            encode_rpc(
                graft=graft or [], prune=prune or [], backoff=int(self.params.prune_backoff)
            ),
        )

    # --------------------------------------------------------------- heartbeat

    def heartbeat(self) -> None:
        """Mesh maintenance, gossip emission, cache shifting and expiry (every 0.7 s)."""
        now = self._clock()
        params = self.params
        for topic in self.subscriptions:
            mesh = self.mesh.setdefault(topic, set())
            mesh.intersection_update(
                pid for pid in list(mesh) if pid in self.peers and topic in self.peers[pid].topics
            )
            if len(mesh) < params.mesh_degree_low:
                candidates = [
                    pid
                    for pid in self._topic_peers(topic)
                    if pid not in mesh
                    and self._backoff.get((pid, topic), 0.0) <= now
                    and not self.graylisted(pid)
                ]
                random.shuffle(candidates)
                for peer_id in candidates[: params.mesh_degree - len(mesh)]:
                    mesh.add(peer_id)
                    self._send_control(peer_id, graft=[topic])
            elif len(mesh) > params.mesh_degree_high:
                members = list(mesh)
                random.shuffle(members)
                for peer_id in members[params.mesh_degree :]:
                    mesh.discard(peer_id)
                    self._send_control(peer_id, prune=[topic])
            self._emit_gossip(topic, mesh)
        for topic, last in list(self._fanout_last_publish.items()):
            if now - last > params.fanout_ttl:
                self.fanout.pop(topic, None)
                del self._fanout_last_publish[topic]
        for key, deadline in list(self._backoff.items()):
            if deadline <= now:
                del self._backoff[key]
        for peer in self.peers.values():
            peer.ihaves_this_heartbeat = 0
            peer.iwant_ids_this_heartbeat = 0
            peer.idontwant_this_heartbeat = 0
            # IDONTWANT and IWANT bookkeeping only matters for messages still cached.
            peer.dont_want.clear()
            peer.iwant_counts.clear()
        self.mcache.shift()
        self.seen.expire(now)
        self._expire_held(now)
        for peer_id, count in list(self._invalid.items()):
            decayed = count * params.invalid_decay
            if decayed < 0.1:
                del self._invalid[peer_id]
            else:
                self._invalid[peer_id] = decayed
        self._refresh_topology()

    def _emit_gossip(self, topic: str, mesh: set[Any]) -> None:
        message_ids = self.mcache.gossip_ids(topic)
        if not message_ids:
            return
        candidates = [pid for pid in self._topic_peers(topic) if pid not in mesh]
        random.shuffle(candidates)
        frame = encode_rpc(ihave=[(topic, message_ids[: self.params.max_ihave_length])])
        for peer_id in candidates[: self.params.gossip_degree]:
            if self._enqueue(self.peers[peer_id], frame):
                self.statistics.ihave_sent += 1

    # ------------------------------------------------------------------ output

    def _enqueue(self, peer: _Peer, frame: bytes) -> bool:
        try:
            peer.send.send_nowait(frame)
        except (trio.WouldBlock, trio.ClosedResourceError, trio.BrokenResourceError):
            self.statistics.queue_full_drops += 1
            return False
        return True

    async def _write_loop(self, peer: _Peer, frames: trio.MemoryReceiveChannel[bytes]) -> None:
        from libp2p.custom_types import TProtocol

        try:
            stream = await self._host.new_stream(peer.peer_id, [TProtocol(p) for p in PROTOCOL_IDS])
        except Exception as error:
            self.statistics.stream_errors += 1
            logger.debug(
                "cannot open gossip stream", extra={"peer": str(peer.peer_id), "error": repr(error)}
            )
            self._remove_if_current(peer)
            return
        peer.protocol = peer.protocol or str(stream.get_protocol() or "")
        try:
            async with frames:
                async for frame in frames:
                    await stream.write(coalesce(frame, frames))
        except Exception as error:
            self.statistics.stream_errors += 1
            logger.debug(
                "gossip outbound stream failed",
                extra={"peer": str(peer.peer_id), "error": repr(error)},
            )
            self._remove_if_current(peer)
        finally:
            await reset_quietly(stream)

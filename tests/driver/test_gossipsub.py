"""The lean gossipsub router, driven without sockets: one test per behaviour that
differs from stock py-libp2p (anonymous messages, lean message ids in dedup, mcache and
IHAVE/IWANT/IDONTWANT, 10 MiB frames, no silent drops, spam limits), plus the mesh."""

from __future__ import annotations

import random
from typing import Any

import pytest
import trio
from libp2p.pubsub.pb import rpc_pb2

from lean_p2p.driver import codec
from lean_p2p.driver.gossip_caches import MessageCache, SeenCache
from lean_p2p.driver.gossip_frames import FrameReader, FrameTooLarge, encode_rpc
from lean_p2p.driver.gossipsub import (
    GossipParams,
    LeanGossipsub,
    Verdict,
    _Peer,
)
from lean_p2p.driver.samples import sample_attestation
from lean_p2p.net.protocol import GossipTopic
from lean_p2p.wire.varint import decode_varint, encode_varint

TOPIC = GossipTopic.ATTESTATION.topic_string()
V12 = "/meshsub/1.2.0"


class Rig:
    """A router with fake peers: each peer is the receive side of its outbound queue."""

    def __init__(
        self, params: GossipParams | None = None, verdict: Verdict = Verdict.ACCEPT
    ) -> None:
        self.now = 1000.0
        self.delivered: list[tuple[str, bytes, object]] = []
        self.verdict = verdict
        self.router = LeanGossipsub(
            codec.gossip_message_id, self._accept, params, clock=lambda: self.now
        )
        self.router.subscriptions.add(TOPIC)
        self.router.mesh[TOPIC] = set()
        self.queues: dict[str, trio.MemoryReceiveChannel[bytes]] = {}

    def _accept(self, peer_id: str, topic: str, message_id: bytes, prepared: object) -> Verdict:
        self.delivered.append((peer_id, message_id, prepared))
        return self.verdict

    def add_peer(
        self, name: str, *, protocol: str = V12, in_mesh: bool = True, capacity: int = 1000
    ) -> None:
        send, receive = trio.open_memory_channel[bytes](capacity)
        self.router.peers[name] = _Peer(peer_id=name, send=send, protocol=protocol, topics={TOPIC})
        self.queues[name] = receive
        if in_mesh:
            self.router.mesh[TOPIC].add(name)

    def sent(self, name: str) -> list[Any]:
        """Every RPC queued to ``name`` so far, parsed."""
        rpcs: list[Any] = []
        while True:
            try:
                frame = self.queues[name].receive_nowait()
            except trio.WouldBlock:
                return rpcs
            length, offset = decode_varint(frame)
            assert len(frame) == offset + length
            rpc = rpc_pb2.RPC()
            rpc.ParseFromString(frame[offset:])
            rpcs.append(rpc)

    def receive(self, name: str, frame: bytes) -> None:
        length, offset = decode_varint(frame)
        self.router.handle_rpc(name, frame[offset : offset + length], V12)


def _data(index: int) -> bytes:
    return codec.encode_gossip(sample_attestation(index, 1))


def _publish_frame(data: bytes, **fields: Any) -> bytes:
    rpc = rpc_pb2.RPC()
    rpc.publish.add(data=data, topicIDs=[TOPIC], **fields)
    body = rpc.SerializeToString()
    return encode_varint(len(body)) + body


def published(rpcs: list[Any]) -> list[Any]:
    return [message for rpc in rpcs for message in rpc.publish]


# ----------------------------------------------------------- anonymous messages


def test_published_messages_are_anonymous_and_carry_the_lean_id() -> None:
    rig = Rig()
    rig.add_peer("a")
    data = _data(1)
    message_id, sent = rig.router.publish(TOPIC, data)
    assert sent == 1
    assert message_id == codec.gossip_message_id(TOPIC, data)[0]
    [message] = published(rig.sent("a"))
    assert message.data == data
    assert list(message.topicIDs) == [TOPIC]
    for absent in ("from_id", "seqno", "signature", "key"):
        assert not message.HasField(absent)


def test_signed_or_attributed_messages_are_rejected_not_delivered() -> None:
    rig = Rig()
    rig.add_peer("a")
    rig.receive("a", _publish_frame(_data(1), seqno=b"\x00" * 8, from_id=b"x"))
    assert rig.delivered == []
    assert rig.router.statistics.signed_or_attributed == 1
    assert rig.router.statistics.rejected == 1


def test_many_distinct_anonymous_messages_are_all_delivered_and_cached() -> None:
    # Stock py-libp2p keys its seen cache and mcache on from+seqno: anonymous
    # messages collapse onto one key there and only the first survives.
    rig = Rig()
    rig.add_peer("a")
    for index in range(100):
        rig.receive("a", encode_rpc(publish=[(TOPIC, _data(index))]))
    assert len(rig.delivered) == 100
    assert len(rig.router.mcache) == 100
    assert rig.router.statistics.duplicates == 0


# -------------------------------------------------------------- message ids


def test_duplicates_are_detected_by_message_id_across_peers() -> None:
    rig = Rig()
    rig.add_peer("a")
    rig.add_peer("b")
    frame = encode_rpc(publish=[(TOPIC, _data(7))])
    rig.receive("a", frame)
    rig.receive("b", frame)
    rig.receive("a", frame)
    assert len(rig.delivered) == 1
    assert rig.router.statistics.duplicates == 2


def test_forwarding_goes_to_mesh_peers_except_the_source() -> None:
    rig = Rig()
    for name in ("a", "b", "c"):
        rig.add_peer(name)
    rig.add_peer("outside", in_mesh=False)
    data = _data(3)
    rig.receive("a", encode_rpc(publish=[(TOPIC, data)]))
    assert published(rig.sent("a")) == []
    assert [m.data for m in published(rig.sent("b"))] == [data]
    assert [m.data for m in published(rig.sent("c"))] == [data]
    assert published(rig.sent("outside")) == []


def test_rejected_messages_are_neither_forwarded_nor_cached() -> None:
    rig = Rig(verdict=Verdict.REJECT)
    rig.add_peer("a")
    rig.add_peer("b")
    rig.receive("a", encode_rpc(publish=[(TOPIC, _data(1))]))
    assert published(rig.sent("b")) == []
    assert len(rig.router.mcache) == 0
    assert rig.router.statistics.rejected == 1


def test_iwant_is_served_from_the_cache_by_lean_message_id() -> None:
    rig = Rig()
    rig.add_peer("a")
    data = _data(5)
    message_id, _ = rig.router.publish(TOPIC, data)
    rig.sent("a")
    rig.receive("a", encode_rpc(iwant=[message_id, b"\x00" * 20]))
    assert [m.data for m in published(rig.sent("a"))] == [data]
    assert rig.router.statistics.iwant_served == 1


def test_ihave_asks_only_for_unseen_ids() -> None:
    rig = Rig()
    rig.add_peer("a")
    seen_id, _ = rig.router.publish(TOPIC, _data(1))
    rig.sent("a")
    unseen = b"\x42" * 20
    rig.receive("a", encode_rpc(ihave=[(TOPIC, [seen_id, unseen])]))
    [rpc] = rig.sent("a")
    assert [list(iwant.messageIDs) for iwant in rpc.control.iwant] == [[unseen]]


def test_heartbeat_gossips_cached_ids_to_non_mesh_peers() -> None:
    rig = Rig(GossipParams(mesh_degree_low=1, mesh_degree=1))
    rig.add_peer("mesh")
    rig.add_peer("lazy", in_mesh=False)
    message_id, _ = rig.router.publish(TOPIC, _data(1))
    rig.sent("lazy")
    rig.router.heartbeat()
    ihaves = [ihave for rpc in rig.sent("lazy") for ihave in rpc.control.ihave]
    assert [list(ihave.messageIDs) for ihave in ihaves] == [[message_id]]


def test_idontwant_is_sent_for_large_messages_to_v12_peers_and_honoured() -> None:
    rig = Rig()
    rig.add_peer("source")
    rig.add_peer("modern")
    rig.add_peer("legacy", protocol="/meshsub/1.1.0")
    rig.add_peer("declined")
    big = random.Random(1).randbytes(2000)  # the router does not care what it is
    assert len(big) > rig.router.params.idontwant_size_threshold
    message_id = codec.gossip_message_id(TOPIC, big)[0]
    rig.receive("declined", encode_rpc(idontwant=[message_id]))
    rig.receive("source", encode_rpc(publish=[(TOPIC, big)]))
    modern = rig.sent("modern")
    assert [list(i.messageIDs) for rpc in modern for i in rpc.control.idontwant] == [[message_id]]
    assert all(not rpc.control.idontwant for rpc in rig.sent("legacy"))
    assert published(rig.sent("declined")) == []
    assert rig.router.statistics.idontwant_skips == 1


# ------------------------------------------------------------ no silent drops


def test_publish_without_subscribed_peers_reports_zero_and_counts() -> None:
    rig = Rig()
    _, sent = rig.router.publish(TOPIC, _data(1))
    assert sent == 0
    assert rig.router.statistics.publish_no_peers == 1


def test_full_outbound_queue_is_counted_and_reported() -> None:
    rig = Rig()
    rig.add_peer("slow", capacity=1)
    assert rig.router.publish(TOPIC, _data(1))[1] == 1
    assert rig.router.publish(TOPIC, _data(2))[1] == 0
    assert rig.router.statistics.queue_full_drops == 1


def test_honest_rate_is_not_throttled() -> None:
    # Stock py-libp2p throttles at 10 messages/s per topic by default.
    rig = Rig()
    rig.add_peer("a")
    for index in range(500):
        rig.receive("a", encode_rpc(publish=[(TOPIC, _data(index))]))
    assert len(rig.delivered) == 500


# ---------------------------------------------------------------- spam limits


def test_ihave_flood_is_bounded_per_heartbeat() -> None:
    rig = Rig(GossipParams(max_ihave_messages=2))
    rig.add_peer("spammer")
    for index in range(5):
        rig.receive("spammer", encode_rpc(ihave=[(TOPIC, [bytes([index]) * 20])]))
    assert rig.router.statistics.spam_ihave_dropped == 3
    assert rig.router.statistics.iwant_sent == 2
    rig.router.heartbeat()
    rig.receive("spammer", encode_rpc(ihave=[(TOPIC, [b"\x77" * 20])]))
    assert rig.router.statistics.iwant_sent == 3


def test_iwant_retransmissions_are_bounded() -> None:
    rig = Rig(GossipParams(gossip_retransmission=2))
    rig.add_peer("greedy")
    message_id, _ = rig.router.publish(TOPIC, _data(1))
    for _ in range(4):
        rig.receive("greedy", encode_rpc(iwant=[message_id]))
    assert rig.router.statistics.iwant_served == 2
    assert rig.router.statistics.spam_iwant_dropped == 2


def test_subscription_flood_is_bounded() -> None:
    rig = Rig(GossipParams(max_subscriptions_per_peer=3))
    rig.add_peer("a")
    rig.receive("a", encode_rpc(subscriptions=[(f"/t/{i}", True) for i in range(10)]))
    assert len(rig.router.peers["a"].topics) == 3  # TOPIC + 2 more
    assert rig.router.statistics.spam_subscriptions_dropped == 8


def test_graft_during_backoff_is_pruned() -> None:
    rig = Rig()
    rig.add_peer("a", in_mesh=False)
    rig.receive("a", encode_rpc(prune=[TOPIC], backoff=60))
    rig.receive("a", encode_rpc(graft=[TOPIC]))
    assert "a" not in rig.router.mesh[TOPIC]
    assert rig.router.statistics.graft_during_backoff == 1
    rig.now += 61
    rig.router.heartbeat()  # backoff expired: heartbeat may graft again
    assert "a" in rig.router.mesh[TOPIC]


def test_unknown_topic_and_malformed_rpc_are_counted() -> None:
    rig = Rig()
    rig.add_peer("a")
    rig.receive("a", encode_rpc(publish=[("/other/topic", b"x")]))
    rig.router.handle_rpc("a", b"\xff\xff\xff", V12)
    assert rig.router.statistics.unsubscribed_topic == 1
    assert rig.router.statistics.malformed_rpc == 1


# ---------------------------------------------------------------- mesh upkeep


def test_heartbeat_grafts_up_to_d_and_prunes_above_d_high() -> None:
    rig = Rig()
    for index in range(20):
        rig.add_peer(f"p{index}", in_mesh=False)
    rig.router.heartbeat()
    assert len(rig.router.mesh[TOPIC]) == 8
    rig.router.mesh[TOPIC].update(f"p{index}" for index in range(20))
    rig.router.heartbeat()
    assert len(rig.router.mesh[TOPIC]) == 8


def test_graft_for_unsubscribed_topic_is_ignored_and_counted() -> None:
    # gossipsub v1.1 spam hardening (and leanSpec's graft_ignore_unsubscribed vector):
    # no PRUNE reply, so GRAFTs for made-up topics cannot make us send anything.
    rig = Rig()
    rig.add_peer("a", in_mesh=False)
    rig.receive("a", encode_rpc(graft=["/not/ours"]))
    assert rig.sent("a") == []
    assert "/not/ours" not in rig.router.mesh
    assert rig.router.statistics.graft_unknown_topic == 1


def test_graft_at_d_high_is_pruned_with_backoff() -> None:
    # gossipsub v1.1 outbound quotas: at D_high a GRAFT is refused (leanSpec's
    # graft_reject_capacity vector); the refusal arms the backoff like any PRUNE.
    rig = Rig(GossipParams(mesh_degree=3, mesh_degree_low=2, mesh_degree_high=3))
    for name in ("a", "b", "c"):
        rig.add_peer(name)
    rig.add_peer("d", in_mesh=False)
    rig.receive("d", encode_rpc(graft=[TOPIC]))
    assert rig.router.mesh[TOPIC] == {"a", "b", "c"}
    [rpc] = rig.sent("d")
    assert [(p.topicID, p.backoff) for p in rpc.control.prune] == [(TOPIC, 60)]
    assert rig.router.statistics.graft_mesh_full == 1
    assert rig.router._backoff[("d", TOPIC)] == rig.now + 60


def test_repeated_graft_from_a_mesh_peer_at_d_high_is_not_refused() -> None:
    rig = Rig(GossipParams(mesh_degree=3, mesh_degree_low=2, mesh_degree_high=3))
    for name in ("a", "b", "c"):
        rig.add_peer(name)
    rig.receive("a", encode_rpc(graft=[TOPIC]))
    assert rig.router.mesh[TOPIC] == {"a", "b", "c"}
    assert rig.sent("a") == []
    assert rig.router.statistics.graft_mesh_full == 0


def test_prune_without_backoff_still_arms_the_default_backoff() -> None:
    # A PRUNE's backoff 0 reads as "unset" (go-libp2p does the same); leanSpec arms
    # none there, a choice its prune_zero_backoff vector does not record.
    rig = Rig()
    rig.add_peer("a")
    rig.receive("a", encode_rpc(prune=[TOPIC], backoff=0))
    assert "a" not in rig.router.mesh[TOPIC]
    assert rig.router._backoff[("a", TOPIC)] == rig.now + 60


def test_open_peer_queue_announces_subscriptions_and_keeps_the_protocol() -> None:
    rig = Rig()
    queue = rig.router.open_peer_queue("a", V12)
    assert rig.router.peers["a"].protocol == V12
    frame = queue.receive_nowait()
    length, offset = decode_varint(frame)
    rpc = rpc_pb2.RPC.FromString(frame[offset : offset + length])
    assert [(s.subscribe, s.topicid) for s in rpc.subscriptions] == [(True, TOPIC)]


def test_seen_cache_expires_after_its_ttl() -> None:
    seen = SeenCache(ttl=24.0)
    assert seen.add(b"a", now=0.0)
    assert not seen.add(b"a", now=1.0)
    seen.add(b"b", now=10.0)
    assert seen.expire(now=24.0) == 1
    assert b"a" not in seen and b"b" in seen


def test_message_cache_keeps_history_and_gossips_recent_windows() -> None:
    cache = MessageCache(history_length=3, history_gossip=2)
    cache.put(b"old", TOPIC, b"1")
    cache.shift()
    cache.put(b"mid", TOPIC, b"2")
    cache.shift()
    cache.put(b"new", "/other", b"3")
    assert cache.gossip_ids(TOPIC) == [b"mid"]
    assert cache.get(b"old") == (TOPIC, b"1")
    cache.shift()
    assert cache.get(b"old") is None
    assert cache.get(b"mid") is not None


# ------------------------------------------------------------------- framing


class _FakeStream:
    def __init__(self, chunks: list[bytes]) -> None:
        self._chunks = chunks
        self.reads = 0

    async def read(self, n: int) -> bytes:
        self.reads += 1
        return self._chunks.pop(0) if self._chunks else b""


def _read_frames(stream: _FakeStream, limit: int) -> list[bytes]:
    async def collect() -> list[bytes]:
        reader = FrameReader(stream, limit)
        frames = []
        while (frame := await reader.next_frame()) is not None:
            frames.append(frame)
        return frames

    return trio.run(collect)


def test_frames_up_to_the_12_mb_limit_are_read_whole() -> None:
    params = GossipParams()
    body = b"\x01" * (10 * 1024 * 1024 + 100)  # over py-libp2p's 1 MiB cap
    frame = encode_rpc(publish=[(TOPIC, body)])
    assert len(frame) < params.max_rpc_size
    chunks = [frame[i : i + 65536] for i in range(0, len(frame), 65536)]
    [read] = _read_frames(_FakeStream(chunks), params.max_rpc_size)
    assert len(read) == len(frame) - (len(frame) - len(read))
    rpc = rpc_pb2.RPC()
    rpc.ParseFromString(read)
    assert rpc.publish[0].data == body


def test_oversized_frame_is_refused_from_its_header() -> None:
    header = encode_rpc(publish=[(TOPIC, b"\x00" * 2000)])[:2]  # varint of a ~2 KB body
    stream = _FakeStream([header])
    with pytest.raises(FrameTooLarge):
        _read_frames(stream, limit=1000)
    assert stream.reads == 1  # refused before reading the body


# --------------------------------------------------- validation before forwarding


def _held_rig(**params: Any) -> tuple[Rig, bytes, bytes]:
    """A router that holds every message for a verdict; one message held from "a"."""
    rig = Rig(GossipParams(**params), verdict=Verdict.PENDING)
    for name in ("a", "b", "c"):
        rig.add_peer(name)
    data = _data(1)
    rig.receive("a", encode_rpc(publish=[(TOPIC, data)]))
    [(_, message_id, _)] = rig.delivered
    return rig, message_id, data


def test_a_held_message_is_forwarded_only_after_accept() -> None:
    rig, message_id, data = _held_rig()
    assert published(rig.sent("b")) == []
    assert len(rig.router.mcache) == 0
    assert rig.router.statistics.validations_pending == 1
    rig.router.report_validation(message_id, Verdict.ACCEPT)
    assert [m.data for m in published(rig.sent("b"))] == [data]
    assert [m.data for m in published(rig.sent("c"))] == [data]
    assert published(rig.sent("a")) == []  # never back to its source
    assert len(rig.router.mcache) == 1
    stats = rig.router.statistics
    assert (stats.validation_accepted, stats.validations_pending, stats.forwarded) == (1, 0, 2)


@pytest.mark.parametrize("verdict", [Verdict.REJECT, Verdict.IGNORE])
def test_a_held_message_the_loop_refuses_is_never_forwarded(verdict: Verdict) -> None:
    rig, message_id, _ = _held_rig()
    rig.router.report_validation(message_id, verdict)
    assert published(rig.sent("b")) == published(rig.sent("c")) == []
    assert len(rig.router.mcache) == 0
    stats = rig.router.statistics
    assert stats.forwarded == 0
    penalized = 1 if verdict is Verdict.REJECT else 0
    assert (stats.validation_rejected, stats.peers_penalized) == (penalized, penalized)
    assert stats.validation_ignored == 1 - penalized
    # a second verdict for the same message changes nothing but a counter
    rig.router.report_validation(message_id, Verdict.ACCEPT)
    assert published(rig.sent("b")) == []
    assert stats.validation_late == 1


def test_a_message_without_a_verdict_in_time_is_dropped_as_ignored() -> None:
    rig, message_id, _ = _held_rig(validation_timeout=2.0)
    rig.now += 1.9
    rig.router.heartbeat()
    assert rig.router.statistics.validations_pending == 1
    rig.now += 0.2
    rig.router.heartbeat()
    stats = rig.router.statistics
    assert (stats.validations_pending, stats.validation_timeouts) == (0, 1)
    rig.router.report_validation(message_id, Verdict.ACCEPT)
    assert published(rig.sent("b")) == []
    assert stats.validation_late == 1


def test_held_messages_are_bounded_and_the_overflow_is_not_read() -> None:
    rig, _, _ = _held_rig(max_pending_validations=3)
    for index in range(2, 7):
        rig.receive("a", encode_rpc(publish=[(TOPIC, _data(index))]))
    stats = rig.router.statistics
    assert len(rig.delivered) == 3  # the loop saw only what could be held
    assert (stats.validations_pending, stats.validation_overflow) == (3, 3)


def test_a_peer_that_sends_invalid_messages_is_graylisted_until_it_decays() -> None:
    rig = Rig(GossipParams(graylist_invalid_messages=3.0, invalid_decay=0.5), Verdict.PENDING)
    for name in ("spammer", "b"):
        rig.add_peer(name)
    for index in range(3):
        rig.receive("spammer", encode_rpc(publish=[(TOPIC, _data(index))]))
        rig.router.report_validation(rig.delivered[-1][1], Verdict.REJECT)
    stats = rig.router.statistics
    assert rig.router.graylisted("spammer")
    assert stats.peers_graylisted == 1
    assert "spammer" not in rig.router.mesh[TOPIC]
    # its messages are dropped unread, its GRAFT refused
    rig.receive("spammer", encode_rpc(publish=[(TOPIC, _data(10))]))
    assert len(rig.delivered) == 3
    assert stats.graylisted_dropped == 1
    rig.receive("spammer", encode_rpc(graft=[TOPIC]))
    assert "spammer" not in rig.router.mesh[TOPIC]
    assert stats.graft_graylisted == 1
    # the count halves every heartbeat: 3 -> 1.5, and the peer is heard again
    rig.router.heartbeat()
    assert not rig.router.graylisted("spammer")
    rig.receive("spammer", encode_rpc(publish=[(TOPIC, _data(11))]))
    assert len(rig.delivered) == 4


def test_a_decode_rejection_counts_against_the_peer_too() -> None:
    rig = Rig(verdict=Verdict.REJECT)
    rig.add_peer("a")
    rig.receive("a", encode_rpc(publish=[(TOPIC, _data(1))]))
    assert rig.router.statistics.peers_penalized == 1

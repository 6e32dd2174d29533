"""Two (or three) real drivers on loopback QUIC in one process: gossip, req/resp,
rejection of bad input on the driver thread, and the lifecycle contract."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from lean_p2p.containers import (
    BlocksByRangeRequest,
    BlocksByRootRequest,
    MultiMessageAggregate,
    SignedBlock,
)
from lean_p2p.driver import codec
from lean_p2p.driver.driver import DriverCrashed
from lean_p2p.driver.reqresp import ReqRespLimits
from lean_p2p.driver.samples import (
    sample_aggregate,
    sample_attestation,
    sample_block,
    sample_status,
)
from lean_p2p.net.commands import (
    Dial,
    GossipVerdict,
    Publish,
    ReportValidation,
    SendRequest,
    SendResponseChunk,
    SendResponseEnd,
    SendResponseError,
)
from lean_p2p.net.events import (
    DialFailed,
    DriverStopped,
    GossipAggregate,
    GossipAttestation,
    GossipBlock,
    InboundRequest,
    PeerConnected,
    PeerDisconnected,
    PublishFailed,
    RequestCompleted,
    RequestFailed,
    RequestFailure,
    ResponseChunk,
)
from lean_p2p.net.protocol import GossipTopic, ReqRespProtocol, ResultCode
from lean_p2p.wire.gossip import gossip_message_id
from lean_p2p.wire.keys import NodeKey
from lean_p2p.wire.varint import encode_varint
from tests.driver.harness import Node, connect, wait_until

pytestmark = pytest.mark.network

NodeFactory = Callable[..., Node]


@pytest.fixture
def make_node() -> Iterator[NodeFactory]:
    threads_before = set(threading.enumerate())
    nodes: list[Node] = []

    def factory(**config: Any) -> Node:
        node = Node(**config)
        nodes.append(node)
        return node.start()

    yield factory
    for node in nodes:
        node.driver.stop()
    for node in nodes:
        node.driver.join(20)
    # No thread left behind: not the drivers', nor any py-libp2p helper thread.
    wait_until(lambda: set(threading.enumerate()) <= threads_before, what="threads to end")


@pytest.fixture
def pair(make_node: NodeFactory) -> tuple[Node, Node]:
    a, b = make_node(), make_node()
    connect(a, b)
    return a, b


def _wire_id(topic: GossipTopic, message: codec.GossipMessage) -> bytes:
    return gossip_message_id(topic.topic_string(), codec.encode_gossip(message))


# ------------------------------------------------------------------- gossip


def test_gossip_both_ways_on_every_topic_with_lean_message_ids(pair: tuple[Node, Node]) -> None:
    a, b = pair
    attestation, block, aggregate = (
        sample_attestation(3, 2),
        sample_block(2, 5000),
        sample_aggregate(),
    )
    a.send(Publish(GossipTopic.ATTESTATION, attestation))
    a.send(Publish(GossipTopic.BLOCK, block))
    a.send(Publish(GossipTopic.AGGREGATION, aggregate))
    got_attestation = b.expect(GossipAttestation)
    got_block = b.expect(GossipBlock)
    got_aggregate = b.expect(GossipAggregate)
    assert got_attestation.attestation == attestation
    assert got_attestation.message_id == _wire_id(GossipTopic.ATTESTATION, attestation)
    assert got_attestation.peer_id == a.peer_id
    assert got_block.block == block
    assert got_block.message_id == _wire_id(GossipTopic.BLOCK, block)
    assert got_aggregate.aggregate == aggregate
    assert got_aggregate.message_id == _wire_id(GossipTopic.AGGREGATION, aggregate)

    reply = sample_attestation(4, 2)
    b.send(Publish(GossipTopic.ATTESTATION, reply))
    back = a.expect(GossipAttestation)
    assert (back.attestation, back.peer_id) == (reply, b.peer_id)
    assert back.message_id == _wire_id(GossipTopic.ATTESTATION, reply)


def test_burst_arrives_complete_in_order_without_duplicates(pair: tuple[Node, Node]) -> None:
    a, b = pair
    sent = [sample_attestation(index, 9) for index in range(300)]
    for attestation in sent:
        a.send(Publish(GossipTopic.ATTESTATION, attestation))
    received = [event.attestation for event in b.expect_many(GossipAttestation, len(sent))]
    assert received == sent
    assert not any(isinstance(event, PublishFailed) for event in a.drain())
    assert b.stats()["gossipsub"]["duplicates"] == 0


def test_a_node_that_validates_on_its_loop_forwards_only_what_the_loop_accepts(
    make_node: NodeFactory,
) -> None:
    # a -> b -> c in a line; b holds each message until its "loop" (this test) judges it.
    a, b, c = make_node(), make_node(validate_on_loop=True), make_node()
    connect(a, b)
    connect(c, b, mesh_peers=(1, 2))
    rejected, accepted = sample_attestation(1, 4), sample_attestation(2, 4)
    a.send(Publish(GossipTopic.ATTESTATION, rejected))
    a.send(Publish(GossipTopic.ATTESTATION, accepted))
    first = b.expect(GossipAttestation, lambda e: e.attestation == rejected)
    second = b.expect(GossipAttestation, lambda e: e.attestation == accepted)
    wait_until(lambda: b.stats()["gossipsub"]["validations_pending"] == 2, what="both held")
    b.send(ReportValidation(first.message_id, GossipVerdict.REJECT))
    b.send(ReportValidation(second.message_id, GossipVerdict.ACCEPT))
    # b forwards in order: had the rejected one gone out, c would have seen it first
    forwarded = c.expect(GossipAttestation)
    assert (forwarded.attestation, forwarded.peer_id) == (accepted, b.peer_id)
    assert not [e for e in c.drain() if isinstance(e, GossipAttestation)]
    gossip = b.stats()["gossipsub"]
    assert (gossip["forwarded"], gossip["validation_accepted"]) == (1, 1)
    assert (gossip["validation_rejected"], gossip["peers_penalized"]) == (1, 1)
    assert gossip["validations_pending"] == 0


def test_publish_without_peers_is_reported(make_node: NodeFactory) -> None:
    lonely = make_node()
    attestation = sample_attestation(1, 1)
    lonely.send(Publish(GossipTopic.ATTESTATION, attestation))
    failed = lonely.expect(PublishFailed)
    assert failed.topic is GossipTopic.ATTESTATION
    assert failed.message_id == _wire_id(GossipTopic.ATTESTATION, attestation)


def _publish_raw(node: Node, topic: GossipTopic, data: bytes) -> None:
    """Inject raw bytes through the node's router, bypassing its encoder (test only)."""
    token = node.driver._token
    assert token is not None
    token.run_sync_soon(node.driver._gossip.publish, topic.topic_string(), data)


def test_malformed_and_oversized_gossip_is_rejected_on_the_driver_thread(
    pair: tuple[Node, Node],
) -> None:
    a, b = pair
    _publish_raw(a, GossipTopic.ATTESTATION, b"\xff\xfe not snappy")
    _publish_raw(a, GossipTopic.ATTESTATION, encode_varint(11 * 1024 * 1024) + b"\x00" * 64)
    _publish_raw(a, GossipTopic.BLOCK, codec.encode_gossip(sample_attestation(1, 1)))
    valid = sample_attestation(2, 2)
    a.send(Publish(GossipTopic.ATTESTATION, valid))
    # The valid message was published last; gossip on one stream keeps order, so once
    # it arrives every bad message before it has been judged.
    assert b.expect(GossipAttestation).attestation == valid
    stats = b.stats()
    assert stats["driver"]["gossip_decode_rejected"] == 3
    assert stats["gossipsub"]["rejected"] == 3
    assert not any(isinstance(e, GossipAttestation | GossipBlock) for e in b.drain())


def test_oversized_rpc_frame_is_refused_and_counted(pair: tuple[Node, Node]) -> None:
    a, b = pair
    limit = b.driver.config.gossip.max_rpc_size
    # A frame header declaring more than the limit; the body never needs to arrive.
    from lean_p2p.driver.gossip_frames import encode_rpc

    frame = encode_rpc(publish=[(GossipTopic.BLOCK.topic_string(), b"\x00" * 16)])
    token = a.driver._token
    assert token is not None
    peer = next(iter(a.driver._gossip.peers.values()))
    token.run_sync_soon(peer.send.send_nowait, encode_varint(limit + 1) + frame)
    wait_until(lambda: b.stats()["gossipsub"]["oversized_rpc"] == 1, what="oversized rpc")


# ------------------------------------------------------------------ req/resp


def test_status_exchange_both_ways(pair: tuple[Node, Node]) -> None:
    a, b = pair
    mine, theirs = sample_status(3), sample_status(5)
    a.send(SendRequest(b.peer_id, 1, mine))
    inbound = b.expect(InboundRequest)
    assert (inbound.protocol, inbound.request, inbound.peer_id) == (
        ReqRespProtocol.STATUS,
        mine,
        a.peer_id,
    )
    b.send(SendResponseChunk(inbound.request_id, theirs))
    b.send(SendResponseEnd(inbound.request_id))
    assert a.expect(ResponseChunk).payload == theirs
    completed = a.expect(RequestCompleted)
    assert (completed.request_id, completed.chunks) == (1, 1)

    b.send(SendRequest(a.peer_id, 7, theirs))
    inbound = a.expect(InboundRequest)
    a.send(SendResponseChunk(inbound.request_id, mine))
    a.send(SendResponseEnd(inbound.request_id))
    assert b.expect(ResponseChunk).payload == mine
    assert b.expect(RequestCompleted).request_id == 7
    assert a.stats()["reqresp"]["outbound_in_flight"] == 0


def test_blocks_by_root_found_unknown_and_oversized(pair: tuple[Node, Node]) -> None:
    a, b = pair
    stored = {
        block.block.hash_tree_root(): block for block in (sample_block(s, 20_000) for s in (1, 2))
    }
    # A proof over its SSZ limit (ByteList[524288]): no valid encoding, cannot be sent.
    oversized = SignedBlock(sample_block(3).block, MultiMessageAggregate(bytes(600_000)))
    unknown_root = b"\x99" * 32
    roots = (*stored, unknown_root, oversized.block.hash_tree_root())
    a.send(SendRequest(b.peer_id, 11, BlocksByRootRequest(roots)))
    inbound = b.expect(InboundRequest)
    assert isinstance(inbound.request, BlocksByRootRequest)
    for root in inbound.request.roots:
        if root in stored:
            b.send(SendResponseChunk(inbound.request_id, stored[root]))
        elif root == oversized.block.hash_tree_root():
            b.send(SendResponseChunk(inbound.request_id, oversized))
        # unknown roots are skipped
    b.send(SendResponseEnd(inbound.request_id))
    chunks = [a.expect(ResponseChunk).payload for _ in stored]
    assert chunks == list(stored.values())
    completed = a.expect(RequestCompleted)
    assert completed.chunks == 2
    assert b.stats()["reqresp"]["response_chunks_oversized"] == 1


def test_blocks_by_range_and_empty_response(pair: tuple[Node, Node]) -> None:
    a, b = pair
    a.send(SendRequest(b.peer_id, 21, BlocksByRangeRequest(1, 4)))
    inbound = b.expect(InboundRequest)
    assert inbound.request == BlocksByRangeRequest(1, 4)
    blocks = [sample_block(slot) for slot in range(1, 5)]
    for block in blocks:
        b.send(SendResponseChunk(inbound.request_id, block))
    b.send(SendResponseEnd(inbound.request_id))
    assert [a.expect(ResponseChunk).payload for _ in blocks] == blocks
    assert a.expect(RequestCompleted).chunks == 4

    a.send(SendRequest(b.peer_id, 22, BlocksByRootRequest((b"\x01" * 32,))))
    b.send(SendResponseEnd(b.expect(InboundRequest).request_id))
    assert a.expect(RequestCompleted, lambda e: e.request_id == 22).chunks == 0


def test_error_response_is_a_failure_with_its_code(pair: tuple[Node, Node]) -> None:
    a, b = pair
    a.send(SendRequest(b.peer_id, 31, BlocksByRootRequest((b"\x01" * 32,))))
    inbound = b.expect(InboundRequest)
    b.send(SendResponseError(inbound.request_id, ResultCode.RESOURCE_UNAVAILABLE, "pruned"))
    failed = a.expect(RequestFailed)
    assert failed.failure is RequestFailure.ERROR_RESPONSE
    assert failed.result_code is ResultCode.RESOURCE_UNAVAILABLE
    assert failed.message == "pruned"


def test_response_handle_can_be_used_once(pair: tuple[Node, Node]) -> None:
    a, b = pair
    a.send(SendRequest(b.peer_id, 41, sample_status()))
    inbound = b.expect(InboundRequest)
    b.send(SendResponseChunk(inbound.request_id, sample_status(1)))
    b.send(SendResponseEnd(inbound.request_id))
    b.send(SendResponseChunk(inbound.request_id, sample_status(2)))
    b.send(SendResponseEnd(inbound.request_id))
    assert a.expect(RequestCompleted).chunks == 1
    wait_until(lambda: b.stats()["reqresp"]["response_commands_unknown_id"] == 2)


def test_timeouts_on_both_sides(make_node: NodeFactory) -> None:
    a = make_node(reqresp=ReqRespLimits(request_timeout=1.0))
    b = make_node(reqresp=ReqRespLimits(response_timeout=1.5))
    connect(a, b)
    a.send(SendRequest(b.peer_id, 51, sample_status()))
    b.expect(InboundRequest)  # the loop never answers
    failed = a.expect(RequestFailed)
    assert (failed.request_id, failed.failure) == (51, RequestFailure.TIMEOUT)
    wait_until(lambda: b.stats()["reqresp"]["responses_timed_out"] == 1, what="responder timeout")
    assert b.stats()["reqresp"]["inbound_in_flight"] == 0


def test_peer_that_goes_away_mid_response_fails_the_request(pair: tuple[Node, Node]) -> None:
    a, b = pair
    a.send(SendRequest(b.peer_id, 61, BlocksByRangeRequest(1, 3)))
    inbound = b.expect(InboundRequest)
    b.send(SendResponseChunk(inbound.request_id, sample_block(1)))
    assert a.expect(ResponseChunk).request_id == 61
    b.stop()  # the responder disappears before ending the response
    failed = a.expect(RequestFailed)
    assert failed.request_id == 61
    assert failed.failure is RequestFailure.STREAM_RESET
    a.expect(PeerDisconnected)


def test_request_to_unknown_peer_fails_at_once(make_node: NodeFactory) -> None:
    a = make_node()
    stranger = NodeKey.generate().peer_id
    a.send(SendRequest(stranger, 71, sample_status()))
    assert a.expect(RequestFailed).failure is RequestFailure.UNKNOWN_PEER


# ----------------------------------------------------------------- lifecycle


def test_stop_fails_every_request_in_flight(pair: tuple[Node, Node]) -> None:
    a, b = pair
    for request_id in (81, 82, 83):
        a.send(SendRequest(b.peer_id, request_id, sample_status()))
    for _ in range(3):
        b.expect(InboundRequest)
    a.stop()
    failures = {a.expect(RequestFailed).request_id: None for _ in range(3)}
    assert set(failures) == {81, 82, 83}
    stopped = a.expect(DriverStopped)
    assert stopped.error is None
    assert not a.driver.send(Publish(GossipTopic.BLOCK, sample_block()))  # refused after stop


def test_dial_failure_is_reported(make_node: NodeFactory) -> None:
    a = make_node(dial_timeout=2.0)
    nobody = NodeKey.generate().peer_id
    address = f"/ip4/127.0.0.1/udp/9/quic-v1/p2p/{nobody}"
    a.send(Dial(address))
    failed = a.expect(DialFailed)
    assert (failed.address, failed.peer_id) == (address, nobody)


def test_malformed_dial_address_is_reported(make_node: NodeFactory) -> None:
    a = make_node()
    a.send(Dial("/not/a/multiaddr"))
    assert a.expect(DialFailed).peer_id is None


def test_crash_surfaces_as_event_and_exception() -> None:
    node = Node(listen_address="/ip4/999.0.0.1/udp/0/quic-v1")
    node.driver.start()
    with pytest.raises(DriverCrashed):
        node.driver.wait_ready(20)
    stopped = node.expect(DriverStopped)
    assert stopped.reason == "crashed" and stopped.error
    with pytest.raises(DriverCrashed):
        node.driver.join(20)


def test_driver_exits_when_the_loop_side_goes_away(make_node: NodeFactory) -> None:
    gone = threading.Event()

    def emit(event: Any) -> None:
        if gone.is_set():
            raise RuntimeError("mailbox closed")

    a = make_node()
    b = Node(emit=emit)
    b.start()
    try:
        connect(a, b)
        gone.set()
        a.send(Publish(GossipTopic.ATTESTATION, sample_attestation()))  # b must emit: fails
        assert b.driver.join(20)
        assert b.stats()["driver"]["emit_failures"] >= 1
    finally:
        b.stop()


def _free_quic_address() -> str:
    """A loopback QUIC address on a UDP port the OS just had free (nobody listens)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"/ip4/127.0.0.1/udp/{port}/quic-v1"


def test_a_static_peer_whose_dial_failed_is_reached_once_it_listens(
    make_node: NodeFactory,
) -> None:
    # py-libp2p refuses, for a minute, to dial a peer whose addresses all failed: the
    # driver's redials must not be refused with it (a peer restarting takes seconds).
    key, listen = NodeKey.generate(), _free_quic_address()
    a = make_node(
        static_peers=(f"{listen}/p2p/{key.peer_id}",), redial_interval=0.5, dial_timeout=1.0
    )
    a.expect(DialFailed, lambda e: e.peer_id == key.peer_id)  # nobody listens there yet
    # As after a handshake that failed: py-libp2p marks the peer (a dial cancelled by
    # our timeout does not, so the test marks it as a failed handshake would).
    a.driver._host.get_network()._negative_peer_cache.mark_failed(key.peer_id)
    make_node(private_key=key.private_key, listen_address=listen)
    a.expect(PeerConnected, lambda e: e.peer_id == key.peer_id)


def test_static_peer_is_dialled_at_start_and_redialled_after_loss(
    make_node: NodeFactory,
) -> None:
    key, listen = NodeKey.generate(), _free_quic_address()
    address = f"{listen}/p2p/{key.peer_id}"
    first = make_node(private_key=key.private_key, listen_address=listen)
    a = make_node(static_peers=(address,), redial_interval=0.5)
    a.expect(PeerConnected, lambda e: e.peer_id == first.peer_id)
    first.stop()
    a.expect(PeerDisconnected, lambda e: e.peer_id == first.peer_id)
    make_node(private_key=key.private_key, listen_address=listen)  # back on the same address
    a.expect(PeerConnected, lambda e: e.peer_id == first.peer_id)

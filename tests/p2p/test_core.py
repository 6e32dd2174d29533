"""The sans-IO P2P core: feed events, assert whole command lists (h11 / aioquic style)."""

from __future__ import annotations

import logging

import pytest

from lean_p2p.containers import (
    BlocksByRangeRequest,
    BlocksByRootRequest,
    Checkpoint,
    Status,
)
from lean_p2p.net import (
    Dial,
    DialFailed,
    Direction,
    Disconnect,
    DriverStarted,
    DriverStopped,
    GossipAggregate,
    GossipAttestation,
    GossipBlock,
    GossipTopic,
    GossipVerdict,
    InboundRequest,
    PeerConnected,
    PeerDisconnected,
    Publish,
    PublishFailed,
    ReportValidation,
    ReqRespProtocol,
    RequestCompleted,
    RequestFailed,
    RequestFailure,
    ResponseChunk,
    ResultCode,
    SendRequest,
    SendResponseChunk,
    SendResponseEnd,
    SendResponseError,
)
from lean_p2p.p2p import backoff
from lean_p2p.p2p.chain import (
    AggregateReceived,
    AttestationReceived,
    BlockReceived,
    BlockSource,
    FetchAbandoned,
    FetchRoots,
    PublishAggregate,
    PublishAttestation,
    PublishBlock,
    PublishRejected,
    ReportGossip,
)
from lean_p2p.p2p.core import PUBLISH_FAILURE_LOG_INTERVAL, P2PCore, bootnode_peer_id
from tests.p2p.helpers import (
    ADDRESS_A,
    ADDRESS_B,
    CHAIN,
    PEER_A,
    PEER_B,
    aggregate,
    attestation,
    connect,
    foreign_block,
    make_core,
    only_request,
    peer_status,
    root,
    status_of,
)

BY_ROOT = ReqRespProtocol.BLOCKS_BY_ROOT
BY_RANGE = ReqRespProtocol.BLOCKS_BY_RANGE


def fetch(core: P2PCore, *indices: int, now: float = 0.0) -> SendRequest:
    """Ask for blocks of ``CHAIN`` by index; return the single request that went out."""
    core.handle_request(FetchRoots(tuple(root(i) for i in indices)), now)
    return only_request(core.drain_commands())


def assert_settled(core: P2PCore) -> None:
    stats = core.statistics()
    assert (stats.pending_roots, stats.ready_roots, stats.requests_in_flight) == (0, 0, 0)


# --- peers and status ------------------------------------------------------------------


@pytest.mark.parametrize("direction", [Direction.OUTBOUND, Direction.INBOUND])
def test_status_sent_on_first_connection_either_direction(direction: Direction) -> None:
    core, chain = make_core()
    core.handle_event(PeerConnected(PEER_A, direction, ADDRESS_A), 0.0)
    assert core.drain_commands() == [SendRequest(PEER_A, 1, status_of(chain))]


def test_second_connection_to_same_peer_sends_no_second_status() -> None:
    core, _ = make_core()
    connect(core)
    core.handle_event(PeerConnected(PEER_A, Direction.INBOUND, ADDRESS_A), 0.0)
    assert core.drain_commands() == []
    assert core.statistics().counters["duplicate_connections"] == 1


def test_inbound_status_answered_and_recorded() -> None:
    core, chain = make_core(blocks=3)
    connect(core)
    theirs = peer_status(head_slot=2, head_root=root(2))
    core.handle_event(InboundRequest(PEER_A, 77, ReqRespProtocol.STATUS, theirs), 0.0)
    assert core.drain_commands() == [
        SendResponseChunk(77, status_of(chain)),
        SendResponseEnd(77),
    ]


def test_peer_on_another_chain_disconnected_with_reason() -> None:
    core, _ = make_core()
    request_id = connect(core)
    other_genesis = Status(
        finalized=Checkpoint(root=b"\x99" * 32, slot=0), head=Checkpoint(root=b"\x98" * 32, slot=5)
    )
    core.handle_event(ResponseChunk(PEER_A, request_id, ReqRespProtocol.STATUS, other_genesis), 0)
    [command] = core.drain_commands()
    assert isinstance(command, Disconnect) and command.peer_id == PEER_A
    assert "conflicts" in command.reason
    stats = core.statistics()
    assert stats.peers == 0 and stats.requests_in_flight == 0
    assert stats.counters["peers_incompatible"] == 1


def test_status_with_head_before_finalized_disconnected() -> None:
    core, _ = make_core()
    request_id = connect(core)
    nonsense = Status(
        finalized=Checkpoint(root=root(5), slot=5), head=Checkpoint(root=root(3), slot=3)
    )
    core.handle_event(ResponseChunk(PEER_A, request_id, ReqRespProtocol.STATUS, nonsense), 0.0)
    [command] = core.drain_commands()
    assert isinstance(command, Disconnect) and "invalid status" in command.reason


def test_peer_table_full_refuses_with_reason() -> None:
    core, _ = make_core(max_peers=1)
    connect(core)
    core.handle_event(PeerConnected(PEER_B, Direction.INBOUND, ADDRESS_B), 0.0)
    assert core.drain_commands() == [Disconnect(PEER_B, "peer table full")]
    assert core.statistics().peers == 1
    assert core.statistics().counters["peers_refused_full"] == 1


def test_status_refreshed_after_interval_and_retried_after_failure() -> None:
    core, chain = make_core()
    connect(core, status=peer_status(head_slot=3, head_root=root(3)))
    refresh_at = backoff.STATUS_REFRESH_INTERVAL
    assert core.next_deadline() == refresh_at
    core.handle_timer(refresh_at)
    request = only_request(core.drain_commands())
    assert request.request == status_of(chain)
    core.handle_event(
        RequestFailed(PEER_A, request.request_id, ReqRespProtocol.STATUS, RequestFailure.TIMEOUT),
        refresh_at,
    )
    assert core.next_deadline() == refresh_at + backoff.retry_delay(1)


def test_peer_failing_status_repeatedly_is_dropped() -> None:
    core, _ = make_core()
    request_id = connect(core)
    now = 0.0
    for _ in range(backoff.FETCH_MAX_ATTEMPTS - 1):
        core.handle_event(
            RequestFailed(PEER_A, request_id, ReqRespProtocol.STATUS, RequestFailure.TIMEOUT), now
        )
        assert core.drain_commands() == []
        deadline = core.next_deadline()
        assert deadline is not None
        now = deadline
        core.handle_timer(now)
        request_id = only_request(core.drain_commands()).request_id
    core.handle_event(
        RequestFailed(PEER_A, request_id, ReqRespProtocol.STATUS, RequestFailure.TIMEOUT), now
    )
    assert core.drain_commands() == [Disconnect(PEER_A, "status handshake failed repeatedly")]
    assert core.statistics().peers == 0


# --- fetch by root ---------------------------------------------------------------------


def test_fetch_sends_one_request_and_delivers_blocks() -> None:
    core, _ = make_core(blocks=5)
    connect(core, status=peer_status(4, root(4)))
    request = fetch(core, 7, 8)
    assert request == SendRequest(PEER_A, 2, BlocksByRootRequest(roots=(root(7), root(8))))
    for index in (7, 8):
        core.handle_event(ResponseChunk(PEER_A, 2, BY_ROOT, CHAIN[index]), 1.0)
    core.handle_event(RequestCompleted(PEER_A, 2, BY_ROOT, 2), 1.0)
    assert core.drain_commands() == []
    assert core.drain_to_chain() == [
        BlockReceived(CHAIN[7], root(7), PEER_A, BlockSource.BY_ROOT),
        BlockReceived(CHAIN[8], root(8), PEER_A, BlockSource.BY_ROOT),
    ]
    assert_settled(core)


def test_fetch_deduplicated_per_root() -> None:
    core, _ = make_core(blocks=5)
    connect(core, status=peer_status(4, root(4)))
    fetch(core, 7)
    core.handle_request(FetchRoots((root(7),)), 0.0)
    assert core.drain_commands() == []
    assert core.statistics().pending_roots == 1
    assert core.statistics().counters["fetch_deduplicated"] == 1


def test_roots_the_store_has_are_not_fetched() -> None:
    core, _ = make_core(blocks=5)
    connect(core, status=peer_status(4, root(4)))
    core.handle_request(FetchRoots((root(2),)), 0.0)
    assert core.drain_commands() == []
    assert core.statistics().pending_roots == 0


def test_parked_pool_batch_of_1024_roots_goes_in_one_request() -> None:
    core, _ = make_core()
    connect(core, status=peer_status(9, root(9)))
    roots = tuple(bytes([i % 256, i // 256]) * 16 for i in range(backoff.MAX_ROOTS_PER_REQUEST))
    core.handle_request(FetchRoots(roots), 0.0)
    request = only_request(core.drain_commands())
    assert request.request == BlocksByRootRequest(roots=roots)


def test_more_than_1024_roots_split_and_sent_one_request_at_a_time_per_peer() -> None:
    core, _ = make_core()
    connect(core, status=peer_status(9, root(9)))
    roots = tuple(i.to_bytes(32, "big") for i in range(1500))
    core.handle_request(FetchRoots(roots), 0.0)
    first = only_request(core.drain_commands())
    assert first.request == BlocksByRootRequest(roots=roots[:1024])
    core.handle_event(RequestFailed(PEER_A, first.request_id, BY_ROOT, RequestFailure.TIMEOUT), 1)
    second = only_request(core.drain_commands())
    assert second.request == BlocksByRootRequest(roots=roots[1024:])


def test_fetch_waits_for_a_peer_then_goes_out() -> None:
    core, _ = make_core()
    core.handle_request(FetchRoots((root(20),)), 0.0)
    assert core.drain_commands() == []
    assert core.next_deadline() is None  # no busy wake-ups while nobody is connected
    core.handle_event(PeerConnected(PEER_A, Direction.OUTBOUND, ADDRESS_A), 1.0)
    commands = core.drain_commands()
    assert [type(c.request) for c in commands if isinstance(c, SendRequest)] == [
        Status,
        BlocksByRootRequest,
    ]


def test_empty_by_root_response_retried_with_backoff_and_no_stale_entry() -> None:
    core, _ = make_core()
    connect(core, status=peer_status(9, root(9)))
    first = fetch(core, 20, now=10.0)
    core.handle_event(RequestCompleted(PEER_A, first.request_id, BY_ROOT, 0), 10.0)
    assert core.drain_commands() == []
    stats = core.statistics()
    assert stats.requests_in_flight == 0  # the empty response left no correlation entry
    assert stats.pending_roots == 1 and stats.counters["by_root_nothing_useful"] == 1
    assert core.next_deadline() == 10.0 + backoff.retry_delay(1)
    core.handle_timer(10.0 + backoff.retry_delay(1))
    retry = only_request(core.drain_commands())
    assert retry.request == first.request and retry.request_id != first.request_id


def test_response_matching_no_requested_root_is_a_failure_and_not_imported() -> None:
    core, _ = make_core()
    connect(core, status=peer_status(9, root(9)))
    first = fetch(core, 20, now=0.0)
    core.handle_event(ResponseChunk(PEER_A, first.request_id, BY_ROOT, foreign_block()), 0.0)
    core.handle_event(ResponseChunk(PEER_A, first.request_id, BY_ROOT, CHAIN[21]), 0.0)
    core.handle_event(RequestCompleted(PEER_A, first.request_id, BY_ROOT, 2), 0.0)
    assert core.drain_to_chain() == []  # neither unrequested block reaches the chain
    assert core.statistics().counters["response_unrequested_blocks"] == 2
    assert core.statistics().requests_in_flight == 0
    # ... and the fetch does not stay pending forever: it is retried, and can succeed.
    deadline = core.next_deadline()
    assert deadline == backoff.retry_delay(1)
    core.handle_timer(deadline)
    retry = only_request(core.drain_commands())
    assert retry.request == BlocksByRootRequest(roots=(root(20),))
    core.handle_event(ResponseChunk(PEER_A, retry.request_id, BY_ROOT, CHAIN[20]), deadline)
    core.handle_event(RequestCompleted(PEER_A, retry.request_id, BY_ROOT, 1), deadline)
    assert [type(v) for v in core.drain_to_chain()] == [BlockReceived]
    assert_settled(core)


@pytest.mark.parametrize("code", [ResultCode.RESOURCE_UNAVAILABLE, ResultCode.SERVER_ERROR])
def test_error_result_code_is_a_failure_retried_and_entry_removed(code: ResultCode) -> None:
    core, _ = make_core()
    connect(core, status=peer_status(9, root(9)))
    first = fetch(core, 20)
    failure = RequestFailed(
        PEER_A, first.request_id, BY_ROOT, RequestFailure.ERROR_RESPONSE, code, "no"
    )
    core.handle_event(failure, 0.0)
    assert core.statistics().requests_in_flight == 0
    assert core.statistics().counters["failed_by_root"] == 1
    core.handle_timer(backoff.retry_delay(1))
    assert only_request(core.drain_commands()).request == first.request


def test_partial_response_settles_served_roots_and_retries_the_rest() -> None:
    core, _ = make_core()
    connect(core, status=peer_status(9, root(9)))
    first = fetch(core, 20, 21)
    core.handle_event(ResponseChunk(PEER_A, first.request_id, BY_ROOT, CHAIN[21]), 0.0)
    core.handle_event(RequestCompleted(PEER_A, first.request_id, BY_ROOT, 1), 0.0)
    assert core.statistics().pending_roots == 1
    core.handle_timer(backoff.retry_delay(1))
    assert only_request(core.drain_commands()).request == BlocksByRootRequest(roots=(root(20),))


def test_retry_goes_to_a_peer_that_has_not_failed_for_the_root_then_any() -> None:
    core, _ = make_core()
    connect(core, PEER_A, status=peer_status(9, root(9)))
    connect(core, PEER_B, status=peer_status(8, root(8)), address=ADDRESS_B)
    first = fetch(core, 20)
    assert first.peer_id == PEER_A  # the best peer: highest head
    core.handle_event(RequestCompleted(PEER_A, first.request_id, BY_ROOT, 0), 0.0)
    now = backoff.retry_delay(1)
    core.handle_timer(now)
    second = only_request(core.drain_commands())
    assert second.peer_id == PEER_B
    core.handle_event(RequestCompleted(PEER_B, second.request_id, BY_ROOT, 0), now)
    now += backoff.retry_delay(2)
    core.handle_timer(now)
    third = only_request(core.drain_commands())
    assert third.peer_id == PEER_A  # both failed: any peer, best first


def test_backoff_grows_is_capped_and_root_abandoned_after_max_attempts() -> None:
    core, _ = make_core()
    connect(core, status=peer_status(9, root(9)))
    request = fetch(core, 20)
    now = 0.0
    waits = []
    for _ in range(1, backoff.FETCH_MAX_ATTEMPTS):
        core.handle_event(RequestCompleted(PEER_A, request.request_id, BY_ROOT, 0), now)
        deadline = core.next_deadline()
        assert deadline is not None
        waits.append(deadline - now)
        now = deadline
        core.handle_timer(now)
        request = only_request(core.drain_commands())
    assert waits == [backoff.retry_delay(a) for a in range(1, backoff.FETCH_MAX_ATTEMPTS)]
    assert waits == sorted(waits) and max(waits) <= backoff.FETCH_BACKOFF_CAP
    core.handle_event(RequestCompleted(PEER_A, request.request_id, BY_ROOT, 0), now)
    assert core.drain_commands() == []
    [abandoned] = core.drain_to_chain()
    assert isinstance(abandoned, FetchAbandoned) and abandoned.roots == (root(20),)
    assert_settled(core)
    assert core.statistics().counters["roots_abandoned"] == 1


def test_silent_request_settled_by_core_deadline_and_late_chunks_ignored() -> None:
    core, _ = make_core()
    connect(core, status=peer_status(9, root(9)))
    request = fetch(core, 20)
    deadline = backoff.REQUEST_DEADLINE
    core.handle_timer(deadline)
    assert core.drain_commands() == []
    stats = core.statistics()
    assert stats.requests_in_flight == 0 and stats.counters["request_deadlines_expired"] == 1
    core.handle_event(ResponseChunk(PEER_A, request.request_id, BY_ROOT, CHAIN[20]), deadline)
    core.handle_event(RequestCompleted(PEER_A, request.request_id, BY_ROOT, 1), deadline)
    assert core.drain_to_chain() == []
    assert core.statistics().counters["stale_response_events"] == 2
    assert core.statistics().requests_in_flight == 0


def test_chunk_from_a_peer_other_than_the_one_asked_is_ignored() -> None:
    core, _ = make_core()
    connect(core, PEER_A, status=peer_status(9, root(9)))
    connect(core, PEER_B, status=peer_status(1, root(1)), address=ADDRESS_B)
    request = fetch(core, 20)
    core.handle_event(ResponseChunk(PEER_B, request.request_id, BY_ROOT, CHAIN[20]), 0.0)
    assert core.drain_to_chain() == []
    assert core.statistics().counters["response_from_wrong_peer"] == 1
    assert core.statistics().requests_in_flight == 1


def test_peer_disconnect_fails_its_requests_and_they_move_on() -> None:
    core, _ = make_core()
    connect(core, PEER_A, status=peer_status(9, root(9)))
    connect(core, PEER_B, status=peer_status(5, root(5)), address=ADDRESS_B)
    request = fetch(core, 20)
    core.handle_event(PeerDisconnected(PEER_A, "gone"), 1.0)
    assert core.statistics().requests_in_flight == 0
    core.handle_timer(1.0 + backoff.retry_delay(1))
    assert only_request(core.drain_commands()).peer_id == PEER_B
    assert request.peer_id == PEER_A


def test_gossip_block_settles_a_pending_fetch() -> None:
    core, _ = make_core()
    connect(core, status=peer_status(9, root(9)))
    request = fetch(core, 10)
    core.handle_event(GossipBlock(PEER_A, b"id", CHAIN[10]), 0.0)
    assert core.drain_to_chain() == [
        BlockReceived(CHAIN[10], root(10), PEER_A, BlockSource.GOSSIP, b"id")
    ]
    core.handle_event(RequestCompleted(PEER_A, request.request_id, BY_ROOT, 0), 0.0)
    assert core.drain_to_chain() == []  # not abandoned, not retried: it arrived
    assert core.next_deadline() == backoff.STATUS_REFRESH_INTERVAL
    assert_settled(core)


def test_request_maps_return_to_empty_once_all_requests_settle() -> None:
    """Every way a request can end, at once; afterwards every map is empty."""
    core, _ = make_core()
    connect(core, PEER_A, status=peer_status(9, root(9)))
    connect(core, PEER_B, status=peer_status(9, root(9)), address=ADDRESS_B)
    completed = fetch(core, 11)
    failed = fetch(core, 12)
    assert failed.peer_id == PEER_B
    core.handle_event(ResponseChunk(PEER_A, completed.request_id, BY_ROOT, CHAIN[11]), 0.0)
    core.handle_event(RequestCompleted(PEER_A, completed.request_id, BY_ROOT, 1), 0.0)
    core.handle_event(
        RequestFailed(PEER_B, failed.request_id, BY_ROOT, RequestFailure.STREAM_RESET), 0.0
    )
    now = backoff.retry_delay(1)
    core.handle_timer(now)
    silent = only_request(core.drain_commands())
    core.handle_timer(now + backoff.REQUEST_DEADLINE)
    late = now + backoff.REQUEST_DEADLINE + backoff.retry_delay(2)
    core.handle_timer(late)
    answered = only_request(core.drain_commands())
    assert silent.request == answered.request
    core.handle_event(ResponseChunk(answered.peer_id, answered.request_id, BY_ROOT, CHAIN[12]), 0)
    core.handle_event(RequestCompleted(answered.peer_id, answered.request_id, BY_ROOT, 1), late)
    assert_settled(core)
    assert core.statistics().range_sync_active is False


def test_fetch_table_bounded_overflow_counted_and_reported() -> None:
    core, _ = make_core(max_pending_roots=2)
    core.handle_request(FetchRoots((root(20), root(21), root(22), root(23))), 0.0)
    stats = core.statistics()
    assert stats.pending_roots == 2 and stats.counters["fetch_refused_full"] == 2
    assert core.drain_to_chain() == [FetchAbandoned((root(22), root(23)), "fetch table full")]


def test_requests_in_flight_bounded() -> None:
    core, _ = make_core(max_requests_in_flight=2)
    connect(core, PEER_A, status=peer_status(9, root(9)))
    connect(core, PEER_B, status=peer_status(9, root(9)), address=ADDRESS_B)
    core.handle_request(FetchRoots((root(20),)), 0.0)
    core.handle_request(FetchRoots((root(21),)), 0.0)
    core.handle_request(FetchRoots((root(22),)), 0.0)
    assert len(core.drain_commands()) == 2
    assert core.statistics().requests_in_flight == 2
    assert core.statistics().ready_roots == 1
    # The handshake with a new peer is not held back by the block-request bound.
    core.handle_event(PeerConnected("16Uiu2peerC", Direction.INBOUND, "/p2p/16Uiu2peerC"), 0.0)
    [status_request] = core.drain_commands()
    assert isinstance(status_request, SendRequest) and isinstance(status_request.request, Status)
    core.check_invariants()


# --- range sync ------------------------------------------------------------------------


def test_peer_ahead_triggers_range_sync_in_batches_of_1024() -> None:
    core, _ = make_core(blocks=3)  # head slot 2
    request_id = connect(core)
    status = peer_status(2500)
    core.handle_event(ResponseChunk(PEER_A, request_id, ReqRespProtocol.STATUS, status), 0.0)
    batches = []
    for _ in range(3):
        request = only_request(core.drain_commands())
        assert isinstance(request.request, BlocksByRangeRequest)
        batches.append((request.request.start_slot, request.request.count))
        # A peer with no blocks in these slots answers with nothing, cleanly.
        core.handle_event(RequestCompleted(PEER_A, request.request_id, BY_RANGE, 0), 0.0)
    assert batches == [(3, 1024), (1027, 1024), (2051, 450)]
    assert core.drain_commands() == []
    assert core.statistics().range_sync_active is False
    assert core.statistics().counters["range_syncs_completed"] == 1


def test_a_gossip_block_past_a_stale_status_starts_range_sync() -> None:
    # leanSpec's node announces its start-up Status for ever: here, genesis. The block
    # it gossips at slot 12 says it holds more, and our head (slot 2) misses its parent.
    core, _ = make_core(blocks=3)
    connect(core, status=peer_status(0, root(0)))
    assert core.drain_commands() == []
    core.handle_event(GossipBlock(PEER_A, b"id", CHAIN[12]), 0.0)
    request = only_request(core.drain_commands())
    assert request.peer_id == PEER_A
    assert request.request == BlocksByRangeRequest(start_slot=3, count=10)
    assert core.statistics().counters["range_syncs_started"] == 1


def test_a_gossip_block_on_a_known_parent_starts_no_range_sync() -> None:
    core, _ = make_core(blocks=3)
    connect(core, status=peer_status(0, root(0)))
    core.handle_event(GossipBlock(PEER_A, b"id", CHAIN[3]), 0.0)
    assert core.drain_commands() == []
    assert core.statistics().range_sync_active is False


def test_range_blocks_delivered_in_order_and_resume_after_break() -> None:
    core, _ = make_core(blocks=3)
    request_id = connect(core)
    core.handle_event(
        ResponseChunk(PEER_A, request_id, ReqRespProtocol.STATUS, peer_status(30, root(30))), 0
    )
    request = only_request(core.drain_commands())
    assert request.request == BlocksByRangeRequest(start_slot=3, count=28)
    for index in range(3, 10):
        core.handle_event(ResponseChunk(PEER_A, request.request_id, BY_RANGE, CHAIN[index]), 0)
    core.handle_event(
        RequestFailed(PEER_A, request.request_id, BY_RANGE, RequestFailure.STREAM_RESET), 0
    )
    delivered = core.drain_to_chain()
    assert [v.root for v in delivered if isinstance(v, BlockReceived)] == [
        root(i) for i in range(3, 10)
    ]
    resumed = only_request(core.drain_commands())
    assert resumed.request == BlocksByRangeRequest(start_slot=10, count=21)


def test_range_chunk_far_ahead_or_unlinked_is_rejected_and_cannot_skip_slots() -> None:
    core, _ = make_core(blocks=3)
    request_id = connect(core)
    core.handle_event(
        ResponseChunk(PEER_A, request_id, ReqRespProtocol.STATUS, peer_status(39, root(39))), 0
    )
    request = only_request(core.drain_commands())
    for block in (CHAIN[30], foreign_block(), CHAIN[3]):
        core.handle_event(ResponseChunk(PEER_A, request.request_id, BY_RANGE, block), 0.0)
    core.handle_event(RequestCompleted(PEER_A, request.request_id, BY_RANGE, 3), 0.0)
    assert [v.root for v in core.drain_to_chain() if isinstance(v, BlockReceived)] == [root(3)]
    assert core.statistics().counters["response_unrequested_blocks"] == 2
    assert only_request(core.drain_commands()).request == BlocksByRangeRequest(4, 36)


def test_range_batch_that_brings_nothing_backs_off() -> None:
    core, _ = make_core(blocks=3)
    request_id = connect(core)
    core.handle_event(
        ResponseChunk(PEER_A, request_id, ReqRespProtocol.STATUS, peer_status(30, root(30))), 0
    )
    request = only_request(core.drain_commands())
    core.handle_event(
        RequestFailed(PEER_A, request.request_id, BY_RANGE, RequestFailure.TIMEOUT), 5.0
    )
    assert core.drain_commands() == []
    assert core.next_deadline() == 5.0 + backoff.retry_delay(1)
    core.handle_timer(5.0 + backoff.retry_delay(1))
    assert only_request(core.drain_commands()).request == request.request


# --- bootnodes -------------------------------------------------------------------------


def test_bootnode_peer_id_parsed_from_multiaddr() -> None:
    assert bootnode_peer_id(ADDRESS_A) == PEER_A
    assert bootnode_peer_id("/ip4/1.2.3.4/udp/9000/quic-v1") is None


def test_bootnodes_dialled_when_driver_starts() -> None:
    core, _ = make_core(bootnodes=(ADDRESS_A, ADDRESS_B))
    core.handle_event(DriverStarted("16Uiu2self", ("/ip4/0.0.0.0/udp/9000/quic-v1",)), 0.0)
    assert core.drain_commands() == [Dial(ADDRESS_A), Dial(ADDRESS_B)]
    core.start(1.0)  # idempotent
    assert core.drain_commands() == []


def test_bootnode_redialled_at_fixed_interval_after_disconnect() -> None:
    core, _ = make_core(bootnodes=(ADDRESS_A,))
    connect(core, status=peer_status(9, root(9)))
    core.handle_event(PeerDisconnected(PEER_A, "remote closed"), 100.0)
    assert core.drain_commands() == []
    assert core.next_deadline() == 100.0 + backoff.BOOTNODE_REDIAL_INTERVAL
    core.handle_timer(100.0 + backoff.BOOTNODE_REDIAL_INTERVAL)
    assert core.drain_commands() == [Dial(ADDRESS_A)]
    # Fixed interval, and only in answer to a failure event: nothing more by itself.
    assert core.next_deadline() is None


def test_bootnode_redialled_after_dial_failure() -> None:
    core, _ = make_core(bootnodes=(ADDRESS_A,))
    core.start(0.0)
    assert core.drain_commands() == [Dial(ADDRESS_A)]
    core.handle_event(DialFailed(ADDRESS_A, PEER_A, "connection refused"), 1.0)
    core.handle_timer(1.0 + backoff.BOOTNODE_REDIAL_INTERVAL)
    assert core.drain_commands() == [Dial(ADDRESS_A)]


def test_redial_cancelled_when_bootnode_reconnects_and_others_not_redialled() -> None:
    core, _ = make_core(bootnodes=(ADDRESS_A,))
    core.handle_event(DialFailed(ADDRESS_A, PEER_A, "timeout"), 0.0)
    connect(core, PEER_A, now=1.0)
    connect(core, PEER_B, now=1.0, address=ADDRESS_B)
    core.handle_event(PeerDisconnected(PEER_B, "bye"), 2.0)
    core.handle_timer(1000.0)
    assert [c for c in core.drain_commands() if isinstance(c, Dial)] == []


def test_driver_gone_stops_core_and_nothing_reschedules() -> None:
    core, _ = make_core(bootnodes=(ADDRESS_A,))
    connect(core, status=peer_status(9, root(9)))
    fetch(core, 20)
    core.handle_event(PeerDisconnected(PEER_A, "driver closing"), 1.0)
    core.handle_event(DriverStopped("command channel closed"), 1.0)
    assert core.stopped_reason == "driver stopped (command channel closed)"
    assert core.next_deadline() is None
    [abandoned] = core.drain_to_chain()
    assert isinstance(abandoned, FetchAbandoned) and abandoned.roots == (root(20),)
    # Failure events that would normally schedule a redial change nothing now.
    core.handle_event(DialFailed(ADDRESS_A, PEER_A, "driver gone"), 2.0)
    core.handle_timer(1000.0)
    core.handle_request(FetchRoots((root(21),)), 1000.0)
    assert core.drain_commands() == []
    assert core.next_deadline() is None
    assert core.statistics().counters["inputs_after_stop"] == 2


def test_driver_crash_reason_kept() -> None:
    core, _ = make_core()
    core.handle_event(DriverStopped("crashed", "RuntimeError: boom"), 0.0)
    assert core.stopped_reason == "driver stopped (crashed): RuntimeError: boom"


# --- publishing, gossip, serving -------------------------------------------------------


def test_publish_requests_become_publish_commands() -> None:
    core, _ = make_core()
    core.handle_request(PublishBlock(CHAIN[5]), 0.0)
    core.handle_request(PublishAttestation(attestation()), 0.0)
    core.handle_request(PublishAggregate(aggregate()), 0.0)
    assert core.drain_commands() == [
        Publish(GossipTopic.BLOCK, CHAIN[5]),
        Publish(GossipTopic.ATTESTATION, attestation()),
        Publish(GossipTopic.AGGREGATION, aggregate()),
    ]


def test_gossip_verdicts_go_to_the_driver_in_order_and_are_counted() -> None:
    core, _ = make_core()
    core.handle_request(ReportGossip(b"m1", GossipVerdict.ACCEPT), 0.0)
    core.handle_request(ReportGossip(b"m2", GossipVerdict.REJECT), 0.0)
    core.handle_request(ReportGossip(b"m3", GossipVerdict.IGNORE), 0.0)
    assert core.drain_commands() == [
        ReportValidation(b"m1", GossipVerdict.ACCEPT),
        ReportValidation(b"m2", GossipVerdict.REJECT),
        ReportValidation(b"m3", GossipVerdict.IGNORE),
    ]
    counters = core.statistics().counters
    assert [counters[f"gossip_verdicts_{v}"] for v in ("accept", "reject", "ignore")] == [1, 1, 1]


def test_publish_failure_counted_and_reported_to_chain() -> None:
    core, _ = make_core()
    core.handle_event(PublishFailed(GossipTopic.BLOCK, b"mid", "no peers"), 0.0)
    core.handle_event(PublishFailed(GossipTopic.BLOCK, b"mid2", "no peers"), 0.0)
    assert core.drain_to_chain() == [
        PublishRejected(GossipTopic.BLOCK, b"mid", "no peers"),
        PublishRejected(GossipTopic.BLOCK, b"mid2", "no peers"),
    ]
    assert core.statistics().counters["publish_failed_block"] == 2


def test_repeated_publish_failures_are_all_counted_but_logged_once_per_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    core, _ = make_core()
    interval = PUBLISH_FAILURE_LOG_INTERVAL
    with caplog.at_level(logging.WARNING, logger="lean_p2p.p2p"):
        for step in range(5):
            core.handle_event(PublishFailed(GossipTopic.BLOCK, b"m", "no peers"), float(step))
        core.handle_event(PublishFailed(GossipTopic.BLOCK, b"m", "other reason"), 5.0)
        core.handle_event(PublishFailed(GossipTopic.BLOCK, b"m", "no peers"), interval + 1.0)
    warnings = [r for r in caplog.records if r.getMessage() == "publish failed"]
    assert [(r.reason, r.not_logged_since_last) for r in warnings] == [  # type: ignore[attr-defined]
        ("no peers", 0),
        ("other reason", 0),
        ("no peers", 4),
    ]
    assert core.statistics().counters["publish_failed_block"] == 7
    assert len(core.drain_to_chain()) == 7  # every failure still reaches the chain
    # a lone node is told why: it has no peers
    assert warnings[0].connected_peers == 0  # type: ignore[attr-defined]
    assert "no peer is connected" in warnings[0].hint  # type: ignore[attr-defined]


def test_gossip_attestations_and_aggregates_go_to_the_chain() -> None:
    core, _ = make_core()
    core.handle_event(GossipAttestation(PEER_A, b"m1", attestation()), 0.0)
    core.handle_event(GossipAggregate(PEER_A, b"m2", aggregate()), 0.0)
    assert core.drain_to_chain() == [
        AttestationReceived(attestation(), PEER_A, b"m1"),
        AggregateReceived(aggregate(), PEER_A, b"m2"),
    ]


def test_serve_blocks_by_root_skips_unknown_roots() -> None:
    core, _ = make_core(blocks=10)
    request = BlocksByRootRequest(roots=(root(3), b"\x42" * 32, root(1)))
    core.handle_event(InboundRequest(PEER_A, 9, BY_ROOT, request), 0.0)
    assert core.drain_commands() == [
        SendResponseChunk(9, CHAIN[3]),
        SendResponseChunk(9, CHAIN[1]),
        SendResponseEnd(9),
    ]


def test_serve_blocks_by_range_from_the_store() -> None:
    core, _ = make_core(blocks=10)
    request = BlocksByRangeRequest(start_slot=7, count=5)
    core.handle_event(InboundRequest(PEER_A, 4, BY_RANGE, request), 0.0)
    assert core.drain_commands() == [
        SendResponseChunk(4, CHAIN[7]),
        SendResponseChunk(4, CHAIN[8]),
        SendResponseChunk(4, CHAIN[9]),
        SendResponseEnd(4),
    ]


@pytest.mark.parametrize("count", [0, backoff.MAX_BLOCKS_PER_REQUEST + 1])
def test_serve_range_with_bad_count_refused(count: int) -> None:
    core, _ = make_core()
    request = BlocksByRangeRequest(start_slot=1, count=count)
    core.handle_event(InboundRequest(PEER_A, 4, BY_RANGE, request), 0.0)
    [error] = core.drain_commands()
    assert isinstance(error, SendResponseError)
    assert (error.request_id, error.result_code) == (4, ResultCode.INVALID_REQUEST)
    assert core.statistics().counters["inbound_requests_refused"] == 1


def test_serve_request_whose_type_does_not_match_protocol_refused() -> None:
    core, _ = make_core()
    request = BlocksByRangeRequest(start_slot=1, count=1)
    core.handle_event(InboundRequest(PEER_A, 5, BY_ROOT, request), 0.0)
    [error] = core.drain_commands()
    assert isinstance(error, SendResponseError) and error.result_code is ResultCode.INVALID_REQUEST


def test_status_response_with_wrong_payload_counted() -> None:
    core, _ = make_core()
    request_id = connect(core)
    core.handle_event(ResponseChunk(PEER_A, request_id, ReqRespProtocol.STATUS, CHAIN[1]), 0.0)
    core.handle_event(RequestCompleted(PEER_A, request_id, ReqRespProtocol.STATUS, 1), 0.0)
    counters = core.statistics().counters
    assert counters["status_response_invalid"] == 1
    assert counters["status_response_missing"] == 1


# --- logs ------------------------------------------------------------------------------


def test_logs_are_structured_with_peer_root_and_request_id(
    caplog: pytest.LogCaptureFixture,
) -> None:
    core, _ = make_core()
    connect(core, status=peer_status(9, root(9)))
    with caplog.at_level(logging.DEBUG, logger="lean_p2p.p2p"):
        request = fetch(core, 20)
        core.handle_event(
            RequestFailed(PEER_A, request.request_id, BY_ROOT, RequestFailure.TIMEOUT), 0.0
        )
    requested = next(r for r in caplog.records if r.getMessage() == "blocks by root requested")
    assert requested.__dict__["peer_id"] == PEER_A
    assert requested.__dict__["request_id"] == request.request_id
    assert requested.__dict__["root"] == root(20).hex()
    failed = next(r for r in caplog.records if r.getMessage() == "request failed")
    assert failed.__dict__["p2p_fields"] == {
        "peer_id": PEER_A,
        "request_id": request.request_id,
        "kind": "by_root",
        "reason": "timeout",
    }


def test_roots_wanted_during_a_range_batch_go_together_after_it() -> None:
    core, _ = make_core(blocks=3)
    request_id = connect(core)
    core.handle_event(
        ResponseChunk(PEER_A, request_id, ReqRespProtocol.STATUS, peer_status(30, root(30))), 0
    )
    batch = only_request(core.drain_commands())
    assert isinstance(batch.request, BlocksByRangeRequest)
    # The chain misses parents while the batch streams in: nothing goes out yet ...
    core.handle_request(FetchRoots((root(31),)), 0.0)
    core.handle_request(FetchRoots((root(32),)), 0.0)
    assert core.drain_commands() == []
    # ... and once the batch settles, one request carries them all.
    core.handle_event(RequestCompleted(PEER_A, batch.request_id, BY_RANGE, 0), 1.0)
    request = only_request(core.drain_commands())
    assert request.request == BlocksByRootRequest(roots=(root(31), root(32)))
    assert core.statistics().range_sync_active is False


def test_range_sync_uses_best_peer_and_retries_on_another_after_failure() -> None:
    core, _ = make_core(blocks=3)
    connect(core, PEER_A, status=peer_status(20, root(20)))
    first = only_request(core.drain_commands())
    assert first.peer_id == PEER_A
    connect(core, PEER_B, status=peer_status(30, root(30)), address=ADDRESS_B)
    assert core.drain_commands() == []  # one batch at a time; the target grows to 30
    core.handle_event(
        RequestFailed(PEER_A, first.request_id, BY_RANGE, RequestFailure.STREAM_RESET), 0.0
    )
    core.handle_timer(backoff.retry_delay(1))
    retry = only_request(core.drain_commands())
    assert retry.peer_id == PEER_B
    assert retry.request == BlocksByRangeRequest(start_slot=3, count=28)


def test_a_driver_that_stops_under_the_core_is_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    core, _ = make_core()
    with caplog.at_level(logging.INFO, logger="lean_p2p.p2p"):
        core.handle_event(DriverStopped("crashed", "boom"), 0.0)
        core.stop("again", orderly=True)  # a second stop changes nothing
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [("WARNING", "p2p stopped")]
    orderly, _ = make_core()
    with caplog.at_level(logging.INFO, logger="lean_p2p.p2p"):
        orderly.stop("node stopping", orderly=True)
    assert caplog.records[-1].levelname == "INFO"

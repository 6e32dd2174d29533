"""Random event sequences against the core: it never raises, its invariants always hold,
blocks it hands over are what was asked for, and its maps empty once peers are gone."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from lean_p2p.containers import BlocksByRangeRequest, BlocksByRootRequest
from lean_p2p.net import (
    DialFailed,
    Direction,
    GossipBlock,
    InboundRequest,
    PeerConnected,
    PeerDisconnected,
    ReqRespProtocol,
    RequestCompleted,
    RequestFailed,
    RequestFailure,
    ResponseChunk,
    ResultCode,
    SendRequest,
)
from lean_p2p.net.events import Event
from lean_p2p.p2p.chain import BlockReceived, BlockSource, FetchRoots
from lean_p2p.p2p.core import P2PCore, block_root
from lean_p2p.tools.memory_chain import MemoryChain
from tests.p2p.helpers import CHAIN, ROOTS, foreign_block, peer_status

PEERS = ("16Uiu2p0", "16Uiu2p1", "16Uiu2p2")
ADDRESSES = tuple(f"/ip4/127.0.0.{i + 1}/udp/9000/quic-v1/p2p/{p}" for i, p in enumerate(PEERS))
BLOCKS = (*CHAIN, foreign_block())
PROTOCOLS = tuple(ReqRespProtocol)


@dataclass(frozen=True)
class Advance:
    seconds: float


@dataclass(frozen=True)
class Fetch:
    indices: tuple[int, ...]


peer_ids = st.sampled_from(PEERS)
request_ids = st.integers(min_value=1, max_value=40)
protocols = st.sampled_from(PROTOCOLS)
blocks = st.sampled_from(BLOCKS)

events = st.one_of(
    st.builds(
        PeerConnected,
        peer_ids,
        st.sampled_from(tuple(Direction)),
        st.sampled_from(ADDRESSES),
    ),
    st.builds(PeerDisconnected, peer_ids, st.just("bye")),
    st.builds(DialFailed, st.sampled_from(ADDRESSES), peer_ids, st.just("refused")),
    st.builds(ResponseChunk, peer_ids, request_ids, protocols, blocks),
    st.builds(
        ResponseChunk,
        peer_ids,
        request_ids,
        st.just(ReqRespProtocol.STATUS),
        st.builds(peer_status, st.integers(min_value=0, max_value=60)),
    ),
    st.builds(
        RequestCompleted, peer_ids, request_ids, protocols, st.integers(min_value=0, max_value=3)
    ),
    st.builds(
        RequestFailed,
        peer_ids,
        request_ids,
        protocols,
        st.sampled_from(tuple(RequestFailure)),
        st.sampled_from((None, *ResultCode)),
    ),
    st.builds(GossipBlock, peer_ids, st.just(b"id"), blocks),
    st.builds(
        InboundRequest,
        peer_ids,
        request_ids,
        protocols,
        st.one_of(
            st.builds(peer_status, st.integers(min_value=0, max_value=60)),
            st.builds(
                BlocksByRootRequest,
                st.lists(st.sampled_from(ROOTS), max_size=3).map(tuple),
            ),
            st.builds(
                BlocksByRangeRequest,
                st.integers(min_value=0, max_value=50),
                st.integers(min_value=0, max_value=1030),
            ),
        ),
    ),
)
actions = st.one_of(
    events,
    st.builds(Advance, st.floats(min_value=0.0, max_value=30.0)),
    st.builds(Fetch, st.lists(st.integers(min_value=5, max_value=39), max_size=4).map(tuple)),
)


def check_deliveries(core: P2PCore, asked: dict[int, SendRequest]) -> None:
    for value in core.drain_to_chain():
        if isinstance(value, BlockReceived):
            assert value.root == block_root(value.block)
            if value.source is BlockSource.BY_ROOT:
                # Only blocks that some BlocksByRoot request of ours asked for.
                assert any(
                    isinstance(r.request, BlocksByRootRequest) and value.root in r.request.roots
                    for r in asked.values()
                )
    for command in core.drain_commands():
        if isinstance(command, SendRequest):
            assert command.request_id not in asked  # request ids are never reused
            asked[command.request_id] = command


@settings(max_examples=150, deadline=None)
@given(st.lists(actions, max_size=60))
def test_random_inputs_keep_invariants_and_settle(script: list[object]) -> None:
    core = P2PCore(MemoryChain(CHAIN[:5]), bootnodes=ADDRESSES[:1], max_requests_in_flight=4)
    asked: dict[int, SendRequest] = {}
    now = 0.0
    for action in script:
        match action:
            case Advance(seconds=seconds):
                now += seconds
                core.handle_timer(now)
            case Fetch(indices=indices):
                core.handle_request(FetchRoots(tuple(ROOTS[i] for i in indices)), now)
            case _:
                event: Event = action  # type: ignore[assignment]
                core.handle_event(event, now)
        core.check_invariants()
        check_deliveries(core, asked)
    # Every peer leaves: every request settles and the request map is empty.
    for peer_id in PEERS:
        core.handle_event(PeerDisconnected(peer_id, "end"), now)
    core.check_invariants()
    check_deliveries(core, asked)
    assert core.statistics().requests_in_flight == 0

"""Shared builders for the P2P core tests: chains, cores already connected to peers."""

from __future__ import annotations

from lean_p2p.containers import (
    AttestationData,
    Bitlist,
    Checkpoint,
    SignedAggregatedAttestation,
    SignedAttestation,
    SignedBlock,
    SingleMessageAggregate,
    Status,
)
from lean_p2p.net import Direction, PeerConnected, ReqRespProtocol, RequestCompleted, SendRequest
from lean_p2p.net.commands import Command
from lean_p2p.p2p.core import P2PCore, block_root
from lean_p2p.tools.memory_chain import MemoryChain, build_chain

PEER_A = "16Uiu2peerA"
PEER_B = "16Uiu2peerB"
ADDRESS_A = f"/ip4/127.0.0.1/udp/9000/quic-v1/p2p/{PEER_A}"
ADDRESS_B = f"/ip4/127.0.0.2/udp/9000/quic-v1/p2p/{PEER_B}"

#: One chain shared by the tests (building it hashes every block once).
CHAIN = build_chain(40)
ROOTS = [block_root(block) for block in CHAIN]


def root(index: int) -> bytes:
    return ROOTS[index]


def status_of(chain: MemoryChain) -> Status:
    return Status(finalized=chain.finalized(), head=chain.head())


def peer_status(head_slot: int, head_root: bytes = b"\x11" * 32) -> Status:
    """A compatible status (same genesis as ``CHAIN``) with the given head."""
    return Status(
        finalized=Checkpoint(root=ROOTS[0], slot=0),
        head=Checkpoint(root=head_root, slot=head_slot),
    )


def make_core(blocks: int = 10, **options: object) -> tuple[P2PCore, MemoryChain]:
    chain = MemoryChain(CHAIN[:blocks])
    core = P2PCore(chain, **options)  # type: ignore[arg-type]
    return core, chain


def connect(
    core: P2PCore,
    peer_id: str = PEER_A,
    *,
    now: float = 0.0,
    status: Status | None = None,
    address: str = ADDRESS_A,
) -> int:
    """Connect ``peer_id`` and finish our Status exchange with it; returns its request id.

    With ``status`` None the peer answers nothing yet (the request stays in flight).
    """
    core.handle_event(PeerConnected(peer_id, Direction.OUTBOUND, address), now)
    commands = core.drain_commands()
    assert len(commands) == 1 and isinstance(commands[0], SendRequest)
    request_id = commands[0].request_id
    if status is not None:
        from lean_p2p.net import ResponseChunk

        core.handle_event(ResponseChunk(peer_id, request_id, ReqRespProtocol.STATUS, status), now)
        core.handle_event(RequestCompleted(peer_id, request_id, ReqRespProtocol.STATUS, 1), now)
    return request_id


def only_request(commands: list[Command]) -> SendRequest:
    assert len(commands) == 1, commands
    command = commands[0]
    assert isinstance(command, SendRequest), command
    return command


def attestation(slot: int = 1) -> SignedAttestation:
    checkpoint = Checkpoint(root=ROOTS[0], slot=0)
    data = AttestationData(slot=slot, head=checkpoint, target=checkpoint, source=checkpoint)
    return SignedAttestation(validator_index=3, data=data, signature=b"\x00" * 424)


def aggregate(slot: int = 1) -> SignedAggregatedAttestation:
    checkpoint = Checkpoint(root=ROOTS[0], slot=0)
    data = AttestationData(slot=slot, head=checkpoint, target=checkpoint, source=checkpoint)
    proof = SingleMessageAggregate(participants=Bitlist.from_bools((True, False)), proof=b"\x01")
    return SignedAggregatedAttestation(data=data, proof=proof)


def foreign_block() -> SignedBlock:
    """A block of a different chain (never requested by anyone)."""
    return build_chain(2, tag=b"elsewhere")[1]

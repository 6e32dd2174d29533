"""The peer table of the P2P core: who is connected, how, what they told us. Loop thread.

Pure bookkeeping, no I/O. The core owns one :class:`PeerTable`; entries are mutable and
never leave the loop thread (the statistics the core exports are copies).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lean_p2p.net.events import Direction
from lean_p2p.p2p.backoff import MAX_PEERS

if TYPE_CHECKING:
    from lean_p2p.containers import Status
    from lean_p2p.p2p.chain import ChainReader

__all__ = ["Peer", "PeerTable", "status_conflict"]


@dataclass(slots=True)
class Peer:
    """One connected peer. ``failures`` counts its failed or useless responses (ever)."""

    peer_id: str
    direction: Direction
    address: str
    status: Status | None = None
    failures: int = 0
    status_failures: int = 0  # consecutive failed Status exchanges
    #: the highest slot of a block it gossiped to us: it holds that block, whatever its
    #: Status said (leanSpec's node never updates its Status after start-up)
    seen_slot: int = -1

    @property
    def head_slot(self) -> int:
        """The head slot from its Status, or the highest slot of a block it sent since if
        that is higher; -1 until the handshake is done."""
        return -1 if self.status is None else max(self.status.head.slot, self.seen_slot)


class PeerTable:
    """Connected peers, bounded by ``capacity``; ranking is deterministic."""

    __slots__ = ("_capacity", "_peers")

    def __init__(self, capacity: int = MAX_PEERS) -> None:
        self._capacity = capacity
        self._peers: dict[str, Peer] = {}

    def __len__(self) -> int:
        return len(self._peers)

    def __contains__(self, peer_id: str) -> bool:
        return peer_id in self._peers

    def __iter__(self) -> Iterator[Peer]:
        return iter(self._peers.values())

    @property
    def full(self) -> bool:
        return len(self._peers) >= self._capacity

    def get(self, peer_id: str) -> Peer | None:
        return self._peers.get(peer_id)

    def add(self, peer_id: str, direction: Direction, address: str) -> Peer:
        if peer_id in self._peers:
            raise KeyError(f"peer {peer_id} is already connected")
        if self.full:
            raise OverflowError(f"peer table is full ({self._capacity})")
        peer = Peer(peer_id, direction, address)
        self._peers[peer_id] = peer
        return peer

    def remove(self, peer_id: str) -> Peer | None:
        return self._peers.pop(peer_id, None)

    def ranked(self) -> list[Peer]:
        """Best first: handshake done, highest head, fewest failures, then peer id.

        The peer id tie-break keeps the choice (and so the command log) deterministic.
        """
        return sorted(
            self._peers.values(),
            key=lambda peer: (peer.status is None, -peer.head_slot, peer.failures, peer.peer_id),
        )

    def best_head_slot(self) -> int:
        """The highest head slot any peer announced; -1 when none has."""
        return max((peer.head_slot for peer in self._peers.values()), default=-1)


_GENESIS_PLACEHOLDER = b"\x00" * 32


def status_conflict(status: Status, chain: ChainReader) -> str | None:
    """Why a peer with this Status cannot be on our chain, or None if it may be.

    - its head may not be older than its own finalized checkpoint;
    - where we have finalized at least as far as the peer, our canonical block at the
      peer's finalized slot must be the peer's finalized root (a different root there
      means a different chain; an empty or unknown slot is given the benefit of doubt).
    Peers that finalized further than us are accepted: we cannot judge them yet.

    A zero root at slot 0 stands for genesis: leanSpec's node announces
    ``Status(finalized=(0x00..., 0), head=(0x00..., 0))`` until it has a block, since
    "the genesis block has no id yet" (its ``Anchor.from_genesis``), as Ethereum's
    consensus clients announce a zero finalized root at epoch 0. It matches our genesis.
    """
    if status.head.slot < status.finalized.slot:
        return (
            f"invalid status: head slot {status.head.slot} is before "
            f"finalized slot {status.finalized.slot}"
        )
    ours = chain.finalized()
    if status.finalized.slot > ours.slot:
        return None
    if status.finalized.slot == 0 and status.finalized.root == _GENESIS_PLACEHOLDER:
        return None
    our_root = chain.root_at_slot(status.finalized.slot)
    if our_root is not None and our_root != status.finalized.root:
        return (
            f"finalized checkpoint at slot {status.finalized.slot} conflicts with ours "
            f"(theirs {status.finalized.root.hex()[:16]}, ours {our_root.hex()[:16]})"
        )
    return None

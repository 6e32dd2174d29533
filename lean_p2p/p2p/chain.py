"""The P2P actor's contract with the chain (the consensus store). Loop thread.

Three small pieces, so the store and the P2P core can be written apart and joined by
the node:

- :class:`ChainReader`: what the core *reads* from the store, synchronously, on the loop
  thread (our status, blocks to serve, the canonical root at a slot).
- :data:`ChainRequest` values: what the chain *asks* of the P2P actor (fetch these
  roots, publish this block, attestation or aggregate, report its verdict on a gossip
  message).
- :data:`ToChain` values: what the P2P actor *hands* to the chain (blocks,
  attestations and aggregates received, fetches given up, publishes that failed).

All values are frozen, so the node may route them through mailbox lanes.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from lean_p2p.net.commands import GossipVerdict
from lean_p2p.net.protocol import GossipTopic

if TYPE_CHECKING:
    from lean_p2p.containers import (
        Checkpoint,
        SignedAggregatedAttestation,
        SignedAttestation,
        SignedBlock,
    )

__all__ = [
    "AggregateReceived",
    "AttestationReceived",
    "BlockReceived",
    "BlockSource",
    "ChainReader",
    "ChainRequest",
    "FetchAbandoned",
    "FetchRoots",
    "PublishAggregate",
    "PublishAttestation",
    "PublishBlock",
    "PublishRejected",
    "ReportGossip",
    "ToChain",
]


class ChainReader(Protocol):
    """Read access to the store. Called on the loop thread; must not block."""

    def head(self) -> Checkpoint:
        """The head of our fork choice (root and slot)."""
        ...

    def finalized(self) -> Checkpoint:
        """Our latest finalized checkpoint."""
        ...

    def root_at_slot(self, slot: int) -> bytes | None:
        """Root of our canonical block at ``slot``; None for an empty or unknown slot."""
        ...

    def get_block(self, root: bytes) -> SignedBlock | None:
        """The block with this root, if the store has it."""
        ...

    def blocks_by_range(self, start_slot: int, count: int) -> Sequence[SignedBlock]:
        """Our canonical blocks with ``start_slot <= slot < start_slot + count``, by slot."""
        ...


# --- requests from the chain ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FetchRoots:
    """Fetch these blocks by root (e.g. the parked-block pool's missing parents).

    Up to 1,024 roots go out in one BlocksByRoot request; more are split.
    """

    roots: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class PublishBlock:
    block: SignedBlock


@dataclass(frozen=True, slots=True)
class PublishAttestation:
    attestation: SignedAttestation


@dataclass(frozen=True, slots=True)
class PublishAggregate:
    aggregate: SignedAggregatedAttestation


@dataclass(frozen=True, slots=True)
class ReportGossip:
    """The chain's verdict on a gossip message it received (``message_id`` from its
    :class:`BlockReceived`, :class:`AttestationReceived` or :class:`AggregateReceived`):
    the driver forwards it only on ACCEPT."""

    message_id: bytes
    verdict: GossipVerdict


ChainRequest = FetchRoots | PublishBlock | PublishAttestation | PublishAggregate | ReportGossip


# --- outputs toward the chain -----------------------------------------------------------


class BlockSource(enum.Enum):
    """How a block reached us (the chain may treat gossip and sync differently)."""

    GOSSIP = "gossip"
    BY_ROOT = "by_root"
    BY_RANGE = "by_range"


@dataclass(frozen=True, slots=True)
class BlockReceived:
    """A block to import. ``root`` is ``block.block.hash_tree_root()``, computed once;
    ``message_id`` is the gossip message's (empty for blocks a request brought)."""

    block: SignedBlock
    root: bytes
    peer_id: str
    source: BlockSource
    message_id: bytes = b""


@dataclass(frozen=True, slots=True)
class AttestationReceived:
    attestation: SignedAttestation
    peer_id: str
    message_id: bytes


@dataclass(frozen=True, slots=True)
class AggregateReceived:
    aggregate: SignedAggregatedAttestation
    peer_id: str
    message_id: bytes


@dataclass(frozen=True, slots=True)
class FetchAbandoned:
    """Roots the core gave up on after its retries (or could not accept at all)."""

    roots: tuple[bytes, ...]
    reason: str


@dataclass(frozen=True, slots=True)
class PublishRejected:
    """A publish the chain asked for failed in the driver; counted and reported here."""

    topic: GossipTopic
    message_id: bytes
    reason: str


ToChain = BlockReceived | AttestationReceived | AggregateReceived | FetchAbandoned | PublishRejected

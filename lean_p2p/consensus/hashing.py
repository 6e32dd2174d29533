"""Hash tree roots of the small fixed-layout containers, computed directly. Any thread.

The containers' generic ``hash_tree_root`` walks their SSZ types field by field; the
consensus hot path hashes the same few fixed layouts (checkpoint, block header, vote)
thousands of times per second, so these functions lay the Merkle tree out by hand: the
same bytes go into SHA-256, several times faster. Tests check them against the generic
roots.
"""

from __future__ import annotations

from hashlib import sha256
from typing import Final

from lean_p2p.containers import (
    VALIDATOR_REGISTRY_LIMIT,
    AttestationData,
    BlockBody,
    BlockHeader,
    Checkpoint,
    Validator,
    merkleize,
    merkleize_chunks,
    mix_in_length,
)

__all__ = [
    "attestation_data_root",
    "block_header_root",
    "body_root_of",
    "checkpoint_root",
    "header_root",
    "validator_root",
]

_ZERO_CHUNK: Final = b"\x00" * 32
_ZERO_PAIR: Final = sha256(_ZERO_CHUNK + _ZERO_CHUNK).digest()


def _uint64(value: int) -> bytes:
    return value.to_bytes(32, "little")


def checkpoint_root(checkpoint: Checkpoint) -> bytes:
    """Container(root: Bytes32, slot: uint64): one pair hash."""
    return sha256(checkpoint.root + _uint64(checkpoint.slot)).digest()


def header_root(
    slot: int, proposer_index: int, parent_root: bytes, state_root: bytes, body_root: bytes
) -> bytes:
    """BlockHeader root from its five fields (padded to eight leaves)."""
    left = sha256(
        sha256(_uint64(slot) + _uint64(proposer_index)).digest()
        + sha256(parent_root + state_root).digest()
    ).digest()
    right = sha256(sha256(body_root + _ZERO_CHUNK).digest() + _ZERO_PAIR).digest()
    return sha256(left + right).digest()


def block_header_root(header: BlockHeader) -> bytes:
    return header_root(
        header.slot, header.proposer_index, header.parent_root, header.state_root, header.body_root
    )


def attestation_data_root(data: AttestationData) -> bytes:
    """AttestationData(slot, head, target, source) root: four leaves."""
    return sha256(
        sha256(_uint64(data.slot) + checkpoint_root(data.head)).digest()
        + sha256(checkpoint_root(data.target) + checkpoint_root(data.source)).digest()
    ).digest()


def _bytes52_root(key: bytes) -> bytes:
    return sha256(key[:32] + key[32:].ljust(32, b"\x00")).digest()


def validator_root(validator: Validator) -> bytes:
    """Validator(attestation key: Bytes52, proposal key: Bytes52, index: uint64)."""
    return sha256(
        sha256(
            _bytes52_root(validator.attestation_public_key)
            + _bytes52_root(validator.proposal_public_key)
        ).digest()
        + sha256(_uint64(validator.index) + _ZERO_CHUNK).digest()
    ).digest()


_EMPTY_BODY_ROOT: Final = BlockBody(attestations=()).hash_tree_root()
_ATTESTATIONS_LIMIT: Final = VALIDATOR_REGISTRY_LIMIT
_BITS_CHUNK_LIMIT: Final = (VALIDATOR_REGISTRY_LIMIT + 255) // 256


def body_root_of(body: BlockBody) -> bytes:
    """BlockBody(attestations: List[AggregatedAttestation, 4096]) root.

    An empty body (most blocks on a quiet chain) is a constant. Otherwise each element is
    AggregatedAttestation(aggregation_bits: Bitlist[4096], data) = pair hash of the
    bitlist root and the vote root; the body's single field makes its root the list's.
    """
    attestations = body.attestations
    if not attestations:
        return _EMPTY_BODY_ROOT
    element_roots = [
        sha256(
            _bitlist_root(attestation.aggregation_bits.data, len(attestation.aggregation_bits))
            + attestation_data_root(attestation.data)
        ).digest()
        for attestation in attestations
    ]
    return mix_in_length(merkleize_chunks(element_roots, _ATTESTATIONS_LIMIT), len(element_roots))


def _bitlist_root(packed: bytes, length: int) -> bytes:
    return mix_in_length(merkleize(packed, _BITS_CHUNK_LIMIT), length)

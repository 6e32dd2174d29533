"""Well-formed sample lean messages of a chosen size, for tests and benchmarks. Any thread.

Signatures and proofs are opaque to the driver (it checks encodings, not crypto), so
samples carry pseudo-random signatures with the one valid offset layout of the active
XMSS scheme, and pseudo-random proofs padded to reach a target encoded size. Random
content keeps the snappy-compressed wire size close to the SSZ size, as with real
signatures and proofs.
"""

from __future__ import annotations

import random
import struct

from lean_p2p.containers import (
    PROOF_BYTES_LIMIT,
    AggregatedAttestation,
    AttestationData,
    Bitlist,
    Block,
    BlockBody,
    Checkpoint,
    MultiMessageAggregate,
    SignedAggregatedAttestation,
    SignedAttestation,
    SignedBlock,
    SingleMessageAggregate,
    Status,
    active_scheme,
)

__all__ = [
    "sample_aggregate",
    "sample_attestation",
    "sample_block",
    "sample_signature",
    "sample_status",
]

_U32 = struct.Struct("<I")
#: the validator registry's limit: a vote's participation bits in a block body
_REGISTRY_BITS = 4096


def sample_signature(seed: int = 0) -> bytes:
    """Pseudo-random signature bytes with the offsets the active scheme requires."""
    scheme = active_scheme()
    rho_end = 4 + scheme.rand_length * 4
    path_offset = rho_end + 4
    hashes_offset = path_offset + 4 + scheme.log_lifetime * scheme.digest_bytes
    # Every 4-byte word is a field element below 2^30 (< the KoalaBear modulus).
    words = scheme.signature_size // 4
    data = bytearray(random.Random(seed).randbytes(scheme.signature_size))
    for index in range(words):
        data[index * 4 + 3] &= 0x3F
    _U32.pack_into(data, 0, path_offset)
    _U32.pack_into(data, rho_end, hashes_offset)
    _U32.pack_into(data, path_offset, 4)
    return bytes(data)


def _checkpoint(slot: int, tag: int) -> Checkpoint:
    return Checkpoint(bytes([tag % 256]) * 32, slot)


def sample_attestation(validator_index: int = 0, slot: int = 1) -> SignedAttestation:
    """A signed attestation; distinct (validator, slot) pairs give distinct messages."""
    data = AttestationData(slot, _checkpoint(slot, 1), _checkpoint(slot, 2), _checkpoint(0, 3))
    return SignedAttestation(validator_index, data, sample_signature(validator_index))


def sample_aggregate(slot: int = 1, validators: int = 8) -> SignedAggregatedAttestation:
    """An aggregate of ``validators`` participants with a 1 KiB opaque proof."""
    data = AttestationData(slot, _checkpoint(slot, 1), _checkpoint(slot, 2), _checkpoint(0, 3))
    participants = Bitlist.from_indices(validators, range(validators))
    proof = SingleMessageAggregate(participants, bytes([slot % 256]) * 1024)
    return SignedAggregatedAttestation(data, proof)


def sample_block(
    slot: int = 1, size_bytes: int = 0, parent_root: bytes = b"\x00" * 32
) -> SignedBlock:
    """A signed block whose encoding is about ``size_bytes`` (at least its minimum).

    Up to the largest proof (512 KiB) the padding is a pseudo-random proof. Beyond it,
    the body also carries aggregated votes over the whole registry, each for its own
    pseudo-random head and with pseudo-random participation (about 650 bytes a vote,
    at most 4,096 votes): a block of 2 MB is the largest proof and about 2,300 votes.
    Seeded by the slot: equal-size blocks of different slots differ."""
    random_bytes = random.Random(slot).randbytes
    block = Block(slot, slot % 4, parent_root, b"\x22" * 32, BlockBody(()))
    bare = len(SignedBlock(block, MultiMessageAggregate(b"")).encode())
    beyond_proof = size_bytes - bare - PROOF_BYTES_LIMIT
    if beyond_proof > 0:
        bits = _REGISTRY_BITS // 8

        def vote() -> AggregatedAttestation:
            # A block aggregates its votes by what they vote for: each entry differs.
            head = Checkpoint(random_bytes(32), slot)
            data = AttestationData(slot, head, _checkpoint(slot, 2), _checkpoint(0, 3))
            return AggregatedAttestation(Bitlist(_REGISTRY_BITS, random_bytes(bits)), data)

        per_vote = len(BlockBody((vote(),)).encode()) - len(BlockBody(()).encode())
        votes = tuple(vote() for _ in range(min(beyond_proof // per_vote, _REGISTRY_BITS)))
        block = Block(slot, slot % 4, parent_root, b"\x22" * 32, BlockBody(votes))
        bare = len(SignedBlock(block, MultiMessageAggregate(b"")).encode())
    padding = min(max(0, size_bytes - bare), PROOF_BYTES_LIMIT)
    return SignedBlock(block, MultiMessageAggregate(random_bytes(padding)))


def sample_status(head_slot: int = 0) -> Status:
    return Status(_checkpoint(0, 9), _checkpoint(head_slot, 10))

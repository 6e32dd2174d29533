"""Hand-laid roots equal the containers' generic hash_tree_root."""

from __future__ import annotations

import hashlib

from lean_p2p.consensus.hashing import (
    attestation_data_root,
    block_header_root,
    checkpoint_root,
    validator_root,
)
from lean_p2p.containers import AttestationData, BlockHeader, Checkpoint, Validator


def _bytes(seed: int, size: int = 32) -> bytes:
    return (hashlib.sha256(seed.to_bytes(4, "little")).digest() * 2)[:size]


def test_roots_match_the_generic_merkleization() -> None:
    for seed in range(50):
        slot = 2**64 - 1 if seed == 49 else seed * 7919
        checkpoint = Checkpoint(root=_bytes(seed), slot=slot)
        assert checkpoint_root(checkpoint) == checkpoint.hash_tree_root()
        header = BlockHeader(
            slot=slot,
            proposer_index=seed,
            parent_root=_bytes(seed + 1),
            state_root=_bytes(seed + 2),
            body_root=_bytes(seed + 3),
        )
        assert block_header_root(header) == header.hash_tree_root()
        data = AttestationData(
            slot=slot,
            head=checkpoint,
            target=Checkpoint(root=_bytes(seed + 4), slot=seed),
            source=Checkpoint(root=_bytes(seed + 5), slot=0),
        )
        assert attestation_data_root(data) == data.hash_tree_root()
        validator = Validator(
            attestation_public_key=_bytes(seed + 6, 52),
            proposal_public_key=_bytes(seed + 7, 52),
            index=seed,
        )
        assert validator_root(validator) == validator.hash_tree_root()


def test_body_root_matches_the_generic_merkleization() -> None:
    from lean_p2p.consensus.hashing import body_root_of
    from lean_p2p.containers import AggregatedAttestation, Bitlist, BlockBody

    assert body_root_of(BlockBody(attestations=())) == BlockBody(attestations=()).hash_tree_root()
    for count in (1, 2, 3, 8):
        body = BlockBody(
            attestations=tuple(
                AggregatedAttestation(
                    aggregation_bits=Bitlist.from_indices(5 + index * 300, [0, index]),
                    data=AttestationData(
                        slot=index,
                        head=Checkpoint(root=_bytes(index), slot=index),
                        target=Checkpoint(root=_bytes(index + 1), slot=index),
                        source=Checkpoint(root=_bytes(index + 2), slot=0),
                    ),
                )
                for index in range(count)
            )
        )
        assert body_root_of(body) == body.hash_tree_root()

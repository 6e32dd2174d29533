"""Sample lean messages (``lean_p2p.driver.samples``) of the sizes the benches use."""

from __future__ import annotations

import pytest

from lean_p2p.containers import PROOF_BYTES_LIMIT, SignedBlock
from lean_p2p.driver import codec
from lean_p2p.driver.samples import sample_block
from lean_p2p.net.protocol import GossipTopic
from lean_p2p.wire.snappy import MAX_PAYLOAD_SIZE, decompress_block


@pytest.mark.parametrize("size", [100_000, 500_000, 600_000, 2_000_000])
def test_a_sample_block_has_about_its_size_and_travels_as_gossip(size: int) -> None:
    block = sample_block(7, size)
    encoded = block.encode()
    assert size - 1_000 <= len(encoded) <= size
    assert len(block.proof.proof) <= PROOF_BYTES_LIMIT
    assert SignedBlock.decode(encoded) == block
    wire = codec.encode_gossip(block)
    assert len(wire) <= MAX_PAYLOAD_SIZE
    assert codec.decode_gossip(GossipTopic.BLOCK, decompress_block(wire, MAX_PAYLOAD_SIZE)) == block
    # Beyond the largest proof, the body carries votes; below it, none.
    assert bool(block.block.body.attestations) == (size > PROOF_BYTES_LIMIT)


def test_sample_blocks_of_different_slots_differ() -> None:
    assert sample_block(1, 600_000) != sample_block(2, 600_000)
    assert sample_block(1, 600_000) == sample_block(1, 600_000)

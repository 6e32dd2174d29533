"""The codecs are pure: many threads decoding at once get exactly the one-thread results."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from lean_p2p.containers import (
    AggregatedAttestation,
    AttestationData,
    Bitlist,
    Block,
    BlockBody,
    Checkpoint,
    MultiMessageAggregate,
    SignedBlock,
)
from lean_p2p.wire.reqresp import ResponseChunk, ResponseDecoder, encode_response_chunk
from lean_p2p.wire.snappy import compress_block, decompress_block

THREADS = 4
ROUNDS = 150


def _block(seed: int) -> SignedBlock:
    checkpoint = Checkpoint(bytes([seed]) * 32, seed)
    data = AttestationData(seed, checkpoint, checkpoint, checkpoint)
    attestations = tuple(
        AggregatedAttestation(Bitlist.from_indices(64, [seed % 64, i]), data) for i in range(8)
    )
    return SignedBlock(
        Block(seed, 1, b"\x01" * 32, b"\x02" * 32, BlockBody(attestations)),
        MultiMessageAggregate(bytes([seed]) * 500),
    )


@pytest.mark.stress
def test_concurrent_gossip_and_reqresp_decoding() -> None:
    blocks = [_block(seed) for seed in range(THREADS)]
    gossip = [compress_block(block.encode()) for block in blocks]
    roots = [block.hash_tree_root() for block in blocks]
    streams = [encode_response_chunk(0, block.encode()) * 3 for block in blocks]

    def work(index: int) -> bool:
        for round_number in range(ROUNDS):
            decoded = SignedBlock.decode(decompress_block(gossip[index]))
            assert decoded == blocks[index]
            assert decoded.hash_tree_root() == roots[index]
            decoder = ResponseDecoder()
            stream = streams[index]
            split = (round_number * 37) % len(stream)
            chunks = decoder.feed(stream[:split]) + decoder.feed(stream[split:])
            decoder.finish()
            assert chunks == [ResponseChunk(0, blocks[index].encode())] * 3
        return True

    with ThreadPoolExecutor(THREADS) as pool:
        futures = [pool.submit(work, index) for index in range(THREADS)]
        assert all(future.result(timeout=120) for future in futures)

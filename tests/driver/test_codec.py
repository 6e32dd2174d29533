"""The driver's payload codec: message ids, gossip and req/resp round trips, limits."""

from __future__ import annotations

import pytest

from lean_p2p.containers import (
    BlocksByRangeRequest,
    BlocksByRootRequest,
    MultiMessageAggregate,
    SignedBlock,
)
from lean_p2p.driver import codec
from lean_p2p.driver.samples import sample_attestation, sample_block, sample_status
from lean_p2p.net.protocol import GossipTopic, ReqRespProtocol, ResultCode
from lean_p2p.wire.errors import WireError
from lean_p2p.wire.gossip import gossip_message_id as wire_message_id
from lean_p2p.wire.varint import encode_varint

TOPIC = GossipTopic.ATTESTATION.topic_string()


def test_message_id_matches_the_wire_definition_and_returns_the_payload() -> None:
    message = sample_attestation(3, 5)
    data = codec.encode_gossip(message)
    message_id, payload = codec.gossip_message_id(TOPIC, data)
    assert message_id == wire_message_id(TOPIC, data)
    assert len(message_id) == 20
    assert payload == message.encode()
    assert codec.decode_gossip(GossipTopic.ATTESTATION, payload) == message


def test_invalid_snappy_gets_the_invalid_domain_id_and_no_payload() -> None:
    message_id, payload = codec.gossip_message_id(TOPIC, b"\xff\xff\xff not snappy")
    assert payload is None
    assert message_id == wire_message_id(TOPIC, b"\xff\xff\xff not snappy")


def test_declared_length_over_10_mib_is_refused_before_decompressing() -> None:
    bomb = encode_varint(10 * 1024 * 1024 + 1) + b"\x00" * 16
    _, payload = codec.gossip_message_id(TOPIC, bomb)
    assert payload is None


def test_wrong_container_on_a_topic_is_a_wire_error() -> None:
    with pytest.raises(WireError):
        codec.decode_gossip(GossipTopic.BLOCK, sample_attestation().encode())


@pytest.mark.parametrize(
    "request_value",
    [
        sample_status(4),
        BlocksByRootRequest((b"\x01" * 32, b"\x02" * 32)),
        BlocksByRangeRequest(3, 10),
    ],
)
def test_requests_round_trip(request_value: codec.Request) -> None:
    protocol = codec.request_protocol(request_value)
    assert codec.decode_request(protocol, codec.encode_request(request_value)) == request_value


def test_request_with_trailing_bytes_is_refused() -> None:
    data = codec.encode_request(sample_status()) + b"\x00"
    with pytest.raises(WireError):
        codec.decode_request(ReqRespProtocol.STATUS, data)


def test_response_decoder_yields_blocks_then_error_across_split_feeds() -> None:
    blocks = [sample_block(slot, 3000) for slot in (1, 2)]
    stream = b"".join(codec.encode_success_chunk(block) for block in blocks)
    stream += codec.encode_error_chunk(ResultCode.RESOURCE_UNAVAILABLE, "gone")
    decoder = codec.ResponseChunkDecoder(ReqRespProtocol.BLOCKS_BY_ROOT)
    chunks = []
    for start in range(0, len(stream), 777):  # arbitrary split points
        chunks += decoder.feed(stream[start : start + 777])
    decoder.finish()
    assert chunks == [
        (ResultCode.SUCCESS, blocks[0]),
        (ResultCode.SUCCESS, blocks[1]),
        (ResultCode.RESOURCE_UNAVAILABLE, "gone"),
    ]


def test_response_cut_inside_a_chunk_fails_at_finish() -> None:
    chunk = codec.encode_success_chunk(sample_block(1, 500))
    decoder = codec.ResponseChunkDecoder(ReqRespProtocol.BLOCKS_BY_ROOT)
    assert decoder.feed(chunk[:-3]) == []
    with pytest.raises(WireError):
        decoder.finish()


def test_response_chunk_declaring_over_10_mib_is_refused() -> None:
    decoder = codec.ResponseChunkDecoder(ReqRespProtocol.BLOCKS_BY_ROOT)
    with pytest.raises(WireError):
        decoder.feed(b"\x00" + encode_varint(10 * 1024 * 1024 + 1))


def test_block_over_its_ssz_limits_cannot_be_encoded_as_a_response_chunk() -> None:
    # A proof over ByteList[524288]: no valid encoding exists, so nothing is sent.
    block = sample_block(1).block
    with pytest.raises(WireError):
        codec.encode_success_chunk(SignedBlock(block, MultiMessageAggregate(bytes(600_000))))


def test_error_chunk_needs_an_error_code() -> None:
    with pytest.raises(ValueError):
        codec.encode_error_chunk(ResultCode.SUCCESS, "not an error")

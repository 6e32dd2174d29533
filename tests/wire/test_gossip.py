"""Gossip topics and message ids."""

from __future__ import annotations

import hashlib

import pytest

from lean_p2p.net.protocol import GossipTopic
from lean_p2p.wire.gossip import (
    INVALID_SNAPPY_DOMAIN,
    VALID_SNAPPY_DOMAIN,
    GossipTopicError,
    Topic,
    TopicKind,
    compute_message_id,
    gossip_message_id,
)
from lean_p2p.wire.snappy import compress_block


@pytest.mark.parametrize("topic", list(GossipTopic))
def test_topics_agree_with_the_net_names(topic: GossipTopic) -> None:
    parsed = Topic.parse(topic.topic_string())
    assert str(parsed) == topic.topic_string()


def test_attestation_subnets() -> None:
    topic = Topic(TopicKind.ATTESTATION, "12345678", 63)
    assert str(topic) == "/leanconsensus/12345678/attestation_63/ssz_snappy"
    assert Topic.parse(str(topic)) == topic
    assert topic.matches_network("12345678")
    assert not topic.matches_network("deadbeef")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "/leanconsensus/12345678/block",
        "leanconsensus/12345678/block/ssz_snappy/",
        "/eth2/12345678/block/ssz_snappy",
        "/leanconsensus/12345678/block/ssz",
        "/leanconsensus//block/ssz_snappy",
        "/leanconsensus/12345678/votes/ssz_snappy",
        "/leanconsensus/12345678/attestation/ssz_snappy",
        "/leanconsensus/12345678/attestation_x/ssz_snappy",
        "/leanconsensus/12345678/attestation_-1/ssz_snappy",
        "/leanconsensus/12345678/attestation_\uff19/ssz_snappy",  # a non-ASCII digit
        "/leanconsensus/12345678/attestation_99999999999/ssz_snappy",
    ],
)
def test_bad_topics_raise(text: str) -> None:
    with pytest.raises(GossipTopicError):
        Topic.parse(text)


def test_topic_values_check_the_subnet() -> None:
    with pytest.raises(ValueError):
        Topic(TopicKind.BLOCK, subnet_id=1)
    with pytest.raises(ValueError):
        Topic(TopicKind.ATTESTATION)
    with pytest.raises(ValueError):
        Topic(TopicKind.ATTESTATION, subnet_id=-1)


def _expected_id(domain: bytes, topic: bytes, data: bytes) -> bytes:
    preimage = domain + len(topic).to_bytes(8, "little") + topic + data
    return hashlib.sha256(preimage).digest()[:20]


def test_message_id_of_valid_snappy_hashes_the_decompressed_data() -> None:
    topic = GossipTopic.BLOCK.topic_string()
    data = b"block bytes" * 10
    message_id = gossip_message_id(topic, compress_block(data))
    assert message_id == _expected_id(VALID_SNAPPY_DOMAIN, topic.encode(), data)
    assert message_id == compute_message_id(VALID_SNAPPY_DOMAIN, topic.encode(), data)


def test_message_id_of_invalid_snappy_hashes_the_raw_bytes() -> None:
    raw = b"\xff\xff\xff"
    message_id = gossip_message_id(b"t", raw)
    assert message_id == _expected_id(INVALID_SNAPPY_DOMAIN, b"t", raw)


def test_message_id_of_an_oversized_claim_uses_the_invalid_domain() -> None:
    raw = compress_block(b"x" * 200)
    assert gossip_message_id("t", raw, max_length=100) == _expected_id(
        INVALID_SNAPPY_DOMAIN, b"t", raw
    )

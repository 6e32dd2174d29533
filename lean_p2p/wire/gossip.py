"""Gossip topic names and message ids. Any thread.

- topic: ``/leanconsensus/<network>/<name>/ssz_snappy`` where name is ``block``,
  ``aggregation`` or ``attestation_<subnet>``;
- message id: ``SHA256(domain ‖ uint64_le(len(topic)) ‖ topic ‖ data)[:20]``, domain
  ``01000000`` with the decompressed payload when it is valid raw snappy, else domain
  ``00000000`` with the raw bytes.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass
from typing import Final

from lean_p2p.net.protocol import NETWORK_NAME
from lean_p2p.wire.errors import WireError
from lean_p2p.wire.snappy import MAX_PAYLOAD_SIZE, decompress_block

__all__ = [
    "INVALID_SNAPPY_DOMAIN",
    "MESSAGE_ID_BYTES",
    "VALID_SNAPPY_DOMAIN",
    "GossipTopicError",
    "Topic",
    "TopicKind",
    "compute_message_id",
    "gossip_message_id",
]

VALID_SNAPPY_DOMAIN: Final = bytes.fromhex("01000000")
INVALID_SNAPPY_DOMAIN: Final = bytes.fromhex("00000000")
MESSAGE_ID_BYTES: Final = 20

_PREFIX: Final = "leanconsensus"
_ENCODING: Final = "ssz_snappy"
_ATTESTATION_PREFIX: Final = "attestation_"


class GossipTopicError(WireError):
    """A topic string that is not a lean gossip topic."""


class TopicKind(enum.StrEnum):
    BLOCK = "block"
    ATTESTATION = "attestation"
    AGGREGATION = "aggregation"


@dataclass(frozen=True, slots=True)
class Topic:
    """A parsed gossip topic; ``subnet_id`` only (and always) for attestations."""

    kind: TopicKind
    network: str = NETWORK_NAME
    subnet_id: int | None = None

    def __post_init__(self) -> None:
        if (self.kind is TopicKind.ATTESTATION) != (self.subnet_id is not None):
            raise ValueError("attestation topics, and only they, carry a subnet id")
        if self.subnet_id is not None and self.subnet_id < 0:
            raise ValueError(f"subnet id {self.subnet_id} is negative")

    @property
    def name(self) -> str:
        if self.kind is TopicKind.ATTESTATION:
            return f"{_ATTESTATION_PREFIX}{self.subnet_id}"
        return str(self.kind)

    def __str__(self) -> str:
        return f"/{_PREFIX}/{self.network}/{self.name}/{_ENCODING}"

    @classmethod
    def parse(cls, text: str) -> Topic:
        parts = text.split("/")
        if len(parts) != 5 or parts[0] or parts[1] != _PREFIX or parts[4] != _ENCODING:
            raise GossipTopicError(f"not a lean gossip topic: {text[:120]!r}")
        network, name = parts[2], parts[3]
        if not network:
            raise GossipTopicError(f"empty network name in {text[:120]!r}")
        if name.startswith(_ATTESTATION_PREFIX):
            digits = name[len(_ATTESTATION_PREFIX) :]
            if not digits.isdecimal() or not digits.isascii() or len(digits) > 6:
                raise GossipTopicError(f"bad attestation subnet in {text[:120]!r}")
            return cls(TopicKind.ATTESTATION, network, int(digits))
        try:
            kind = TopicKind(name)
        except ValueError:
            raise GossipTopicError(f"unknown topic name {name[:40]!r}") from None
        if kind is TopicKind.ATTESTATION:
            raise GossipTopicError("an attestation topic needs a subnet")
        return cls(kind, network)

    def matches_network(self, expected_network: str) -> bool:
        return self.network == expected_network


def compute_message_id(domain: bytes, topic: bytes, data: bytes) -> bytes:
    """The 20-byte id from its parts (``data`` as chosen by the domain rule)."""
    digest = hashlib.sha256(domain)
    digest.update(len(topic).to_bytes(8, "little"))
    digest.update(topic)
    digest.update(data)
    return digest.digest()[:MESSAGE_ID_BYTES]


def gossip_message_id(topic: str | bytes, raw: bytes, max_length: int = MAX_PAYLOAD_SIZE) -> bytes:
    """The message id of a received gossip payload (``raw`` as it came off the wire)."""
    topic_bytes = topic.encode() if isinstance(topic, str) else topic
    try:
        data = decompress_block(raw, max_length)
    except WireError:
        return compute_message_id(INVALID_SNAPPY_DOMAIN, topic_bytes, raw)
    return compute_message_id(VALID_SNAPPY_DOMAIN, topic_bytes, data)

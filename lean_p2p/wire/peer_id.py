"""libp2p public-key protobufs and peer ids. Any thread.

A peer id is the multihash of the protobuf ``PublicKey {Type = 1; Data = 2}``: the
identity multihash when that encoding is at most 42 bytes (Ed25519, secp256k1), else
its SHA-256 multihash; written in base58btc.
"""

from __future__ import annotations

import enum
import hashlib
from typing import Final

from lean_p2p.wire.varint import encode_varint

__all__ = ["KeyType", "base58_encode", "encode_public_key", "peer_id", "peer_id_bytes"]

_BASE58_ALPHABET: Final = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_MAX_INLINE_KEY: Final = 42
_IDENTITY: Final = 0x00
_SHA2_256: Final = 0x12


class KeyType(enum.IntEnum):
    """The libp2p ``KeyType`` enum."""

    RSA = 0
    ED25519 = 1
    SECP256K1 = 2
    ECDSA = 3


def encode_public_key(key_type: KeyType, data: bytes) -> bytes:
    """The deterministic protobuf encoding of ``PublicKey{Type, Data}``."""
    return b"\x08" + encode_varint(key_type) + b"\x12" + encode_varint(len(data)) + data


def peer_id_bytes(key_type: KeyType, data: bytes) -> bytes:
    encoded = encode_public_key(key_type, data)
    if len(encoded) <= _MAX_INLINE_KEY:
        return bytes((_IDENTITY, len(encoded))) + encoded
    return bytes((_SHA2_256, 32)) + hashlib.sha256(encoded).digest()


def base58_encode(data: bytes) -> str:
    number = int.from_bytes(data, "big")
    digits = []
    while number:
        number, remainder = divmod(number, 58)
        digits.append(_BASE58_ALPHABET[remainder])
    leading_zeros = len(data) - len(data.lstrip(b"\x00"))
    return "1" * leading_zeros + "".join(reversed(digits))


def peer_id(key_type: KeyType, data: bytes) -> str:
    """The textual peer id (``12D3KooW…``, ``16Uiu2…``, ``Qm…``) of a public key."""
    return base58_encode(peer_id_bytes(key_type, data))

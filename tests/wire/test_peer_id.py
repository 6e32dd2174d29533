"""libp2p key protobufs and peer ids."""

from __future__ import annotations

import hashlib

from lean_p2p.wire.peer_id import (
    KeyType,
    base58_encode,
    encode_public_key,
    peer_id,
    peer_id_bytes,
)


def test_base58_keeps_leading_zero_bytes() -> None:
    assert base58_encode(b"") == ""
    assert base58_encode(b"\x00\x00\x01") == "112"
    assert base58_encode(b"\xff") == "5Q"


def test_short_keys_are_inlined_and_long_keys_hashed() -> None:
    short = bytes(33)
    encoded = encode_public_key(KeyType.SECP256K1, short)
    assert encoded == b"\x08\x02\x12\x21" + short
    assert peer_id_bytes(KeyType.SECP256K1, short) == b"\x00\x25" + encoded
    long = bytes(91)
    long_encoded = encode_public_key(KeyType.ECDSA, long)
    assert peer_id_bytes(KeyType.ECDSA, long) == b"\x12\x20" + hashlib.sha256(long_encoded).digest()


def test_peer_id_of_a_known_secp256k1_key() -> None:
    # The libp2p peer id of this key (leanSpec networking vector peer_id_secp256k1).
    public_key = bytes.fromhex("037777e994e452c21604f91de093ce415f5432f701dd8cd1a7a6fea0e630bfca99")
    assert (
        peer_id(KeyType.SECP256K1, public_key)
        == "16Uiu2HAmLhLvBoYaoZfaMUKuibM6ac163GwKY74c5kiSLg5KvLpY"
    )

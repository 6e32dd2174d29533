"""Node identity keys: secp256k1 private keys, their libp2p peer ids, key files. Any thread.

Lean devnets give every node a secp256k1 identity; its peer id (``16Uiu2...``) is the
base58 identity multihash of the libp2p protobuf ``PublicKey{type: Secp256k1, data:
compressed point}``. Key files hold the 32-byte private key as 64 hex characters, the
format lean tooling writes (``<node name>.key``).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

import base58
import coincurve

__all__ = ["KeyFileError", "NodeKey", "peer_id_from_public_key"]

_PROTOBUF_KEY_TYPE_SECP256K1 = b"\x08\x02"  # field 1 (Type), varint 2 (Secp256k1)
_PROTOBUF_DATA_33_BYTES = b"\x12\x21"  # field 2 (Data), length 33
_MULTIHASH_IDENTITY = b"\x00"


class KeyFileError(ValueError):
    """A key file or hex key is malformed (wrong length, not hex, out of range)."""


def peer_id_from_public_key(compressed_public_key: bytes) -> str:
    """The libp2p peer id of a compressed (33-byte) secp256k1 public key."""
    if len(compressed_public_key) != 33:
        raise KeyFileError(
            f"compressed public key must be 33 bytes, got {len(compressed_public_key)}"
        )
    encoded = _PROTOBUF_KEY_TYPE_SECP256K1 + _PROTOBUF_DATA_33_BYTES + compressed_public_key
    # Keys this small are inlined with the identity "hash" rather than hashed with SHA-256.
    multihash = _MULTIHASH_IDENTITY + bytes([len(encoded)]) + encoded
    return base58.b58encode(multihash).decode("ascii")


@dataclass(frozen=True, slots=True)
class NodeKey:
    """A node's secp256k1 identity key (32 private bytes)."""

    private_key: bytes

    def __post_init__(self) -> None:
        if len(self.private_key) != 32:
            raise KeyFileError(f"private key must be 32 bytes, got {len(self.private_key)}")
        try:
            coincurve.PrivateKey(self.private_key)
        except ValueError as error:
            raise KeyFileError(f"invalid secp256k1 private key: {error}") from error

    @classmethod
    def generate(cls) -> NodeKey:
        return cls(coincurve.PrivateKey(secrets.token_bytes(32)).secret)

    @classmethod
    def from_hex(cls, text: str) -> NodeKey:
        cleaned = text.strip().removeprefix("0x")
        if len(cleaned) != 64:
            raise KeyFileError(f"key must be 64 hex characters, got {len(cleaned)}")
        try:
            return cls(bytes.fromhex(cleaned))
        except ValueError as error:
            raise KeyFileError(f"key is not hex: {error}") from error

    @classmethod
    def read(cls, path: Path) -> NodeKey:
        try:
            return cls.from_hex(path.read_text())
        except KeyFileError as error:
            raise KeyFileError(f"{path}: {error}") from error

    def write(self, path: Path) -> None:
        path.write_text(self.to_hex() + "\n")
        path.chmod(0o600)

    def to_hex(self) -> str:
        return self.private_key.hex()

    @property
    def public_key(self) -> bytes:
        """The compressed (33-byte) public key."""
        compressed: bytes = coincurve.PrivateKey(self.private_key).public_key.format(True)
        return compressed

    @property
    def peer_id(self) -> str:
        return peer_id_from_public_key(self.public_key)

    def sign_recoverable(self, digest: bytes) -> bytes:
        """A 65-byte ``r || s || v`` signature over a 32-byte digest (no extra hashing)."""
        signature: bytes = coincurve.PrivateKey(self.private_key).sign_recoverable(
            digest, hasher=None
        )
        return signature

    def __repr__(self) -> str:  # never print the secret
        return f"NodeKey(peer_id={self.peer_id!r})"

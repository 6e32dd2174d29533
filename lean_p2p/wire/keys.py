"""A node's secp256k1 identity key and its key file. Any thread.

Lean devnets give every node a secp256k1 identity: its libp2p peer id (``16Uiu2...``,
see :mod:`lean_p2p.wire.peer_id`) and the key that signs its ENR. Key files hold the
32-byte private key as 64 hex characters (``<node name>.key``, as lean tooling writes
them). :meth:`NodeKey.read` and :meth:`NodeKey.write` do blocking file I/O: call them
while configuring, never on the loop thread.

This is the one key module: the driver (trio thread) and the node (composition) both
use it, and it imports neither py-libp2p nor trio.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import coincurve

from lean_p2p.wire.peer_id import KeyType, peer_id

__all__ = ["PRIVATE_KEY_BYTES", "KeyFileError", "NodeKey"]

PRIVATE_KEY_BYTES = 32
_HEX_DIGITS = 2 * PRIVATE_KEY_BYTES


class KeyFileError(ValueError):
    """A key file or hex key that is unreadable, malformed, or not a secp256k1 scalar."""


@dataclass(frozen=True, slots=True)
class NodeKey:
    """A node's secp256k1 identity key (32 private bytes, in 1..n-1)."""

    private_key: bytes

    def __post_init__(self) -> None:
        if len(self.private_key) != PRIVATE_KEY_BYTES:
            raise KeyFileError(
                f"a private key is {PRIVATE_KEY_BYTES} bytes, got {len(self.private_key)}"
            )
        try:
            coincurve.PrivateKey(self.private_key)
        except ValueError:
            raise KeyFileError("not a valid secp256k1 private key (zero or >= order)") from None

    @classmethod
    def generate(cls) -> NodeKey:
        return cls(coincurve.PrivateKey().secret)

    @classmethod
    def from_hex(cls, text: str) -> NodeKey:
        """64 hex digits, optionally ``0x``-prefixed and surrounded by whitespace."""
        cleaned = text.strip()
        if cleaned[:2].lower() == "0x":
            cleaned = cleaned[2:]
        if len(cleaned) != _HEX_DIGITS:
            raise KeyFileError(f"expected {_HEX_DIGITS} hex digits, got {len(cleaned)} characters")
        try:
            secret = bytes.fromhex(cleaned)
        except ValueError as error:
            raise KeyFileError(f"not hexadecimal: {error}") from None
        return cls(secret)

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> NodeKey:
        """Read a key file; every failure (missing, unreadable, malformed) is a KeyFileError."""
        try:
            text = Path(path).read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as error:
            raise KeyFileError(f"cannot read key file {os.fspath(path)!r}: {error}") from None
        try:
            return cls.from_hex(text)
        except KeyFileError as error:
            raise KeyFileError(f"{os.fspath(path)}: {error}") from None

    def write(self, path: str | os.PathLike[str]) -> None:
        """Write the key as 64 hex digits to a file only its owner can read."""
        # Created with mode 0o600 rather than chmod-ed afterwards, so the secret is never
        # readable by others, not even for a moment; fchmod covers an existing file.
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="ascii") as file:
            os.fchmod(file.fileno(), 0o600)
            file.write(self.to_hex() + "\n")

    def to_hex(self) -> str:
        return self.private_key.hex()

    @property
    def public_key(self) -> bytes:
        """The compressed (33-byte) public key, as ENRs and libp2p carry it."""
        compressed: bytes = coincurve.PrivateKey(self.private_key).public_key.format(
            compressed=True
        )
        return compressed

    @property
    def peer_id(self) -> str:
        """The libp2p peer id (``16Uiu2...``)."""
        return peer_id(KeyType.SECP256K1, self.public_key)

    def sign_recoverable(self, digest: bytes) -> bytes:
        """A 65-byte ``r || s || v`` signature over a 32-byte digest (no extra hashing)."""
        signature: bytes = coincurve.PrivateKey(self.private_key).sign_recoverable(
            digest, hasher=None
        )
        return signature

    def __repr__(self) -> str:  # never print the secret
        return f"NodeKey(peer_id={self.peer_id!r})"

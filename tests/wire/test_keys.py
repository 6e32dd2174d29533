"""Node identity keys: hex and key files, peer ids, signing, rejection of malformed keys."""

from __future__ import annotations

import os
from pathlib import Path

import coincurve
import pytest

from lean_p2p.wire.keys import KeyFileError, NodeKey

# The EIP-778 example key; its peer id is what other lean clients derive from it.
EXAMPLE_SECRET = bytes.fromhex("b71c71a67e1177ad4e901695e1b4b9ee17ae16c6668d313eac2f96dbcda3f291")
EXAMPLE_PUBLIC_KEY = "03ca634cae0d49acb401d8a4c6b6fe8c55b70d115bf400769cc1400f3258cd3138"
EXAMPLE_PEER_ID = "16Uiu2HAmSH2XVgZqYHWucap5kuPzLnt2TsNQkoppVxB5eJGvaXwm"


def test_public_key_and_peer_id_of_the_example_key() -> None:
    key = NodeKey(EXAMPLE_SECRET)
    assert key.public_key.hex() == EXAMPLE_PUBLIC_KEY
    assert key.peer_id == EXAMPLE_PEER_ID


def test_key_file_round_trip_is_owner_only(tmp_path: Path) -> None:
    key = NodeKey.generate()
    path = tmp_path / "node.key"
    key.write(path)
    assert path.read_text() == key.to_hex() + "\n"
    assert path.stat().st_mode & 0o777 == 0o600
    assert NodeKey.read(path) == key


def test_overwriting_a_readable_file_makes_it_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "node.key"
    path.write_text("old")
    os.chmod(path, 0o644)
    NodeKey(EXAMPLE_SECRET).write(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert NodeKey.read(path).private_key == EXAMPLE_SECRET


@pytest.mark.parametrize(
    "text",
    [EXAMPLE_SECRET.hex(), "0x" + EXAMPLE_SECRET.hex(), "  " + EXAMPLE_SECRET.hex().upper() + "\n"],
)
def test_devnet_key_formats_are_accepted(text: str) -> None:
    assert NodeKey.from_hex(text).private_key == EXAMPLE_SECRET


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "64 hex digits"),
        ("abcd", "64 hex digits"),
        ("00" * 31, "64 hex digits"),
        ("zz" * 32, "not hexadecimal"),
        ("00" * 32, "not a valid secp256k1"),
        ("ff" * 32, "not a valid secp256k1"),
    ],
    ids=["empty", "short", "31-bytes", "not-hex", "zero", "above-order"],
)
def test_malformed_key_files_raise_key_file_error(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.key"
    path.write_text(text)
    with pytest.raises(KeyFileError, match=message) as raised:
        NodeKey.read(path)
    assert "bad.key" in str(raised.value)


def test_unreadable_key_files_raise_key_file_error(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="cannot read"):
        NodeKey.read(tmp_path / "absent.key")
    (tmp_path / "binary.key").write_bytes(b"\xff" * 64)
    with pytest.raises(KeyFileError, match="cannot read"):
        NodeKey.read(tmp_path / "binary.key")


def test_raw_secret_must_be_32_bytes() -> None:
    with pytest.raises(KeyFileError, match="32 bytes"):
        NodeKey(b"short")


def test_repr_does_not_leak_the_secret() -> None:
    key = NodeKey.generate()
    assert key.to_hex() not in repr(key)
    assert key.peer_id in repr(key)


def test_recoverable_signature_recovers_the_public_key() -> None:
    key = NodeKey.generate()
    digest = bytes(range(32))
    signature = key.sign_recoverable(digest)
    assert len(signature) == 65
    recovered = coincurve.PublicKey.from_signature_and_message(signature, digest, hasher=None)
    assert recovered.format(compressed=True) == key.public_key


def test_generated_keys_differ() -> None:
    assert NodeKey.generate() != NodeKey.generate()

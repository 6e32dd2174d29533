"""Node identity keys: peer ids, key files, rejection of malformed keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from lean_p2p.node.keys import KeyFileError, NodeKey, peer_id_from_public_key


def test_peer_id_of_a_known_secp256k1_key() -> None:
    # The libp2p peer id of this key (leanSpec networking vector peer_id_secp256k1).
    public_key = bytes.fromhex("037777e994e452c21604f91de093ce415f5432f701dd8cd1a7a6fea0e630bfca99")
    assert (
        peer_id_from_public_key(public_key)
        == "16Uiu2HAmLhLvBoYaoZfaMUKuibM6ac163GwKY74c5kiSLg5KvLpY"
    )


def test_key_file_round_trip(tmp_path: Path) -> None:
    key = NodeKey.generate()
    path = tmp_path / "node.key"
    key.write(path)
    assert len(path.read_text().strip()) == 64
    assert path.stat().st_mode & 0o777 == 0o600
    assert NodeKey.read(path) == key
    assert key.peer_id.startswith("16Uiu2")


def test_repr_does_not_leak_the_secret() -> None:
    key = NodeKey.generate()
    assert key.to_hex() not in repr(key)


@pytest.mark.parametrize(
    "text",
    ["", "00" * 31, "zz" * 32, "00" * 32, "ff" * 32],
    ids=["empty", "short", "not-hex", "zero", "above-order"],
)
def test_malformed_keys_are_rejected(text: str, tmp_path: Path) -> None:
    path = tmp_path / "bad.key"
    path.write_text(text)
    with pytest.raises(KeyFileError):
        NodeKey.read(path)


def test_public_key_must_be_compressed() -> None:
    with pytest.raises(KeyFileError):
        peer_id_from_public_key(b"\x04" + b"\x01" * 64)

"""Identity and host construction: 64-hex key files, secp256k1 peer ids, QUIC-only host."""

from __future__ import annotations

from pathlib import Path

import pytest

from lean_p2p.driver.host import (
    KeyFileError,
    build_host,
    generate_private_key,
    load_private_key,
    parse_private_key_hex,
    peer_id_from_private_key,
    peer_id_from_public_key,
    write_private_key,
)

# The EIP-778 example key; its peer id is what other lean clients derive from it.
EXAMPLE_SECRET = bytes.fromhex("b71c71a67e1177ad4e901695e1b4b9ee17ae16c6668d313eac2f96dbcda3f291")
EXAMPLE_PEER_ID = "16Uiu2HAmSH2XVgZqYHWucap5kuPzLnt2TsNQkoppVxB5eJGvaXwm"


def test_key_file_round_trip(tmp_path: Path) -> None:
    secret = generate_private_key()
    path = tmp_path / "node.key"
    write_private_key(path, secret)
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_private_key(path) == secret


@pytest.mark.parametrize(
    "text",
    [EXAMPLE_SECRET.hex(), "0x" + EXAMPLE_SECRET.hex(), "  " + EXAMPLE_SECRET.hex().upper() + "\n"],
)
def test_devnet_key_formats_are_accepted(text: str) -> None:
    assert parse_private_key_hex(text) == EXAMPLE_SECRET


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("abcd", "64 hex digits"),
        ("zz" * 32, "not hexadecimal"),
        ("00" * 32, "not a valid secp256k1"),
        ("ff" * 32, "not a valid secp256k1"),
        ("", "64 hex digits"),
    ],
)
def test_bad_keys_raise_a_typed_error(text: str, message: str) -> None:
    with pytest.raises(KeyFileError, match=message):
        parse_private_key_hex(text)


def test_missing_key_file_raises_key_file_error(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="cannot read"):
        load_private_key(tmp_path / "absent.key")


def test_peer_id_is_the_secp256k1_form() -> None:
    assert peer_id_from_private_key(EXAMPLE_SECRET) == EXAMPLE_PEER_ID
    compressed = bytes.fromhex("03ca634cae0d49acb401d8a4c6b6fe8c55b70d115bf400769cc1400f3258cd3138")
    assert peer_id_from_public_key(compressed) == EXAMPLE_PEER_ID


def test_host_offers_only_quic_and_no_insecure_channel() -> None:
    host = build_host(EXAMPLE_SECRET)
    network = host.get_network()
    transports = network.transport_manager.get_transports()
    assert [type(t).__name__ for t in transports] == ["QUICTransport"]
    quic_config = transports[0]._config
    assert quic_config.enable_v1 and not quic_config.enable_draft29
    offered = set(network.upgrader.security_multistream.transports)
    assert offered == {"/tls/1.0.0"}  # no /plaintext/2.0.0, no /secio/1.0.0, no noise
    assert str(host.get_id()) == EXAMPLE_PEER_ID

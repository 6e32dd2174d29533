"""ENR parsing for nodes.yaml static peers: EIP-778 vector, signatures, bad records."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from lean_p2p.driver.enr import EnrError, encode_enr, load_nodes_yaml, parse_enr
from lean_p2p.driver.host import generate_private_key, peer_id_from_private_key

# EIP-778's example record (ip 127.0.0.1, udp 30303, no quic).
EIP778_RECORD = (
    "enr:-IS4QHCYrYZbAKWCBRlAy5zzaDZXJBGkcnh4MHcBFZntXNFrdvJjX04jRzjzCBOonrkTfj499SZuOh8R"
    "33Ls8RRcy5wBgmlkgnY0gmlwhH8AAAGJc2VjcDI1NmsxoQPKY0yuDUmstAHYpMa2_oxVtw0RW_QAdpzBQA8y"
    "WM0xOIN1ZHCCdl8"
)


def test_eip778_example_record() -> None:
    record = parse_enr(EIP778_RECORD)
    assert record.seq == 1
    assert record.ip == "127.0.0.1"
    assert record.quic_port is None
    assert record.peer_id == "16Uiu2HAmSH2XVgZqYHWucap5kuPzLnt2TsNQkoppVxB5eJGvaXwm"
    with pytest.raises(EnrError, match="no ip and quic port"):
        record.multiaddr()


def test_signed_record_with_quic_round_trips_to_a_dialable_multiaddr() -> None:
    secret = generate_private_key()
    record = parse_enr(encode_enr(secret, ip="10.1.2.3", quic_port=9001, seq=7))
    peer_id = peer_id_from_private_key(secret)
    assert record.seq == 7
    assert record.multiaddr() == f"/ip4/10.1.2.3/udp/9001/quic-v1/p2p/{peer_id}"


def _tamper(text: str) -> str:
    body = text[4:]
    raw = bytearray(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    raw[-1] ^= 0x01  # flip a bit in the last value (the public key or port)
    return "enr:" + base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("-IS4QHCY", "starts with 'enr:'"),
        ("enr:!!!!", "base64|RLP"),
        ("enr:" + "A" * 500, "over 300"),
        ("enr:wA", "RLP list"),  # an empty list
    ],
)
def test_malformed_records_raise_enr_error(text: str, message: str) -> None:
    with pytest.raises(EnrError, match=message):
        parse_enr(text)


def test_tampered_record_fails_signature_check() -> None:
    tampered = _tamper(encode_enr(generate_private_key(), ip="127.0.0.1", quic_port=9000))
    with pytest.raises(EnrError):
        parse_enr(tampered)


def test_nodes_yaml_lists_and_mappings(tmp_path: Path) -> None:
    first = encode_enr(generate_private_key(), ip="127.0.0.1", quic_port=9001)
    second = encode_enr(generate_private_key(), ip="127.0.0.1", quic_port=9002)
    path = tmp_path / "nodes.yaml"
    path.write_text(f"- {first}\n- enr: {second}\n")
    ports = [record.quic_port for record in load_nodes_yaml(path)]
    assert ports == [9001, 9002]


@pytest.mark.parametrize(
    ("content", "message"),
    [("a: 1\n", "list of ENRs"), ("- 42\n", "not an ENR"), ("- [unclosed\n", "cannot read")],
)
def test_bad_nodes_yaml_raises_enr_error(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "nodes.yaml"
    path.write_text(content)
    with pytest.raises(EnrError, match=message):
        load_nodes_yaml(path)


def test_empty_nodes_yaml_has_no_peers(tmp_path: Path) -> None:
    path = tmp_path / "nodes.yaml"
    path.write_text("")
    assert load_nodes_yaml(path) == []

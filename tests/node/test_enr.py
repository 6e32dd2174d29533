"""ENR encoding and decoding (EIP-778, v4), with the leanSpec/EIP-778 example record."""

from __future__ import annotations

import base64

import pytest

from lean_p2p.node.enr import Enr, EnrError, rlp_decode, rlp_encode
from lean_p2p.node.keys import NodeKey

# EIP-778's example: this private key, seq 1, ip 127.0.0.1, udp 30303.
EIP778_KEY = "b71c71a67e1177ad4e901695e1b4b9ee17ae16c6668d313eac2f96dbcda3f291"
EIP778_TEXT = (
    "enr:-IS4QHCYrYZbAKWCBRlAy5zzaDZXJBGkcnh4MHcBFZntXNFrdvJjX04jRzjzCBOonrkTfj499SZuOh8R33Ls8RR"
    "cy5wBgmlkgnY0gmlwhH8AAAGJc2VjcDI1NmsxoQPKY0yuDUmstAHYpMa2_oxVtw0RW_QAdpzBQA8yWM0xOIN1ZHCCdl8"
)


def test_encoding_reproduces_the_eip778_example() -> None:
    record = Enr.create(NodeKey.from_hex(EIP778_KEY), ip="127.0.0.1", udp=30303)
    assert record.text() == EIP778_TEXT


def test_decoding_the_eip778_example() -> None:
    record = Enr.from_text(EIP778_TEXT)
    assert record.seq == 1
    assert record.ip == "127.0.0.1"
    assert record.udp == 30303
    assert (
        record.node_id.hex() == "a448f24c6d18e575453db13171562b71999873db5b286df957af199ec94617f7"
    )
    assert record.multiaddr() == (
        "/ip4/127.0.0.1/udp/30303/quic-v1/p2p/16Uiu2HAmSH2XVgZqYHWucap5kuPzLnt2TsNQkoppVxB5eJGvaXwm"
    )


def test_quic_record_round_trip() -> None:
    key = NodeKey.generate()
    record = Enr.create(key, ip="10.0.0.7", quic=9100, seq=7)
    decoded = Enr.from_text(record.text())
    assert decoded == record
    assert decoded.multiaddr() == f"/ip4/10.0.0.7/udp/9100/quic-v1/p2p/{key.peer_id}"


def test_tampered_record_fails_signature_check() -> None:
    raw = bytearray(Enr.from_text(EIP778_TEXT).encode())
    raw[-1] ^= 1  # change the udp port
    with pytest.raises(EnrError, match="signature"):
        Enr.decode(bytes(raw))


@pytest.mark.parametrize(
    "raw",
    [
        b"\x00",  # not a list
        bytes.fromhex(  # keys out of order (leanSpec non-canonical vector)
            "f851b840" + "00" * 64 + "01826970847f000001826964827634"
        ),
        b"\xc2\x80",  # list too short
        b"\xf8\x01\x80",  # long form for a short list
        b"\xc5\x83ab",  # truncated
        b"\xc0" * 301,  # over the size limit
    ],
    ids=[
        "malformed-rlp",
        "key-order",
        "too-short",
        "non-canonical-length",
        "truncated",
        "oversize",
    ],
)
def test_malformed_records_are_rejected(raw: bytes) -> None:
    with pytest.raises(EnrError):
        Enr.decode(raw)


def test_not_base64_is_rejected() -> None:
    with pytest.raises(EnrError):
        Enr.from_text("enr:" + "!" * 10)


def test_record_without_address_cannot_be_dialled() -> None:
    record = Enr.create(NodeKey.generate(), ip="127.0.0.1")
    with pytest.raises(EnrError, match="dial"):
        record.multiaddr()


@pytest.mark.parametrize(
    "item", [b"", b"\x01", b"\x80", b"x" * 60, [], [b"a", [b"b", b""]], [b"y" * 70] * 3]
)
def test_rlp_round_trip(item: bytes | list[object]) -> None:
    assert rlp_decode(rlp_encode(item)) == item  # type: ignore[arg-type]


def test_text_form_is_unpadded_urlsafe_base64() -> None:
    text = Enr.create(NodeKey.generate(), ip="127.0.0.1", quic=1).text()
    body = text.removeprefix("enr:")
    assert "=" not in body and "+" not in body and "/" not in body
    assert base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))

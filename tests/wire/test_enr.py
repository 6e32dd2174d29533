"""ENR: strict RLP, structure checks apart from the signature check, lean keys."""

from __future__ import annotations

import base64

import coincurve
import pytest

from lean_p2p.wire.enr import EnrError, EnrRecord, _keccak256, rlp_decode, rlp_encode


def _signed_record(pairs: list[tuple[bytes, bytes]], seq: int = 3) -> tuple[bytes, bytes]:
    key = coincurve.PrivateKey(b"\x01" * 32)
    pairs = sorted([(b"id", b"v4"), (b"secp256k1", key.public_key.format()), *pairs])
    content: list[bytes | list[object]] = [seq.to_bytes(1, "big")]
    for name, value in pairs:
        content += [name, value]
    digest = _keccak256(rlp_encode(content))  # type: ignore[arg-type]
    signature = key.sign_recoverable(digest, hasher=None)[:64]
    return rlp_encode([signature, *content]), key.public_key.format()  # type: ignore[list-item]


def test_signed_record_round_trips_and_verifies() -> None:
    raw, public_key = _signed_record(
        [
            (b"ip", bytes([10, 0, 0, 7])),
            (b"quic", (9001).to_bytes(2, "big")),
            (b"attnets", (0b1000_0001).to_bytes(8, "little")),
            (b"is_aggregator", b"\x01"),
        ]
    )
    text = "enr:" + base64.urlsafe_b64encode(raw).decode().rstrip("=")
    record = EnrRecord.from_text(text)
    assert record.encode() == raw
    assert record.seq == 3
    assert record.public_key == public_key
    assert record.is_valid() and record.signature_valid()
    assert record.multiaddr == "/ip4/10.0.0.7/udp/9001/quic-v1"
    assert record.attestation_subnets == [0, 7]
    assert record.is_aggregator
    assert record.node_id() == _keccak256(coincurve.PublicKey(public_key).format(False)[1:])


def test_tampered_record_is_structurally_valid_but_unsigned() -> None:
    raw, _ = _signed_record([(b"udp", (30303).to_bytes(2, "big"))])
    tampered = raw.replace((30303).to_bytes(2, "big"), (30304).to_bytes(2, "big"))
    record = EnrRecord.decode(tampered)
    assert record.is_valid()
    assert not record.signature_valid()


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x00",  # a string, not a list
        b"\x81\x05",  # single byte below 0x80 with a prefix
        b"\xb8\x01\x00",  # long form for a short string
        b"\xb9\x00\x38" + b"\x00" * 56,  # length with a leading zero
        b"\xc3\x01\x02",  # list runs past the input
        b"\xc1\x01\x02",  # trailing bytes
        b"\xff" * 301,  # over the size cap
        rlp_encode([b"\x00" * 63, b"\x01"]),  # short signature
        rlp_encode([b"\x00" * 64, b"\x01", b"id"]),  # odd pairs
        rlp_encode([b"\x00" * 64, b"\x01", b"ip", b"\x00", b"id", b"v4"]),  # unsorted
        rlp_encode([b"\x00" * 64, b"\x01", b"id", b"v4", b"id", b"v4"]),  # duplicate
        rlp_encode([b"\x00" * 64, b"\x01" * 9]),  # seq over 8 bytes
        rlp_encode([b"\x00" * 64, b"\x01", [b"k"], b"v"]),  # a key that is a list
    ],
)
def test_malformed_records_raise(raw: bytes) -> None:
    with pytest.raises(EnrError):
        EnrRecord.decode(raw)


def test_text_form_errors() -> None:
    with pytest.raises(EnrError):
        EnrRecord.from_text("enx:abc")
    with pytest.raises(EnrError):
        EnrRecord.from_text("enr:a")


def test_rlp_round_trip() -> None:
    item = [b"", b"\x7f", b"\x80", b"x" * 60, [b"nested", []]]
    assert rlp_decode(rlp_encode(item)) == item  # type: ignore[arg-type]

"""ENR (EIP-778 v4): the EIP-778 example, signing, verification, malformed records, RLP."""

from __future__ import annotations

import base64
from concurrent.futures import ThreadPoolExecutor

import coincurve
import pytest

from lean_p2p.wire.enr import (
    MAX_RLP_DEPTH,
    EnrError,
    EnrRecord,
    _keccak256,
    parse_enr,
    rlp_decode,
    rlp_encode,
)
from lean_p2p.wire.errors import WireError
from lean_p2p.wire.keys import NodeKey

# EIP-778's example: this private key, seq 1, ip 127.0.0.1, udp 30303.
EIP778_KEY = "b71c71a67e1177ad4e901695e1b4b9ee17ae16c6668d313eac2f96dbcda3f291"
EIP778_TEXT = (
    "enr:-IS4QHCYrYZbAKWCBRlAy5zzaDZXJBGkcnh4MHcBFZntXNFrdvJjX04jRzjzCBOonrkTfj499SZuOh8R33Ls8RR"
    "cy5wBgmlkgnY0gmlwhH8AAAGJc2VjcDI1NmsxoQPKY0yuDUmstAHYpMa2_oxVtw0RW_QAdpzBQA8yWM0xOIN1ZHCCdl8"
)
EIP778_NODE_ID = "a448f24c6d18e575453db13171562b71999873db5b286df957af199ec94617f7"
EIP778_PEER_ID = "16Uiu2HAmSH2XVgZqYHWucap5kuPzLnt2TsNQkoppVxB5eJGvaXwm"


def _signed(pairs: list[tuple[bytes, bytes]], seq: int = 3) -> bytes:
    """A record signed over exactly ``pairs`` (sorted here), bypassing create's checks."""
    key = NodeKey(b"\x01" * 32)
    content: list[bytes] = [seq.to_bytes(1, "big")]
    for name, value in sorted(pairs):
        content += [name, value]
    signature = key.sign_recoverable(_keccak256(rlp_encode(list(content))))[:64]
    return rlp_encode([signature, *content])


def _v4_pairs(*extra: tuple[bytes, bytes]) -> list[tuple[bytes, bytes]]:
    return [(b"id", b"v4"), (b"secp256k1", NodeKey(b"\x01" * 32).public_key), *extra]


def test_encoding_reproduces_the_eip778_example_byte_for_byte() -> None:
    record = EnrRecord.create(NodeKey.from_hex(EIP778_KEY), ip="127.0.0.1", udp=30303)
    assert record.text() == EIP778_TEXT


def test_decoding_and_verifying_the_eip778_example() -> None:
    record = parse_enr(EIP778_TEXT)
    assert record.seq == 1
    assert record.identity_scheme == "v4"
    assert record.ip4 == "127.0.0.1"
    assert (record.udp_port, record.quic_port, record.tcp_port) == (30303, None, None)
    node_id = record.node_id()
    assert node_id is not None and node_id.hex() == EIP778_NODE_ID
    assert record.peer_id == EIP778_PEER_ID
    # Without a quic key the udp port is where QUIC listens.
    assert record.dial_multiaddr() == f"/ip4/127.0.0.1/udp/30303/quic-v1/p2p/{EIP778_PEER_ID}"


def test_created_record_round_trips_through_its_text() -> None:
    key = NodeKey.generate()
    record = EnrRecord.create(key, ip="127.0.0.7", quic=9100, tcp=9000, seq=7)
    decoded = parse_enr(record.text())
    assert decoded == record
    assert decoded.encode() == record.encode()
    assert (decoded.seq, decoded.quic_port, decoded.tcp_port, decoded.udp_port) == (
        7,
        9100,
        9000,
        None,
    )
    assert decoded.public_key == key.public_key
    assert decoded.dial_multiaddr() == f"/ip4/127.0.0.7/udp/9100/quic-v1/p2p/{key.peer_id}"


def test_lean_keys_are_read_from_a_signed_record() -> None:
    raw = _signed(
        _v4_pairs(
            (b"ip", bytes([127, 0, 0, 7])),
            (b"quic", (9001).to_bytes(2, "big")),
            (b"attnets", (0b1000_0001).to_bytes(8, "little")),
            (b"is_aggregator", b"\x01"),
        )
    )
    text = "enr:" + base64.urlsafe_b64encode(raw).decode().rstrip("=")
    record = parse_enr(text)
    assert record.encode() == raw
    assert record.seq == 3
    assert record.is_valid() and record.signature_valid()
    assert record.multiaddr == "/ip4/127.0.0.7/udp/9001/quic-v1"
    assert record.attestation_subnets == [0, 7]
    assert record.is_aggregator
    public_key = NodeKey(b"\x01" * 32).public_key
    assert record.node_id() == _keccak256(coincurve.PublicKey(public_key).format(False)[1:])


def test_tampered_record_decodes_but_fails_verification() -> None:
    raw = bytearray(EnrRecord.from_text(EIP778_TEXT).encode())
    raw[-1] ^= 1  # the udp port's last byte
    record = EnrRecord.decode(bytes(raw))
    assert record.is_valid()
    assert not record.signature_valid()
    with pytest.raises(EnrError, match="signature"):
        record.verify()
    text = "enr:" + base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")
    with pytest.raises(EnrError, match="signature"):
        parse_enr(text)


@pytest.mark.parametrize(
    ("pairs", "message"),
    [
        ([(b"id", b"v5"), (b"secp256k1", NodeKey(b"\x01" * 32).public_key)], "not v4"),
        ([(b"id", b"v4")], "secp256k1"),
        ([(b"id", b"v4"), (b"secp256k1", b"\x02" * 32)], "secp256k1"),
        (_v4_pairs((b"ip", b"\x7f\x00\x01")), "ip must be 4 bytes"),
        (_v4_pairs((b"quic", b"\x01\x00\x00")), "quic"),
    ],
    ids=["not-v4", "no-key", "short-key", "short-ip", "wide-port"],
)
def test_signed_but_undialable_records_fail_verification(
    pairs: list[tuple[bytes, bytes]], message: str
) -> None:
    record = EnrRecord.decode(_signed(pairs))
    with pytest.raises(EnrError, match=message):
        record.verify()


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x00",  # a string, not a list
        b"\x81\x05",  # single byte below 0x80 with a prefix
        b"\xb8\x01\x00",  # long form for a short string
        b"\xb9\x00\x38" + b"\x00" * 56,  # length with a leading zero
        b"\xf8\x01\x80",  # long form for a short list
        b"\xc3\x01\x02",  # list runs past the input
        b"\xc5\x83ab",  # string runs past its list
        b"\xc1\x01\x02",  # trailing bytes
        b"\xc0" * 301,  # over the size cap
        b"\xc2\x80",  # list too short for [signature, seq]
        rlp_encode([b"\x00" * 63, b"\x01"]),  # short signature
        rlp_encode([b"\x00" * 64, b"\x01", b"id"]),  # odd pairs
        # keys out of order (the leanSpec non-canonical vector)
        bytes.fromhex("f851b840" + "00" * 64 + "01826970847f000001826964827634"),
        rlp_encode([b"\x00" * 64, b"\x01", b"id", b"v4", b"id", b"v4"]),  # duplicate
        rlp_encode([b"\x00" * 64, b"\x01" * 9]),  # seq over 8 bytes
        rlp_encode([b"\x00" * 64, b"\x01", [b"k"], b"v"]),  # a key that is a list
    ],
)
def test_malformed_records_raise_a_wire_error(raw: bytes) -> None:
    with pytest.raises(EnrError) as raised:
        EnrRecord.decode(raw)
    assert isinstance(raised.value, WireError)


@pytest.mark.parametrize("text", ["enx:abc", "-IS4QHCY", "enr:a", "enr:!!!!", "enr:" + "A" * 500])
def test_malformed_text_raises_enr_error(text: str) -> None:
    with pytest.raises(EnrError):
        parse_enr(text)


def test_text_form_is_unpadded_urlsafe_base64() -> None:
    text = EnrRecord.create(NodeKey.generate(), ip="127.0.0.1", quic=1).text()
    body = text.removeprefix("enr:")
    assert "=" not in body and "+" not in body and "/" not in body
    assert base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))


def test_record_without_address_cannot_be_dialled() -> None:
    record = EnrRecord.create(NodeKey.generate(), ip="127.0.0.1")
    assert record.verify() is record
    assert record.multiaddr is None
    with pytest.raises(EnrError, match="dial"):
        record.dial_multiaddr()


@pytest.mark.parametrize(
    ("ip", "port", "seq", "message"),
    [
        ("localhost", 9000, 1, "IPv4"),
        ("::1", 9000, 1, "IPv4"),
        ("127.0.0.1", 70000, 1, "out of range"),
        ("127.0.0.1", -1, 1, "out of range"),
        ("127.0.0.1", 9000, -1, "64-bit"),
        ("127.0.0.1", 9000, 1 << 64, "64-bit"),
    ],
)
def test_create_refuses_what_a_record_cannot_carry(
    ip: str, port: int, seq: int, message: str
) -> None:
    with pytest.raises(EnrError, match=message):
        EnrRecord.create(NodeKey.generate(), ip=ip, quic=port, seq=seq)


@pytest.mark.parametrize(
    "item",
    [b"", b"\x01", b"\x7f", b"\x80", b"x" * 60, [], [b"a", [b"b", b""]], [b"y" * 70] * 3],
)
def test_rlp_round_trip(item: bytes | list[object]) -> None:
    assert rlp_decode(rlp_encode(item)) == item  # type: ignore[arg-type]


def _nested_lists(depth: int) -> bytes:
    """``[[[...[]...]]]`` with ``depth`` lists around the innermost one, built without
    recursion (the encoder recurses)."""
    encoded = b"\xc0"
    for _ in range(depth):
        length = len(encoded)
        if length < 56:
            header = bytes((0xC0 + length,))
        else:
            size = length.to_bytes((length.bit_length() + 7) // 8, "big")
            header = bytes((0xF7 + len(size),)) + size
        encoded = header + encoded
    return encoded


def test_rlp_nesting_is_bounded() -> None:
    within = _nested_lists(MAX_RLP_DEPTH - 1)
    assert rlp_encode(rlp_decode(within)) == within
    with pytest.raises(EnrError, match="nested deeper"):
        rlp_decode(_nested_lists(MAX_RLP_DEPTH))
    with pytest.raises(EnrError, match="nested deeper"):
        rlp_decode(_nested_lists(10_000))  # far past Python's recursion limit


def test_records_from_many_threads_match_one_thread() -> None:
    # "Any thread": signing and verifying share coincurve's global context.
    keys = [NodeKey((index + 1).to_bytes(32, "big")) for index in range(16)]

    def round_trip(key: NodeKey) -> tuple[str, str]:
        record = EnrRecord.create(key, ip="127.0.0.1", quic=9000)
        return record.text(), parse_enr(record.text()).dial_multiaddr()

    expected = [round_trip(key) for key in keys]
    with ThreadPoolExecutor(max_workers=4) as pool:
        for _ in range(5):
            assert list(pool.map(round_trip, keys)) == expected

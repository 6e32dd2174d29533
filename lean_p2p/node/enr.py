"""Ethereum Node Records (EIP-778, identity scheme v4) for ``nodes.yaml``. Any thread.

Lean devnets have no discovery: ``nodes.yaml`` lists one ENR per node, and a node dials
``/ip4/<ip>/udp/<quic>/quic-v1/p2p/<peer id>`` from each. Only what that needs is here:
RLP, the v4 signature (keccak-256 over the RLP content, secp256k1), and the ``ip``,
``quic``, ``udp``, ``tcp`` and ``secp256k1`` keys. Decoding verifies the signature and
rejects non-canonical records with :class:`EnrError`.
"""

from __future__ import annotations

import base64
import ipaddress
from dataclasses import dataclass

import coincurve
from Crypto.Hash import keccak

from lean_p2p.node.keys import NodeKey, peer_id_from_public_key

__all__ = ["MAX_ENR_BYTES", "Enr", "EnrError", "rlp_decode", "rlp_encode"]

MAX_ENR_BYTES = 300  # EIP-778: a record's RLP is at most 300 bytes

RlpItem = bytes | list["RlpItem"]


class EnrError(ValueError):
    """A record that cannot be decoded, is not canonical, or has a bad signature."""


def _keccak256(data: bytes) -> bytes:
    return keccak.new(digest_bits=256, data=data).digest()


def _encode_length(length: int, short_offset: int) -> bytes:
    if length < 56:
        return bytes([short_offset + length])
    length_bytes = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([short_offset + 55 + len(length_bytes)]) + length_bytes


def rlp_encode(item: RlpItem) -> bytes:
    if isinstance(item, bytes):
        if len(item) == 1 and item[0] < 0x80:
            return item
        return _encode_length(len(item), 0x80) + item
    payload = b"".join(rlp_encode(element) for element in item)
    return _encode_length(len(payload), 0xC0) + payload


def _decode_at(data: bytes, offset: int) -> tuple[RlpItem, int]:
    if offset >= len(data):
        raise EnrError("truncated RLP")
    prefix = data[offset]
    if prefix < 0x80:
        return data[offset : offset + 1], offset + 1
    is_list = prefix >= 0xC0
    base = 0xC0 if is_list else 0x80
    if prefix - base < 56:
        length, start = prefix - base, offset + 1
        if not is_list and length == 1 and start < len(data) and data[start] < 0x80:
            raise EnrError("non-canonical RLP: single byte encoded as a string")
    else:
        length_size = prefix - base - 55
        length_bytes = data[offset + 1 : offset + 1 + length_size]
        if len(length_bytes) != length_size or length_bytes[:1] == b"\x00":
            raise EnrError("bad RLP length prefix")
        length, start = int.from_bytes(length_bytes, "big"), offset + 1 + length_size
        if length < 56:
            raise EnrError("non-canonical RLP: long form for a short item")
    end = start + length
    if end > len(data):
        raise EnrError("truncated RLP")
    if not is_list:
        return data[start:end], end
    elements: list[RlpItem] = []
    cursor = start
    while cursor < end:
        element, cursor = _decode_at(data, cursor)
        elements.append(element)
    if cursor != end:
        raise EnrError("RLP list overruns its length")
    return elements, end


def rlp_decode(data: bytes) -> RlpItem:
    item, end = _decode_at(data, 0)
    if end != len(data):
        raise EnrError("trailing bytes after RLP item")
    return item


def _uint(value: int) -> bytes:
    return value.to_bytes((value.bit_length() + 7) // 8, "big") if value else b""


def _as_uint(raw: RlpItem, name: str) -> int:
    if not isinstance(raw, bytes) or raw[:1] == b"\x00" or len(raw) > 8:
        raise EnrError(f"field {name!r} is not a canonical integer")
    return int.from_bytes(raw, "big")


@dataclass(frozen=True, slots=True)
class Enr:
    """A signed v4 node record (the fields a lean devnet uses)."""

    seq: int
    public_key: bytes  # compressed secp256k1, 33 bytes
    ip: str | None
    quic: int | None
    udp: int | None
    tcp: int | None
    signature: bytes  # 64 bytes r || s

    @classmethod
    def create(
        cls,
        key: NodeKey,
        *,
        ip: str,
        quic: int | None = None,
        udp: int | None = None,
        tcp: int | None = None,
        seq: int = 1,
    ) -> Enr:
        unsigned = cls(seq, key.public_key, ip, quic, udp, tcp, b"")
        digest = _keccak256(rlp_encode(unsigned._content()))
        signature = key.sign_recoverable(digest)[:64]
        return cls(seq, key.public_key, ip, quic, udp, tcp, signature)

    def _pairs(self) -> list[tuple[bytes, bytes]]:
        pairs = [(b"id", b"v4"), (b"secp256k1", self.public_key)]
        if self.ip is not None:
            pairs.append((b"ip", ipaddress.IPv4Address(self.ip).packed))
        for name, port in ((b"quic", self.quic), (b"tcp", self.tcp), (b"udp", self.udp)):
            if port is not None:
                pairs.append((name, _uint(port)))
        return sorted(pairs)

    def _content(self) -> list[RlpItem]:
        content: list[RlpItem] = [_uint(self.seq)]
        for name, value in self._pairs():
            content += [name, value]
        return content

    def encode(self) -> bytes:
        return rlp_encode([self.signature, *self._content()])

    def text(self) -> str:
        """The ``enr:...`` form (URL-safe base64 without padding)."""
        return "enr:" + base64.urlsafe_b64encode(self.encode()).decode("ascii").rstrip("=")

    @property
    def peer_id(self) -> str:
        return peer_id_from_public_key(self.public_key)

    @property
    def node_id(self) -> bytes:
        """keccak-256 of the uncompressed public key's coordinates (discv5 node id)."""
        point = coincurve.PublicKey(self.public_key).format(False)
        return _keccak256(point[1:])

    def multiaddr(self) -> str:
        """The QUIC-v1 address to dial this node at, including its peer id."""
        port = self.quic if self.quic is not None else self.udp
        if self.ip is None or port is None:
            raise EnrError("record has no ip and quic/udp port to dial")
        return f"/ip4/{self.ip}/udp/{port}/quic-v1/p2p/{self.peer_id}"

    @classmethod
    def from_text(cls, text: str) -> Enr:
        body = text.strip().removeprefix("enr:")
        try:
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        except ValueError as error:
            raise EnrError(f"not base64: {error}") from error
        return cls.decode(raw)

    @classmethod
    def decode(cls, raw: bytes) -> Enr:
        if len(raw) > MAX_ENR_BYTES:
            raise EnrError(f"record is {len(raw)} bytes, limit {MAX_ENR_BYTES}")
        item = rlp_decode(raw)
        if not isinstance(item, list) or len(item) < 2 or len(item) % 2 != 0:
            raise EnrError("record must be a list [signature, seq, key, value, ...]")
        signature, seq_raw, *rest = item
        if not isinstance(signature, bytes) or len(signature) != 64:
            raise EnrError("signature must be 64 bytes")
        fields: dict[bytes, RlpItem] = {}
        previous = b""
        for index in range(0, len(rest), 2):
            name = rest[index]
            if not isinstance(name, bytes) or name <= previous:
                raise EnrError("keys must be unique and sorted")
            fields[name] = rest[index + 1]
            previous = name
        if fields.get(b"id") != b"v4":
            raise EnrError("only identity scheme v4 is supported")
        public_key = fields.get(b"secp256k1")
        if not isinstance(public_key, bytes) or len(public_key) != 33:
            raise EnrError("missing or malformed secp256k1 key")
        ip_raw = fields.get(b"ip")
        if ip_raw is not None and (not isinstance(ip_raw, bytes) or len(ip_raw) != 4):
            raise EnrError("ip must be 4 bytes")
        ports = {
            name: _as_uint(fields[name.encode()], name) if name.encode() in fields else None
            for name in ("quic", "udp", "tcp")
        }
        record = cls(
            seq=_as_uint(seq_raw, "seq"),
            public_key=public_key,
            ip=str(ipaddress.IPv4Address(ip_raw)) if isinstance(ip_raw, bytes) else None,
            quic=ports["quic"],
            udp=ports["udp"],
            tcp=ports["tcp"],
            signature=signature,
        )
        record._verify(rlp_encode([seq_raw, *rest]))
        return record

    def _verify(self, content_rlp: bytes) -> None:
        digest = _keccak256(content_rlp)
        try:
            verified = coincurve.PublicKey(self.public_key).verify(
                coincurve.ecdsa.cdata_to_der(coincurve.ecdsa.deserialize_compact(self.signature)),
                digest,
                hasher=None,
            )
        except (ValueError, TypeError) as error:
            raise EnrError(f"bad signature: {error}") from error
        if not verified:
            raise EnrError("signature does not match the record")

"""Ethereum Node Records (EIP-778, identity scheme v4) and their RLP. Any thread.

The project's one ENR implementation. Lean devnets have no discovery: ``nodes.yaml``
lists one ENR per node, and a node dials each at
``/ip4/<ip>/udp/<quic>/quic-v1/p2p/<peer id>``.

- :meth:`EnrRecord.decode` / :meth:`EnrRecord.from_text` check only the structure
  (canonical RLP, at most 300 bytes, a 64-byte signature, keys unique and sorted), so a
  caller (the leanSpec vectors) can tell a malformed record from a forged one;
- :meth:`EnrRecord.verify` (and :func:`parse_enr`, text to verified record) also
  require ``id`` ``v4``, a 33-byte ``secp256k1`` key, a well-formed ``ip`` and a valid
  signature (secp256k1 over keccak-256 of the RLP content): what a peer to dial needs;
- :meth:`EnrRecord.create` builds and signs a record from a :class:`NodeKey`.

The accessors read the keys a lean node advertises: ``ip``, ``udp``, ``quic``, ``tcp``,
``secp256k1``, ``eth2``, ``attnets`` and ``is_aggregator``. Every malformed input
raises :class:`EnrError` (a :class:`WireError`).
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
from dataclasses import dataclass
from typing import Final

import coincurve
from coincurve.ecdsa import cdata_to_der, deserialize_compact
from Crypto.Hash import keccak

from lean_p2p.wire.errors import WireError
from lean_p2p.wire.keys import NodeKey
from lean_p2p.wire.peer_id import KeyType, peer_id

__all__ = [
    "MAX_ENR_BYTES",
    "MAX_RLP_DEPTH",
    "EnrError",
    "EnrRecord",
    "Eth2Data",
    "RlpItem",
    "parse_enr",
    "rlp_decode",
    "rlp_encode",
]

MAX_ENR_BYTES: Final = 300
MAX_RLP_DEPTH: Final = 32
_SIGNATURE_BYTES: Final = 64
_ATTNETS_BYTES: Final = 8
_ETH2_BYTES: Final = 16
_PUBLIC_KEY_BYTES: Final = 33
_IP4_BYTES: Final = 4

RlpItem = bytes | list["RlpItem"]


class EnrError(WireError):
    """A record that is not canonical RLP or not a well-formed ENR."""


# -- RLP -------------------------------------------------------------------------------


def _length_prefix(length: int, short_base: int) -> bytes:
    if length < 56:
        return bytes((short_base + length,))
    encoded = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes((short_base + 55 + len(encoded),)) + encoded


def rlp_encode(item: RlpItem) -> bytes:
    if isinstance(item, bytes):
        if len(item) == 1 and item[0] < 0x80:
            return item
        return _length_prefix(len(item), 0x80) + item
    payload = b"".join(rlp_encode(element) for element in item)
    return _length_prefix(len(payload), 0xC0) + payload


def _header(data: bytes, position: int, short_base: int) -> tuple[int, int]:
    """(payload length, payload start) of the item whose prefix byte is at ``position``."""
    short_length = data[position] - short_base
    if short_length < 56:
        return short_length, position + 1
    size = short_length - 55
    raw = data[position + 1 : position + 1 + size]
    if len(raw) < size:
        raise EnrError("RLP length runs past the input")
    if raw[0] == 0:
        raise EnrError("RLP length has a leading zero")
    length = int.from_bytes(raw, "big")
    if length < 56:
        raise EnrError("RLP long form used for a short item")
    return length, position + 1 + size


def _decode_item(data: bytes, position: int, depth: int) -> tuple[RlpItem, int]:
    if position >= len(data):
        raise EnrError("RLP input ends early")
    prefix = data[position]
    if prefix < 0x80:
        return data[position : position + 1], position + 1
    if prefix < 0xC0:
        length, start = _header(data, position, 0x80)
        if length == 1 and start < len(data) and data[start] < 0x80:
            raise EnrError("RLP single byte below 0x80 must not carry a prefix")
        end = start + length
        if end > len(data):
            raise EnrError("RLP string runs past the input")
        return data[start:end], end
    # Bounded so that hostile nesting is a typed error, not a RecursionError.
    if depth >= MAX_RLP_DEPTH:
        raise EnrError(f"RLP lists nested deeper than {MAX_RLP_DEPTH}")
    length, start = _header(data, position, 0xC0)
    end = start + length
    if end > len(data):
        raise EnrError("RLP list runs past the input")
    items: list[RlpItem] = []
    cursor = start
    while cursor < end:
        item, cursor = _decode_item(data, cursor, depth + 1)
        items.append(item)
    if cursor != end:
        raise EnrError("RLP list items overrun the list")
    return items, end


def rlp_decode(data: bytes) -> RlpItem:
    """One canonical RLP item spanning all of ``data``."""
    item, end = _decode_item(data, 0, 0)
    if end != len(data):
        raise EnrError(f"{len(data) - end} bytes after the RLP item")
    return item


# -- records ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Eth2Data:
    fork_digest: bytes
    next_fork_version: bytes
    next_fork_epoch: int


def _integer(raw: RlpItem, name: str, max_bytes: int) -> int:
    if not isinstance(raw, bytes) or len(raw) > max_bytes:
        raise EnrError(f"{name} is not an integer of at most {max_bytes} bytes")
    return int.from_bytes(raw, "big")


def _integer_bytes(value: int) -> bytes:
    """Big-endian without leading zeros (RLP's integers: zero is the empty string)."""
    return value.to_bytes((value.bit_length() + 7) // 8, "big")


def _keccak256(data: bytes) -> bytes:
    return keccak.new(digest_bits=256, data=data).digest()


@dataclass(frozen=True, slots=True)
class EnrRecord:
    """A structurally valid record: signature, sequence number, sorted key/value pairs."""

    signature: bytes
    seq: int
    pairs: tuple[tuple[bytes, RlpItem], ...]

    @classmethod
    def create(
        cls,
        key: NodeKey,
        *,
        ip: str | None = None,
        quic: int | None = None,
        udp: int | None = None,
        tcp: int | None = None,
        seq: int = 1,
    ) -> EnrRecord:
        """A v4 record signed by ``key``, advertising the given address and ports."""
        if not 0 <= seq < 1 << 64:
            raise EnrError(f"seq {seq} is not a 64-bit unsigned integer")
        pairs: list[tuple[bytes, RlpItem]] = [(b"id", b"v4"), (b"secp256k1", key.public_key)]
        if ip is not None:
            try:
                pairs.append((b"ip", ipaddress.IPv4Address(ip).packed))
            except ValueError as error:
                raise EnrError(f"not an IPv4 address: {error}") from None
        for name, port in ((b"quic", quic), (b"tcp", tcp), (b"udp", udp)):
            if port is not None:
                if not 0 <= port <= 0xFFFF:
                    raise EnrError(f"{name.decode()} port {port} is out of range")
                pairs.append((name, _integer_bytes(port)))
        unsigned = cls(b"", seq, tuple(sorted(pairs)))
        digest = _keccak256(rlp_encode(unsigned.content()))
        # A v4 signature is the 64-byte r || s; the recovery byte is dropped.
        return cls(key.sign_recoverable(digest)[:_SIGNATURE_BYTES], seq, unsigned.pairs)

    @classmethod
    def decode(cls, raw: bytes) -> EnrRecord:
        """The structure of a record; the signature is not checked (see :meth:`verify`)."""
        if len(raw) > MAX_ENR_BYTES:
            raise EnrError(f"record is {len(raw)} bytes, over the {MAX_ENR_BYTES}-byte cap")
        item = rlp_decode(raw)
        if not isinstance(item, list) or len(item) < 2 or len(item) % 2:
            raise EnrError("a record is an RLP list [signature, seq, key, value, ...]")
        signature, seq, *rest = item
        if not isinstance(signature, bytes) or len(signature) != _SIGNATURE_BYTES:
            raise EnrError("the signature must be 64 bytes")
        pairs: list[tuple[bytes, RlpItem]] = []
        for index in range(0, len(rest), 2):
            key = rest[index]
            if not isinstance(key, bytes):
                raise EnrError("a key must be a byte string")
            if pairs and key <= pairs[-1][0]:
                raise EnrError("keys must be unique and in lexicographic order")
            pairs.append((key, rest[index + 1]))
        return cls(signature, _integer(seq, "seq", 8), tuple(pairs))

    @classmethod
    def from_text(cls, text: str) -> EnrRecord:
        """The structure of an ``enr:<base64url>`` record (see :meth:`decode`)."""
        body = text.strip()
        if not body.startswith("enr:"):
            raise EnrError("an ENR text starts with 'enr:'")
        body = body[4:]
        try:
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        except (binascii.Error, ValueError) as error:
            raise EnrError(f"not URL-safe base64: {error}") from None
        return cls.decode(raw)

    def verify(self) -> EnrRecord:
        """This record, if it is a dialable v4 record with a valid signature; else EnrError."""
        if self.identity_scheme != "v4":
            raise EnrError(f"identity scheme {self.identity_scheme!r} is not v4")
        if self.public_key is None:
            raise EnrError("missing or malformed secp256k1 key")
        ip = self.get("ip")
        if ip is not None and len(ip) != _IP4_BYTES:
            raise EnrError(f"ip must be {_IP4_BYTES} bytes, got {len(ip)}")
        for port in ("quic", "udp", "tcp"):
            self._port(port)  # raises on a port wider than 2 bytes
        if not self.signature_valid():
            raise EnrError("the signature does not match the record")
        return self

    def content(self) -> list[RlpItem]:
        """What the signature covers: ``[seq, key, value, ...]``."""
        items: list[RlpItem] = [_integer_bytes(self.seq)]
        for key, value in self.pairs:
            items += [key, value]
        return items

    def encode(self) -> bytes:
        return rlp_encode([self.signature, *self.content()])

    def text(self) -> str:
        """The ``enr:...`` form: URL-safe base64 without padding."""
        return "enr:" + base64.urlsafe_b64encode(self.encode()).decode("ascii").rstrip("=")

    def get(self, key: str) -> bytes | None:
        wanted = key.encode()
        for name, value in self.pairs:
            if name == wanted:
                return value if isinstance(value, bytes) else None
        return None

    @property
    def identity_scheme(self) -> str | None:
        raw = self.get("id")
        return raw.decode("ascii", errors="replace") if raw is not None else None

    @property
    def public_key(self) -> bytes | None:
        """The compressed secp256k1 key (33 bytes), when present and well-sized."""
        raw = self.get("secp256k1")
        return raw if raw is not None and len(raw) == _PUBLIC_KEY_BYTES else None

    @property
    def peer_id(self) -> str | None:
        """The libp2p peer id (``16Uiu2...``) of the record's key, when it has one."""
        public_key = self.public_key
        return None if public_key is None else peer_id(KeyType.SECP256K1, public_key)

    def is_valid(self) -> bool:
        """Structurally usable: identity scheme ``v4`` with a 33-byte public key."""
        return self.identity_scheme == "v4" and self.public_key is not None

    @property
    def ip4(self) -> str | None:
        raw = self.get("ip")
        if raw is None or len(raw) != _IP4_BYTES:
            return None
        return str(ipaddress.IPv4Address(raw))

    def _port(self, key: str) -> int | None:
        raw = self.get(key)
        return _integer(raw, key, 2) if raw else None

    @property
    def udp_port(self) -> int | None:
        return self._port("udp")

    @property
    def quic_port(self) -> int | None:
        return self._port("quic")

    @property
    def tcp_port(self) -> int | None:
        return self._port("tcp")

    @property
    def multiaddr(self) -> str | None:
        """Where to dial over QUIC: the ``quic`` port, else the ``udp`` one."""
        port = self.quic_port or self.udp_port
        if self.ip4 is None or not port:
            return None
        return f"/ip4/{self.ip4}/udp/{port}/quic-v1"

    def dial_multiaddr(self) -> str:
        """:attr:`multiaddr` with ``/p2p/<peer id>``; EnrError when either is missing."""
        address, identity = self.multiaddr, self.peer_id
        if address is None or identity is None:
            raise EnrError("record has no ip, quic/udp port and key to dial")
        return f"{address}/p2p/{identity}"

    @property
    def eth2(self) -> Eth2Data | None:
        raw = self.get("eth2")
        if raw is None or len(raw) < _ETH2_BYTES:
            return None
        return Eth2Data(raw[0:4], raw[4:8], int.from_bytes(raw[8:16], "little"))

    @property
    def attestation_subnets(self) -> list[int] | None:
        """Subnets set in ``attnets`` (an SSZ Bitvector[64]); ``None`` when absent."""
        raw = self.get("attnets")
        if raw is None or len(raw) != _ATTNETS_BYTES:
            return None
        bits = int.from_bytes(raw, "little")
        return [subnet for subnet in range(64) if bits >> subnet & 1]

    @property
    def is_aggregator(self) -> bool:
        raw = self.get("is_aggregator")
        return raw == b"\x01"

    def node_id(self) -> bytes | None:
        """keccak-256 of the uncompressed public key's coordinates (the discv5 node id)."""
        if self.public_key is None:
            return None
        try:
            point = coincurve.PublicKey(self.public_key).format(compressed=False)
        except ValueError:
            return None
        return _keccak256(point[1:])

    def signature_valid(self) -> bool:
        """Whether the ``v4`` signature (secp256k1 over keccak-256 of the content) holds."""
        if not self.is_valid() or self.public_key is None:
            return False
        digest = _keccak256(rlp_encode(self.content()))
        try:
            signature = cdata_to_der(deserialize_compact(self.signature))
            verified: bool = coincurve.PublicKey(self.public_key).verify(
                signature, digest, hasher=None
            )
        except (ValueError, TypeError):
            return False
        return verified


def parse_enr(text: str) -> EnrRecord:
    """Decode an ``enr:...`` record and :meth:`~EnrRecord.verify` it: a peer to dial."""
    return EnrRecord.from_text(text).verify()

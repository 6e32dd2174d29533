"""Ethereum Node Records (EIP-778) for the static peers of ``nodes.yaml``. Any thread.

Lean devnets list their nodes as ENRs (``enr:`` + base64url of an RLP list
``[signature, seq, key, value, ...]``) carrying ``id=v4``, ``ip``, ``quic`` and the
33-byte compressed ``secp256k1`` key. :func:`parse_enr` decodes one, verifies its v4
signature (secp256k1 over keccak-256 of the RLP content) and yields the QUIC-v1
multiaddr to dial. Every malformed record raises :class:`EnrError`.
"""

from __future__ import annotations

import base64
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

__all__ = ["EnrError", "EnrRecord", "encode_enr", "load_nodes_yaml", "parse_enr"]

MAX_ENR_SIZE: Final = 300


class EnrError(ValueError):
    """A node record that is malformed, unsigned or lacks what a lean peer needs."""


@dataclass(frozen=True, slots=True)
class EnrRecord:
    seq: int
    public_key: bytes  # 33-byte compressed secp256k1
    ip: str | None
    quic_port: int | None
    peer_id: str

    def multiaddr(self) -> str:
        """``/ip4/<ip>/udp/<quic>/quic-v1/p2p/<peer id>``; raises if ip or quic is absent."""
        if self.ip is None or self.quic_port is None:
            raise EnrError(f"record of {self.peer_id} has no ip and quic port to dial")
        return f"/ip4/{self.ip}/udp/{self.quic_port}/quic-v1/p2p/{self.peer_id}"


# ------------------------------------------------------------------------ RLP

RlpItem = bytes | list["RlpItem"]


def _rlp_decode(data: bytes) -> RlpItem:
    item, end = _rlp_item(data, 0)
    if end != len(data):
        raise EnrError("trailing bytes after the RLP list")
    return item


def _rlp_length(data: bytes, offset: int, size_of_size: int) -> tuple[int, int]:
    end = offset + size_of_size
    if end > len(data):
        raise EnrError("truncated RLP length")
    if data[offset] == 0:
        raise EnrError("non-canonical RLP length")
    return int.from_bytes(data[offset:end], "big"), end


def _rlp_item(data: bytes, offset: int) -> tuple[RlpItem, int]:
    if offset >= len(data):
        raise EnrError("truncated RLP item")
    prefix = data[offset]
    if prefix < 0x80:
        return data[offset : offset + 1], offset + 1
    if prefix < 0xB8:
        length, start = prefix - 0x80, offset + 1
    elif prefix < 0xC0:
        length, start = _rlp_length(data, offset + 1, prefix - 0xB7)
    elif prefix < 0xF8:
        return _rlp_list(data, offset + 1, prefix - 0xC0)
    else:
        length, start = _rlp_length(data, offset + 1, prefix - 0xF7)
        return _rlp_list(data, start, length)
    if start + length > len(data):
        raise EnrError("truncated RLP string")
    value = data[start : start + length]
    if length == 1 and value[0] < 0x80:
        raise EnrError("non-canonical single-byte RLP string")
    return value, start + length


def _rlp_list(data: bytes, start: int, length: int) -> tuple[RlpItem, int]:
    end = start + length
    if end > len(data):
        raise EnrError("truncated RLP list")
    items: list[RlpItem] = []
    offset = start
    while offset < end:
        item, offset = _rlp_item(data, offset)
        items.append(item)
    if offset != end:
        raise EnrError("RLP list items overrun the list")
    return items, end


def _rlp_encode(item: RlpItem) -> bytes:
    if isinstance(item, bytes):
        if len(item) == 1 and item[0] < 0x80:
            return item
        return _rlp_prefix(len(item), 0x80) + item
    body = b"".join(_rlp_encode(element) for element in item)
    return _rlp_prefix(len(body), 0xC0) + body


def _rlp_prefix(length: int, base: int) -> bytes:
    if length < 56:
        return bytes([base + length])
    size = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([base + 55 + len(size)]) + size


def _int_bytes(value: int) -> bytes:
    return value.to_bytes((value.bit_length() + 7) // 8, "big") if value else b""


# ------------------------------------------------------------------------ ENR


def _keccak256(data: bytes) -> bytes:
    from Crypto.Hash import keccak

    return bytes(keccak.new(digest_bits=256, data=data).digest())


def parse_enr(text: str) -> EnrRecord:
    """Decode and verify one ``enr:...`` record."""
    import coincurve

    from lean_p2p.driver.host import peer_id_from_public_key

    text = text.strip()
    if not text.startswith("enr:"):
        raise EnrError("an ENR starts with 'enr:'")
    body = text[4:]
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except ValueError as error:
        raise EnrError(f"bad base64: {error}") from None
    if len(raw) > MAX_ENR_SIZE:
        raise EnrError(f"record of {len(raw)} bytes is over {MAX_ENR_SIZE}")
    items = _rlp_decode(raw)
    if not isinstance(items, list) or len(items) < 2 or len(items) % 2:
        raise EnrError("an ENR is an RLP list [signature, seq, key, value, ...]")
    if not all(isinstance(item, bytes) for item in items):
        raise EnrError("nested lists in ENR values are not supported")
    signature, seq_bytes, *pairs = (item for item in items if isinstance(item, bytes))
    fields: dict[bytes, bytes] = {}
    keys = pairs[0::2]
    if keys != sorted(keys) or len(set(keys)) != len(keys):
        raise EnrError("ENR keys must be sorted and unique")
    for key, value in zip(pairs[0::2], pairs[1::2], strict=True):
        fields[key] = value
    if fields.get(b"id") != b"v4":
        raise EnrError("only the v4 identity scheme is supported")
    public_key = fields.get(b"secp256k1")
    if public_key is None or len(public_key) != 33:
        raise EnrError("missing or malformed secp256k1 key")
    if len(signature) != 64:
        raise EnrError("a v4 signature is 64 bytes")
    content = _rlp_encode(list(items[1:]))
    try:
        from coincurve.ecdsa import cdata_to_der, deserialize_compact

        verifier = coincurve.PublicKey(public_key)
        valid = verifier.verify(
            cdata_to_der(deserialize_compact(signature)), _keccak256(content), hasher=None
        )
    except Exception as error:
        raise EnrError(f"cannot verify signature: {error}") from None
    if not valid:
        raise EnrError("bad ENR signature")
    ip = fields.get(b"ip")
    if ip is not None and len(ip) != 4:
        raise EnrError("ip must be 4 bytes")
    quic = fields.get(b"quic")
    if quic is not None and not 0 < len(quic) <= 2:
        raise EnrError("quic port must be 1-2 bytes")
    return EnrRecord(
        seq=int.from_bytes(seq_bytes, "big"),
        public_key=public_key,
        ip=socket.inet_ntoa(ip) if ip is not None else None,
        quic_port=int.from_bytes(quic, "big") if quic is not None else None,
        peer_id=peer_id_from_public_key(public_key),
    )


def encode_enr(secret: bytes, *, ip: str, quic_port: int, seq: int = 1) -> str:
    """Build and sign a v4 record (for tests and for writing devnet ``nodes.yaml``)."""
    import coincurve

    key = coincurve.PrivateKey(secret)
    pairs: list[tuple[bytes, bytes]] = sorted(
        [
            (b"id", b"v4"),
            (b"ip", socket.inet_aton(ip)),
            (b"quic", _int_bytes(quic_port)),
            (b"secp256k1", key.public_key.format(compressed=True)),
        ]
    )
    content: list[RlpItem] = [_int_bytes(seq)]
    for name, value in pairs:
        content += [name, value]
    signature = key.sign_recoverable(_keccak256(_rlp_encode(content)), hasher=None)[:64]
    record = _rlp_encode([signature, *content])
    return "enr:" + base64.urlsafe_b64encode(record).decode().rstrip("=")


def load_nodes_yaml(path: str | os.PathLike[str]) -> list[EnrRecord]:
    """Parse a ``nodes.yaml``: a list of ENR strings (or of mappings with an ``enr``)."""
    import yaml

    try:
        document: Any = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise EnrError(f"cannot read {os.fspath(path)!r}: {error}") from None
    if document is None:
        return []
    if not isinstance(document, list):
        raise EnrError("nodes.yaml must hold a list of ENRs")
    records: list[EnrRecord] = []
    for entry in document:
        text = entry.get("enr") if isinstance(entry, dict) else entry
        if not isinstance(text, str):
            raise EnrError(f"not an ENR entry: {entry!r}")
        records.append(parse_enr(text))
    return records

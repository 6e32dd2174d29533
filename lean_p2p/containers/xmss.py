"""SSZ types of the XMSS signature scheme, sized by the active scheme. Any thread.

Signatures and public keys travel as opaque fixed-size bytes (nothing here verifies
them), but their ``hash_tree_root`` is that of the structured containers leanSpec
declares:

- ``PublicKey {root: Vector[Fp, 8], parameter: Vector[Fp, 5]}`` (52 bytes);
- ``Signature {path: HashTreeOpening, rho: Vector[Fp, 7], hashes: List[digest, N]}``
  with ``HashTreeOpening {siblings: List[digest, N]}``. Its lists are pinned to
  ``log_lifetime`` siblings and ``dimension`` hashes, so the encoding has one fixed size
  and one valid set of offsets; decoding checks those offsets, and (as leanSpec's
  ``Fp`` does) that every field element is below the KoalaBear modulus.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from typing import Final

from lean_p2p.containers.merkle import merkleize_chunks, mix_in_length
from lean_p2p.containers.scheme import FIELD_ELEMENT_BYTES, XmssScheme, active_scheme
from lean_p2p.containers.ssz import (
    UINT64,
    ContainerType,
    ListType,
    SSZError,
    SSZType,
    UintType,
    VectorType,
)

__all__ = [
    "FIELD_MODULUS",
    "FP",
    "PUBLIC_KEY",
    "SIGNATURE",
    "FieldElementType",
    "HashTreeLayer",
    "HashTreeOpening",
    "PublicKeyType",
    "SignatureType",
    "hash_tree_layer_type",
    "hash_tree_opening_type",
    "signature_from_parts",
]

#: The KoalaBear prime 2^31 - 2^24 + 1.
FIELD_MODULUS: Final = 2**31 - 2**24 + 1

_U32 = struct.Struct("<I")


class FieldElementType(UintType):
    """``Fp``: a KoalaBear field element, a uint32 below the modulus."""

    def __init__(self) -> None:
        super().__init__(FIELD_ELEMENT_BYTES)
        self.maximum = FIELD_MODULUS - 1

    def __repr__(self) -> str:
        return "Fp"

    def decode(self, data: bytes) -> int:
        value = super().decode(data)
        if value > self.maximum:
            raise SSZError(f"{value} is not below the field modulus {FIELD_MODULUS}")
        return value


FP: Final = FieldElementType()


def _pad_chunk(data: bytes) -> bytes:
    return data.ljust(32, b"\x00")


def _digest_list_root(blob: bytes, digest_bytes: int, limit: int) -> bytes:
    digests = [blob[i : i + digest_bytes] for i in range(0, len(blob), digest_bytes)]
    # A digest is 8 field elements = exactly one chunk, so it is its own root.
    return mix_in_length(merkleize_chunks(digests, limit), len(digests))


# The modulus is 0x7F000001: a word whose top byte is below 0x7F is always a valid
# element, so a regex over the top bytes (C speed, ~0.2 us) clears almost every
# signature; only a top byte of 0x7F or more needs the exact comparison.
_HIGH_TOP_BYTE: Final = re.compile(rb"[\x7f-\xff]")


def _check_field_elements(data: bytes, start: int, end: int) -> None:
    """Raise unless every little-endian uint32 in ``data[start:end]`` is below the modulus."""
    if _HIGH_TOP_BYTE.search(data[start + 3 : end : FIELD_ELEMENT_BYTES]) is None:
        return
    count = (end - start) // FIELD_ELEMENT_BYTES
    if max(struct.unpack_from(f"<{count}I", data, start)) >= FIELD_MODULUS:
        raise SSZError(f"a field element is not below the modulus {FIELD_MODULUS}")


class SignatureType(SSZType[bytes]):
    """An XMSS signature as ``bytes`` of the active scheme's size."""

    def __repr__(self) -> str:
        return "Signature"

    def is_fixed(self) -> bool:
        return True

    def fixed_size(self) -> int:
        return active_scheme().signature_size

    @staticmethod
    def _offsets(scheme: XmssScheme) -> tuple[int, int, int]:
        """The only valid (path, hashes, siblings) offsets of a well-formed signature."""
        fixed_part = 4 + scheme.rand_length * FIELD_ELEMENT_BYTES + 4
        hashes_offset = fixed_part + 4 + scheme.log_lifetime * scheme.digest_bytes
        return fixed_part, hashes_offset, 4

    def check(self, data: bytes) -> None:
        """Raise :class:`SSZError` unless ``data`` is a well-formed signature encoding."""
        scheme = active_scheme()
        if len(data) != scheme.signature_size:
            raise SSZError(f"a signature is {scheme.signature_size} bytes, got {len(data)}")
        path_offset, hashes_offset, siblings_offset = self._offsets(scheme)
        rho_end = 4 + scheme.rand_length * FIELD_ELEMENT_BYTES
        found = (
            _U32.unpack_from(data, 0)[0],
            _U32.unpack_from(data, rho_end)[0],
            _U32.unpack_from(data, path_offset)[0],
        )
        if found != (path_offset, hashes_offset, siblings_offset):
            raise SSZError(f"signature offsets {found} are not {path_offset, hashes_offset, 4}")
        # Every other 4-byte word is a field element (rho, siblings, hashes).
        _check_field_elements(data, 4, rho_end)
        _check_field_elements(data, path_offset + 4, len(data))

    def encode(self, value: bytes) -> bytes:
        self.check(value)
        return bytes(value)

    def decode(self, data: bytes) -> bytes:
        self.check(data)
        return bytes(data)

    def hash_tree_root(self, value: bytes) -> bytes:
        self.check(value)
        scheme = active_scheme()
        path_offset, hashes_offset, _ = self._offsets(scheme)
        limit = scheme.node_list_limit
        rho = value[4 : 4 + scheme.rand_length * FIELD_ELEMENT_BYTES]
        # HashTreeOpening has one field, so its root is the siblings list's root.
        path_root = _digest_list_root(
            value[path_offset + 4 : hashes_offset], scheme.digest_bytes, limit
        )
        hashes_root = _digest_list_root(value[hashes_offset:], scheme.digest_bytes, limit)
        return merkleize_chunks([path_root, _pad_chunk(rho), hashes_root])


class PublicKeyType(SSZType[bytes]):
    """An XMSS public key as ``bytes`` (52 in both schemes), hashed as its container."""

    def __repr__(self) -> str:
        return "PublicKey"

    def is_fixed(self) -> bool:
        return True

    def fixed_size(self) -> int:
        return active_scheme().public_key_size

    def encode(self, value: bytes) -> bytes:
        self._expect_size(value)
        return bytes(value)

    def decode(self, data: bytes) -> bytes:
        self._expect_size(data)
        _check_field_elements(data, 0, len(data))
        return bytes(data)

    def hash_tree_root(self, value: bytes) -> bytes:
        self._expect_size(value)
        digest_bytes = active_scheme().digest_bytes
        return merkleize_chunks([value[:digest_bytes], _pad_chunk(value[digest_bytes:])])


def signature_from_parts(
    rho: bytes = b"", siblings: bytes = b"", hashes: bytes = b"", scheme: XmssScheme | None = None
) -> bytes:
    """Encode a signature from its raw parts, each zero-filled to the scheme's size.

    With no arguments: the well-formed all-zero signature (what mocked-crypto vectors
    carry), useful wherever a structurally valid placeholder is needed.
    """
    scheme = scheme or active_scheme()
    rho_size = scheme.rand_length * FIELD_ELEMENT_BYTES
    siblings_size = scheme.log_lifetime * scheme.digest_bytes
    hashes_size = scheme.dimension * scheme.digest_bytes
    if len(rho) > rho_size or len(siblings) > siblings_size or len(hashes) > hashes_size:
        raise ValueError("a signature part is longer than the scheme allows")
    path_offset = 4 + rho_size + 4
    hashes_offset = path_offset + 4 + siblings_size
    return b"".join(
        (
            _U32.pack(path_offset),
            rho.ljust(rho_size, b"\x00"),
            _U32.pack(hashes_offset),
            _U32.pack(4),
            siblings.ljust(siblings_size, b"\x00"),
            hashes.ljust(hashes_size, b"\x00"),
        )
    )


SIGNATURE: Final = SignatureType()
PUBLIC_KEY: Final = PublicKeyType()


@dataclass(frozen=True, slots=True)
class HashTreeOpening:
    """A Merkle authentication path: sibling digests from the leaf upward."""

    siblings: tuple[tuple[int, ...], ...]


@dataclass(frozen=True, slots=True)
class HashTreeLayer:
    """One stored layer of a sparse XMSS subtree."""

    start_index: int
    nodes: tuple[tuple[int, ...], ...]


def _digest_list_type(scheme: XmssScheme) -> ListType:
    return ListType(VectorType(FP, scheme.hash_length), scheme.node_list_limit)


def hash_tree_opening_type(scheme: XmssScheme | None = None) -> ContainerType[HashTreeOpening]:
    scheme = scheme or active_scheme()
    return ContainerType(HashTreeOpening, [("siblings", _digest_list_type(scheme))])


def hash_tree_layer_type(scheme: XmssScheme | None = None) -> ContainerType[HashTreeLayer]:
    scheme = scheme or active_scheme()
    return ContainerType(
        HashTreeLayer, [("start_index", UINT64), ("nodes", _digest_list_type(scheme))]
    )

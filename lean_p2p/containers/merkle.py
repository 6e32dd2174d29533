"""SSZ merkleization helpers (SHA-256). Any thread: pure functions on bytes.

Public so that consensus code can build incremental hashing (for example a cached
tree over the historical block hashes) on the same primitives the containers use.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Final

__all__ = [
    "BYTES_PER_CHUNK",
    "ZERO_HASHES",
    "hash_pair",
    "hash_up",
    "merkleize",
    "merkleize_chunks",
    "mix_in_length",
    "pack_bytes",
]

BYTES_PER_CHUNK: Final = 32

_sha256 = hashlib.sha256


def hash_pair(left: bytes, right: bytes) -> bytes:
    """SHA-256 of two concatenated 32-byte nodes."""
    return _sha256(left + right).digest()


def _zero_hashes(depth: int) -> tuple[bytes, ...]:
    hashes = [b"\x00" * BYTES_PER_CHUNK]
    for _ in range(depth):
        hashes.append(hash_pair(hashes[-1], hashes[-1]))
    return tuple(hashes)


#: ``ZERO_HASHES[d]`` is the root of a full tree of depth ``d`` whose leaves are zero.
ZERO_HASHES: Final = _zero_hashes(64)


def _depth_for(chunk_count: int) -> int:
    """Smallest depth whose tree holds ``chunk_count`` leaves (0 for one leaf or none)."""
    return max(chunk_count - 1, 0).bit_length()


def hash_up(layer: list[bytes], level: int, depth: int) -> bytes:
    """Hash ``layer`` (the populated nodes at ``level``) up to the root at ``depth``."""
    # Hash only the populated part of each level; a missing right sibling is the
    # zero-subtree root of that level, so the padding never costs a hash of its own.
    sha256 = _sha256
    while level < depth and len(layer) > 1:
        if len(layer) % 2:
            layer.append(ZERO_HASHES[level])
        # One iterator zipped with itself yields consecutive (left, right) pairs.
        pairs = iter(layer)
        layer = [sha256(left + right).digest() for left, right in zip(pairs, pairs, strict=False)]
        level += 1
    # A single node left: climb the remaining levels beside zero subtrees, without
    # building a list per level (list limits run 10 to 17 levels above the data).
    node = layer[0]
    for zero in ZERO_HASHES[level:depth]:
        node = sha256(node + zero).digest()
    return node


def merkleize_chunks(chunks: Sequence[bytes], limit: int | None = None) -> bytes:
    """Root of the 32-byte ``chunks`` padded with zero leaves to ``limit`` (or to a power of 2).

    Raises ``ValueError`` when there are more chunks than ``limit``.
    """
    count = len(chunks)
    if limit is None:
        limit = count
    if count > limit:
        raise ValueError(f"{count} chunks exceed the limit of {limit}")
    depth = _depth_for(limit)
    if count == 0:
        return ZERO_HASHES[depth]
    return hash_up(list(chunks), 0, depth)


def pack_bytes(data: bytes) -> list[bytes]:
    """Split serialized basic values into 32-byte chunks, zero-padding the last one."""
    if not data:
        return []
    remainder = len(data) % BYTES_PER_CHUNK
    if remainder:
        data = data + b"\x00" * (BYTES_PER_CHUNK - remainder)
    return [data[i : i + BYTES_PER_CHUNK] for i in range(0, len(data), BYTES_PER_CHUNK)]


def merkleize(data: bytes, limit_chunks: int | None = None) -> bytes:
    """Root of packed bytes: ``merkleize_chunks(pack_bytes(data), limit_chunks)``, faster."""
    if limit_chunks is None and len(data) <= 2 * BYTES_PER_CHUNK:
        # The common small case (uints, Bytes52, short vectors): at most one hash.
        if len(data) <= BYTES_PER_CHUNK:
            return bytes(data).ljust(BYTES_PER_CHUNK, b"\x00")
        return _sha256(bytes(data).ljust(2 * BYTES_PER_CHUNK, b"\x00")).digest()
    count = (len(data) + BYTES_PER_CHUNK - 1) // BYTES_PER_CHUNK
    if limit_chunks is None:
        limit_chunks = count
    if count > limit_chunks:
        raise ValueError(f"{count} chunks exceed the limit of {limit_chunks}")
    depth = _depth_for(limit_chunks)
    if count == 0:
        return ZERO_HASHES[depth]
    pair_bytes = 2 * BYTES_PER_CHUNK
    if depth == 0:
        return bytes(data).ljust(BYTES_PER_CHUNK, b"\x00")
    # The first level hashes 64-byte windows of the zero-padded data directly.
    padded = bytes(data).ljust(-(-len(data) // pair_bytes) * pair_bytes, b"\x00")
    sha256 = _sha256
    layer = [sha256(padded[i : i + pair_bytes]).digest() for i in range(0, len(padded), pair_bytes)]
    return hash_up(layer, 1, depth)


def mix_in_length(root: bytes, length: int) -> bytes:
    """The root of a list or bitlist: its content root mixed with its length."""
    return _sha256(root + length.to_bytes(32, "little")).digest()

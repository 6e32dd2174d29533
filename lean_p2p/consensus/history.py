"""Append-only block-root history with an incremental Merkle root. Loop thread.

``historical_block_hashes`` grows by one root per slot and is hashed into every state
root, so re-hashing it per block would cost 100,000+ SHA-256 calls at 100k slots. A
:class:`RootHistory` keeps the *frontier* of its Merkle tree (the root of each complete
left subtree along the binary expansion of its length, as in the deposit contract), so
appending costs at most ``depth`` hashes and the root costs ``depth`` hashes, whatever
the length.

Histories are values: ``appended`` returns a new history and never changes the old one.
Forks share storage: the roots live in one Python list that the tip appends to in place;
a history that is not the tip (a second child of the same parent) copies its prefix
first. Every history reads only indices below its own length, so sharing is safe. This
relies on single-threaded use: the loop thread owns all consensus state.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from lean_p2p.consensus.config import HISTORICAL_ROOTS_LIMIT
from lean_p2p.containers.merkle import ZERO_HASHES, hash_pair, mix_in_length

__all__ = ["RootHistory"]

_DEPTH = (HISTORICAL_ROOTS_LIMIT - 1).bit_length()


def _insert(frontier: list[bytes], leaf: bytes, index: int) -> None:
    """Deposit-contract insertion of leaf ``index``: climb while it completes subtrees."""
    node = leaf
    size = index + 1
    for level in range(_DEPTH):
        if size & 1:
            frontier[level] = node
            return
        node = hash_pair(frontier[level], node)
        size >>= 1


class RootHistory(Sequence[bytes]):
    """An immutable list of 32-byte roots whose ``hash_tree_root`` is cheap."""

    __slots__ = ("_frontier", "_items", "_length", "_root")

    def __init__(self, items: list[bytes], length: int, frontier: tuple[bytes, ...]) -> None:
        self._items = items
        self._length = length
        self._frontier = frontier
        self._root: bytes | None = None

    @classmethod
    def empty(cls) -> RootHistory:
        return cls([], 0, (ZERO_HASHES[0],) * _DEPTH)

    @classmethod
    def of(cls, roots: Iterable[bytes]) -> RootHistory:
        return cls.empty().appended(roots)

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, index: int) -> bytes:  # type: ignore[override]
        if index < 0:
            index += self._length
        if not 0 <= index < self._length:
            raise IndexError(f"history index {index} out of range (length {self._length})")
        return self._items[index]

    def __iter__(self) -> Iterable[bytes]:  # type: ignore[override]
        items = self._items
        return (items[i] for i in range(self._length))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RootHistory):
            return NotImplemented
        return self._length == other._length and self.hash_tree_root() == other.hash_tree_root()

    def __hash__(self) -> int:
        return hash(self.hash_tree_root())

    def to_tuple(self) -> tuple[bytes, ...]:
        return tuple(self._items[: self._length])

    def slice_from(self, start: int) -> list[bytes]:
        return self._items[start : self._length]

    def appended(self, roots: Iterable[bytes]) -> RootHistory:
        """A new history with ``roots`` appended (this one is unchanged)."""
        new_roots = list(roots)
        items = self._items
        length = self._length
        shared_tail = items[length : length + len(new_roots)]
        if shared_tail and shared_tail == new_roots:
            # The same roots were already appended after our prefix (the same block
            # processed twice, as when a proposer builds a block and then imports it):
            # share the storage instead of copying it.
            return RootHistory(items, length, self._frontier)._extended_view(new_roots)
        if len(items) != length:
            # Another history already extended our shared storage with different roots
            # (we are a fork point): take a private copy of our prefix first.
            items = items[:length]
        return RootHistory(items, length, self._frontier)._append_in_place(new_roots)

    def _extended_view(self, roots: list[bytes]) -> RootHistory:
        """A longer view of storage that already holds ``roots`` after our prefix."""
        frontier = list(self._frontier)
        length = self._length
        for root in roots:
            _insert(frontier, root, length)
            length += 1
        return RootHistory(self._items, length, tuple(frontier))

    def _append_in_place(self, roots: list[bytes]) -> RootHistory:
        items = self._items
        frontier = list(self._frontier)
        length = self._length
        for root in roots:
            if len(root) != 32:
                raise ValueError(f"a history root is 32 bytes, not {len(root)}")
            if length >= HISTORICAL_ROOTS_LIMIT:
                raise ValueError(f"history exceeds its limit of {HISTORICAL_ROOTS_LIMIT}")
            items.append(root)
            _insert(frontier, root, length)
            length += 1
        return RootHistory(items, length, tuple(frontier))

    def hash_tree_root(self) -> bytes:
        """SSZ root of ``List[Bytes32, HISTORICAL_ROOTS_LIMIT]`` with these roots."""
        root = self._root
        if root is None:
            node = ZERO_HASHES[0]
            size = self._length
            frontier = self._frontier
            for level in range(_DEPTH):
                if size & 1:
                    node = hash_pair(frontier[level], node)
                else:
                    node = hash_pair(node, ZERO_HASHES[level])
                size >>= 1
            root = mix_in_length(node, self._length)
            self._root = root
        return root

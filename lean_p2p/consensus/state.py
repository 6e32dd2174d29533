"""The consensus state as the loop thread keeps it, with a cheap, cached state root.

Loop thread: values of :class:`ChainState` are created and read by the chain actor; they
are immutable by contract (every transition returns a new one), so handing one out is
safe, but their history storage is shared between forks (see
:mod:`lean_p2p.consensus.history`), so they must not be used from other threads. Convert
with :meth:`ChainState.to_container` to get a plain :class:`~lean_p2p.containers.State`
that any thread may use.

Why not the container itself: the container's ``hash_tree_root`` re-hashes everything,
and ``historical_block_hashes`` alone is 100k+ roots deep after a few days. Here:

- the history keeps an incremental Merkle frontier (``depth`` hashes per append);
- the validator registry root is computed once and carried along (lstar never changes
  the registry);
- justification votes are integer bitmasks (one per tracked root), so tallying is
  ``|`` and ``bit_count``, and the flat SSZ bitlist is produced only for hashing;
- the state root is cached on the value.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from lean_p2p.consensus.config import HISTORICAL_ROOTS_LIMIT, VALIDATOR_REGISTRY_LIMIT, ZERO_ROOT
from lean_p2p.consensus.hashing import block_header_root, checkpoint_root, validator_root
from lean_p2p.consensus.history import RootHistory
from lean_p2p.containers import (
    Bitlist,
    BlockHeader,
    Checkpoint,
    Config,
    State,
    Validator,
)
from lean_p2p.containers.merkle import merkleize, merkleize_chunks, mix_in_length

__all__ = ["ChainState", "bitlist_root", "empty_list_root", "validators_root"]

# Which fields each cached root depends on (the validators never change in lstar).
_ROOT_FIELDS: dict[str, tuple[str, ...]] = {
    "header": ("latest_block_header",),
    "justified": ("latest_justified",),
    "finalized": ("latest_finalized",),
    "justified_slots": ("justified_bits", "justified_length"),
    "justifications_roots": ("justifications",),
    "justifications_validators": ("justifications", "validators"),
}

_JUSTIFIED_SLOTS_CHUNK_LIMIT = (HISTORICAL_ROOTS_LIMIT + 255) // 256
_JUSTIFICATIONS_BITS_CHUNK_LIMIT = (HISTORICAL_ROOTS_LIMIT * VALIDATOR_REGISTRY_LIMIT + 255) // 256


def _uint64_chunk(value: int) -> bytes:
    return value.to_bytes(32, "little")


@functools.cache
def empty_list_root(chunk_limit: int) -> bytes:
    """The root of an empty list or bitlist whose contents span ``chunk_limit`` chunks."""
    return mix_in_length(merkleize_chunks([], chunk_limit), 0)


def bitlist_root(bits: int, length: int, chunk_limit: int) -> bytes:
    """SSZ root of a bitlist given as an int (bit i = list element i) and its length."""
    if length == 0:
        return empty_list_root(chunk_limit)
    packed = bits.to_bytes((length + 7) // 8, "little")
    return mix_in_length(merkleize(packed, chunk_limit), length)


def validators_root(validators: tuple[Validator, ...]) -> bytes:
    roots = [validator_root(validator) for validator in validators]
    return mix_in_length(merkleize_chunks(roots, VALIDATOR_REGISTRY_LIMIT), len(validators))


@dataclass(frozen=True, slots=True, eq=False)
class ChainState:
    """The lstar ``State``, held for fast transitions and hashing.

    ``justified_bits`` holds ``justified_slots`` (bit i = slot ``finalized + 1 + i``),
    ``justified_length`` its length. ``justifications`` maps each tracked target root to
    the bitmask of validators that voted for it, sorted by root (the SSZ order).
    """

    genesis_time: int
    slot: int
    latest_block_header: BlockHeader
    latest_justified: Checkpoint
    latest_finalized: Checkpoint
    history: RootHistory
    justified_bits: int
    justified_length: int
    validators: tuple[Validator, ...]
    validators_root: bytes
    justifications: tuple[tuple[bytes, int], ...]
    # Cached roots of the whole state ("state") and of its costlier fields, shared with
    # the copies ``evolve`` makes when the field did not change.
    _roots: dict[str, bytes] = field(default_factory=dict, repr=False)

    @property
    def validator_count(self) -> int:
        return len(self.validators)

    def evolve(self, **changes: object) -> ChainState:
        """A copy with ``changes`` applied; cached roots of unchanged fields carry over."""
        kept: dict[str, bytes] = {}
        for key, root in self._roots.items():
            if key == "state":
                continue
            for name in _ROOT_FIELDS[key]:
                if name in changes and changes[name] is not getattr(self, name):
                    break
            else:
                kept[key] = root
        return replace(self, _roots=kept, **changes)  # type: ignore[arg-type]

    def _cached(self, key: str, compute: Callable[[], bytes]) -> bytes:
        root = self._roots.get(key)
        if root is None:
            root = self._roots[key] = compute()
        return root

    def is_slot_justified_bit(self, index: int) -> bool:
        return bool(self.justified_bits >> index & 1)

    def hash_tree_root(self) -> bytes:
        root = self._roots.get("state")
        if root is not None:
            return root
        field_roots = [
            _uint64_chunk(self.genesis_time),  # Config has one uint64 field: its root is it.
            _uint64_chunk(self.slot),
            self._cached("header", lambda: block_header_root(self.latest_block_header)),
            self._cached("justified", lambda: checkpoint_root(self.latest_justified)),
            self._cached("finalized", lambda: checkpoint_root(self.latest_finalized)),
            self.history.hash_tree_root(),
            self._cached("justified_slots", self._justified_slots_root),
            self.validators_root,
            self._cached("justifications_roots", self._justifications_roots_root),
            self._cached("justifications_validators", self._justifications_bits_root),
        ]
        root = self._roots["state"] = merkleize_chunks(field_roots)
        return root

    def _justified_slots_root(self) -> bytes:
        return bitlist_root(
            self.justified_bits, self.justified_length, _JUSTIFIED_SLOTS_CHUNK_LIMIT
        )

    def _justifications_roots_root(self) -> bytes:
        if not self.justifications:
            return empty_list_root(HISTORICAL_ROOTS_LIMIT)
        roots = [root for root, _ in self.justifications]
        return mix_in_length(merkleize_chunks(roots, HISTORICAL_ROOTS_LIMIT), len(roots))

    def _justifications_bits_root(self) -> bytes:
        count = len(self.validators)
        flat = 0
        for position, (_, votes) in enumerate(self.justifications):
            flat |= votes << (position * count)
        length = len(self.justifications) * count
        return bitlist_root(flat, length, _JUSTIFICATIONS_BITS_CHUNK_LIMIT)

    # -- conversions -------------------------------------------------------------------

    @classmethod
    def from_container(cls, state: State) -> ChainState:
        """Build from an SSZ ``State`` (validates the justification layout)."""
        validators = tuple(state.validators)
        count = len(validators)
        roots = tuple(bytes(root) for root in state.justifications_roots)
        flat_bits: Bitlist = state.justifications_validators
        if len(flat_bits) != len(roots) * count:
            raise ValueError(
                f"justifications_validators holds {len(flat_bits)} bits, expected "
                f"{len(roots)} roots x {count} validators"
            )
        if ZERO_ROOT in roots:
            raise ValueError("the zero hash is not a valid justification root")
        flat = int.from_bytes(flat_bits.data, "little")
        mask = (1 << count) - 1
        justifications = tuple(
            sorted((root, flat >> (position * count) & mask) for position, root in enumerate(roots))
        )
        justified: Bitlist = state.justified_slots
        return cls(
            genesis_time=state.config.genesis_time,
            slot=state.slot,
            latest_block_header=state.latest_block_header,
            latest_justified=state.latest_justified,
            latest_finalized=state.latest_finalized,
            history=RootHistory.of(bytes(root) for root in state.historical_block_hashes),
            justified_bits=int.from_bytes(justified.data, "little"),
            justified_length=len(justified),
            validators=validators,
            validators_root=validators_root(validators),
            justifications=justifications,
        )

    def to_container(self) -> State:
        """The SSZ ``State`` value (immutable; safe to hand to any thread)."""
        count = len(self.validators)
        flat = 0
        for position, (_, votes) in enumerate(self.justifications):
            flat |= votes << (position * count)
        flat_length = len(self.justifications) * count
        return State(
            config=Config(genesis_time=self.genesis_time),
            slot=self.slot,
            latest_block_header=self.latest_block_header,
            latest_justified=self.latest_justified,
            latest_finalized=self.latest_finalized,
            historical_block_hashes=self.history.to_tuple(),
            justified_slots=Bitlist(
                self.justified_length,
                self.justified_bits.to_bytes((self.justified_length + 7) // 8, "little"),
            ),
            validators=self.validators,
            justifications_roots=tuple(root for root, _ in self.justifications),
            justifications_validators=Bitlist(
                flat_length, flat.to_bytes((flat_length + 7) // 8, "little")
            ),
        )

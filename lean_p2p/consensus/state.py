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

from dataclasses import dataclass, field, replace

from lean_p2p.consensus.config import HISTORICAL_ROOTS_LIMIT, VALIDATOR_REGISTRY_LIMIT, ZERO_ROOT
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

__all__ = ["ChainState", "bitlist_root", "validators_root"]

_JUSTIFIED_SLOTS_CHUNK_LIMIT = (HISTORICAL_ROOTS_LIMIT + 255) // 256
_JUSTIFICATIONS_BITS_CHUNK_LIMIT = (HISTORICAL_ROOTS_LIMIT * VALIDATOR_REGISTRY_LIMIT + 255) // 256


def _uint64_chunk(value: int) -> bytes:
    return value.to_bytes(32, "little")


def bitlist_root(bits: int, length: int, chunk_limit: int) -> bytes:
    """SSZ root of a bitlist given as an int (bit i = list element i) and its length."""
    packed = bits.to_bytes((length + 7) // 8, "little") if length else b""
    return mix_in_length(merkleize(packed, chunk_limit), length)


def validators_root(validators: tuple[Validator, ...]) -> bytes:
    roots = [validator.hash_tree_root() for validator in validators]
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
    _root: list[bytes] = field(default_factory=list, repr=False)

    @property
    def validator_count(self) -> int:
        return len(self.validators)

    def evolve(self, **changes: object) -> ChainState:
        """A copy with ``changes`` applied (and no cached root)."""
        return replace(self, _root=[], **changes)  # type: ignore[arg-type]

    def is_slot_justified_bit(self, index: int) -> bool:
        return bool(self.justified_bits >> index & 1)

    def hash_tree_root(self) -> bytes:
        cached = self._root
        if cached:
            return cached[0]
        count = len(self.validators)
        roots = [self_root for self_root, _ in self.justifications]
        flat = 0
        for position, (_, votes) in enumerate(self.justifications):
            flat |= votes << (position * count)
        field_roots = [
            _uint64_chunk(self.genesis_time),  # Config has one uint64 field: its root is it.
            _uint64_chunk(self.slot),
            self.latest_block_header.hash_tree_root(),
            self.latest_justified.hash_tree_root(),
            self.latest_finalized.hash_tree_root(),
            self.history.hash_tree_root(),
            bitlist_root(self.justified_bits, self.justified_length, _JUSTIFIED_SLOTS_CHUNK_LIMIT),
            self.validators_root,
            mix_in_length(merkleize_chunks(roots, HISTORICAL_ROOTS_LIMIT), len(roots)),
            bitlist_root(flat, len(roots) * count, _JUSTIFICATIONS_BITS_CHUNK_LIMIT),
        ]
        root = merkleize_chunks(field_roots)
        cached.append(root)
        return root

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

"""The lstar state transition: slots, block header, 3SF-mini attestations, state root.

Loop thread (pure functions of immutable values; no I/O, no clock). Signatures are
verified before this runs (see :mod:`lean_p2p.consensus.signatures`). Every refusal
raises :class:`~lean_p2p.consensus.errors.ConsensusRejection` with a reason code.

The order of the checks follows leanSpec exactly: which reason a bad block gets depends
on it, and the vectors pin the reason.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from lean_p2p.consensus.config import MAX_ATTESTATIONS_DATA, ZERO_ROOT
from lean_p2p.consensus.errors import ConsensusRejection, RejectionReason
from lean_p2p.consensus.hashing import block_header_root, body_root_of
from lean_p2p.consensus.justifiability import is_justifiable_after, justified_index_after
from lean_p2p.consensus.state import ChainState
from lean_p2p.containers import (
    AggregatedAttestation,
    AttestationData,
    Block,
    BlockHeader,
    Checkpoint,
)

__all__ = [
    "attestation_lies_on_chain",
    "process_attestations",
    "process_block",
    "process_block_header",
    "process_slots",
    "proposer_for_slot",
    "state_transition",
]


def proposer_for_slot(slot: int, validator_count: int) -> int:
    """Round-robin proposer of ``slot``; an empty registry schedules no one."""
    if validator_count == 0:
        raise ConsensusRejection(
            RejectionReason.EMPTY_VALIDATOR_REGISTRY, "no validator can propose"
        )
    return slot % validator_count


def process_slots(state: ChainState, target_slot: int) -> ChainState:
    """Advance through empty slots up to (not including) ``target_slot``."""
    if state.slot >= target_slot:
        raise ConsensusRejection(
            RejectionReason.BLOCK_SLOT_NOT_IN_FUTURE,
            f"target slot {target_slot} is not after the state slot {state.slot}",
        )
    header = state.latest_block_header
    # Only the first empty slot after a block finds the header's state root empty; the
    # later slots would copy the same root, so one fill then a jump is equivalent.
    if header.state_root == ZERO_ROOT:
        header = _with_state_root(header, state.hash_tree_root())
    return state.evolve(latest_block_header=header, slot=target_slot)


def _with_state_root(header: BlockHeader, state_root: bytes) -> BlockHeader:
    return BlockHeader(
        slot=header.slot,
        proposer_index=header.proposer_index,
        parent_root=header.parent_root,
        state_root=state_root,
        body_root=header.body_root,
    )


def process_block_header(
    state: ChainState, block: Block, body_root: bytes | None = None
) -> ChainState:
    """Check the block against the state's header and record it in the history.

    ``body_root`` may be passed when the caller already hashed the body.
    """
    parent_header = state.latest_block_header
    parent_root = block_header_root(parent_header)
    if block.slot != state.slot:
        raise ConsensusRejection(
            RejectionReason.BLOCK_SLOT_MISMATCH,
            f"block slot {block.slot} differs from state slot {state.slot}",
        )
    if block.slot <= parent_header.slot:
        raise ConsensusRejection(
            RejectionReason.BLOCK_OLDER_THAN_LATEST_HEADER,
            f"block slot {block.slot} is not after the latest header's {parent_header.slot}",
        )
    if block.proposer_index != proposer_for_slot(state.slot, state.validator_count):
        raise ConsensusRejection(
            RejectionReason.WRONG_PROPOSER,
            f"validator {block.proposer_index} is not the proposer of slot {state.slot}",
        )
    if block.parent_root != parent_root:
        raise ConsensusRejection(
            RejectionReason.PARENT_ROOT_MISMATCH, "parent root differs from the latest header"
        )
    # Genesis is justified and finalized by definition: the first block pins both to it.
    if parent_header.slot == 0:
        justified = finalized = Checkpoint(root=parent_root, slot=0)
    else:
        justified, finalized = state.latest_justified, state.latest_finalized
    empty_slots = block.slot - parent_header.slot - 1
    history = state.history.appended([parent_root, *([ZERO_ROOT] * empty_slots)])
    # Justified-slot flags cover the slots after finality up to the one before this block.
    justified_length = state.justified_length
    index = justified_index_after(block.slot - 1, finalized.slot)
    if index is not None and index + 1 > justified_length:
        justified_length = index + 1
    header = BlockHeader(
        slot=block.slot,
        proposer_index=block.proposer_index,
        parent_root=block.parent_root,
        state_root=ZERO_ROOT,
        body_root=body_root_of(block.body) if body_root is None else body_root,
    )
    return state.evolve(
        latest_justified=justified,
        latest_finalized=finalized,
        history=history,
        justified_length=justified_length,
        latest_block_header=header,
    )


def attestation_lies_on_chain(data: AttestationData, history: Sequence[bytes]) -> bool:
    """Whether source, target and head all name the block the chain holds at their slot."""
    source, target, head = data.source, data.target, data.head
    if ZERO_ROOT in (source.root, target.root, head.root):
        return False
    length = len(history)
    if source.slot >= length or target.slot >= length or head.slot >= length:
        return False
    return (
        history[source.slot] == source.root
        and history[target.slot] == target.root
        and history[head.slot] == head.root
    )


class _Justified:
    """The justified-slot flags during one block's attestation processing."""

    __slots__ = ("bits", "finalized_slot", "length")

    def __init__(self, bits: int, length: int, finalized_slot: int) -> None:
        self.bits = bits
        self.length = length
        self.finalized_slot = finalized_slot

    def is_justified(self, slot: int) -> bool:
        index = justified_index_after(slot, self.finalized_slot)
        if index is None:
            return True
        if index >= self.length:
            raise ConsensusRejection(
                RejectionReason.JUSTIFIED_SLOT_OUT_OF_RANGE,
                f"slot {slot} is outside the tracked range (finalized {self.finalized_slot}, "
                f"tracked {self.length})",
            )
        return bool(self.bits >> index & 1)


def process_attestations(
    state: ChainState, attestations: Iterable[AggregatedAttestation]
) -> ChainState:
    """Count votes and move justification and finalization under 3SF-mini."""
    attestations = tuple(attestations)
    distinct = {attestation.data for attestation in attestations}
    if len(distinct) > MAX_ATTESTATIONS_DATA:
        raise ConsensusRejection(
            RejectionReason.TOO_MANY_ATTESTATION_DATA,
            f"{len(distinct)} distinct attestation data; at most {MAX_ATTESTATIONS_DATA}",
        )
    if not attestations:
        return state
    validator_count = state.validator_count
    votes_by_root = dict(state.justifications)
    latest_justified = state.latest_justified
    latest_finalized = state.latest_finalized
    original_finalized_slot = latest_finalized.slot
    justified = _Justified(state.justified_bits, state.justified_length, latest_finalized.slot)
    history = state.history
    root_to_slot: dict[bytes, int] | None = None

    for attestation in attestations:
        data = attestation.data
        source, target = data.source, data.target
        if not justified.is_justified(source.slot):
            continue
        if justified.is_justified(target.slot):
            continue
        if not attestation_lies_on_chain(data, history):
            continue
        if target.slot <= source.slot:
            continue
        if not is_justifiable_after(target.slot, justified.finalized_slot):
            continue
        bits = attestation.aggregation_bits
        voters = int.from_bytes(bits.data, "little")
        if voters == 0:
            raise ConsensusRejection(
                RejectionReason.EMPTY_AGGREGATION_BITS, "aggregation bits name no validator"
            )
        if voters >> validator_count:
            raise ConsensusRejection(
                RejectionReason.VALIDATOR_INDEX_OUT_OF_RANGE,
                "aggregation bits name a validator outside the registry",
            )
        tally = votes_by_root.get(target.root, 0) | voters
        votes_by_root[target.root] = tally
        if 3 * tally.bit_count() < 2 * validator_count:
            continue
        # Justified. Targets may resolve out of order inside one block: never move back.
        if target.slot > latest_justified.slot:
            latest_justified = target
        index = justified_index_after(target.slot, justified.finalized_slot)
        assert index is not None  # the justifiable filter admits only tracked slots
        justified.bits |= 1 << index
        del votes_by_root[target.root]
        finalized_slot = justified.finalized_slot
        if source.slot > finalized_slot and not any(
            is_justifiable_after(slot, finalized_slot)
            for slot in range(source.slot + 1, target.slot)
        ):
            latest_finalized = source
            delta = source.slot - finalized_slot
            justified.finalized_slot = source.slot
            # Rebase the flags onto the new boundary: drop the first ``delta`` slots.
            justified.bits >>= delta
            justified.length = max(0, justified.length - delta)
            if root_to_slot is None:
                # Built from the history after the finality this block started from, like
                # the spec; only needed (and only paid for) when finality moves.
                start = original_finalized_slot + 1
                root_to_slot = {
                    root: slot for slot, root in enumerate(history.slice_from(start), start=start)
                }
            missing = [root for root in votes_by_root if root not in root_to_slot]
            if missing:
                raise ValueError("a justification root is not in the chain history")
            votes_by_root = {
                root: votes
                for root, votes in votes_by_root.items()
                if root_to_slot[root] > source.slot
            }

    justifications = tuple(sorted(votes_by_root.items()))
    if justifications == state.justifications:
        justifications = state.justifications  # unchanged: keep its cached roots
    return state.evolve(
        justifications=justifications,
        justified_bits=justified.bits,
        justified_length=justified.length,
        latest_justified=latest_justified,
        latest_finalized=latest_finalized,
    )


def process_block(state: ChainState, block: Block, body_root: bytes | None = None) -> ChainState:
    with_header = process_block_header(state, block, body_root)
    return process_attestations(with_header, block.body.attestations)


def state_transition(state: ChainState, block: Block, body_root: bytes | None = None) -> ChainState:
    """Apply ``block`` to ``state`` and check the block's state root."""
    post = process_block(process_slots(state, block.slot), block, body_root)
    if block.state_root != post.hash_tree_root():
        raise ConsensusRejection(
            RejectionReason.STATE_ROOT_MISMATCH, "block state root differs from the post-state"
        )
    return post

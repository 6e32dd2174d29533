"""Block production and validator duties. Loop thread (reads and updates the store).

- :func:`build_block` fills a block with the counted votes, in rounds, because including
  votes can justify a new source, which makes more votes includable (leanSpec's
  fixed-point builder). It returns the block, its post-state and one proof per vote.
- :func:`produce_block` is the proposer's duty on a :class:`ForkChoiceStore`: tick to the
  slot, count pending votes, build on the head, import the block locally.
- :func:`produce_attestation` is the attester's duty; :func:`duties_at` says which duty
  falls on which interval of a slot.

Signing is behind :class:`Signer`; :class:`PlaceholderSigner` produces the structurally
valid placeholders the mocked verifier accepts (local devnets without real keys).
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass
from typing import Protocol

from lean_p2p.consensus.config import MAX_ATTESTATIONS_DATA, ZERO_ROOT
from lean_p2p.consensus.errors import ConsensusRejection, RejectionReason
from lean_p2p.consensus.signatures import mock_proof
from lean_p2p.consensus.state import ChainState
from lean_p2p.consensus.state_transition import (
    attestation_lies_on_chain,
    process_block,
    process_slots,
    proposer_for_slot,
)
from lean_p2p.consensus.store import (
    ForkChoiceStore,
    participant_mask,
    select_proofs_for_coverage,
)
from lean_p2p.containers import (
    AggregatedAttestation,
    AttestationData,
    Bitlist,
    Block,
    BlockBody,
    Checkpoint,
    MultiMessageAggregate,
    SignedAttestation,
    SignedBlock,
    SingleMessageAggregate,
    active_scheme,
)

__all__ = [
    "Duty",
    "PlaceholderSigner",
    "Signer",
    "build_block",
    "duties_at",
    "produce_attestation",
    "produce_block",
]


class Duty(enum.Enum):
    PROPOSE = "propose"  # interval 0, the slot's proposer
    ATTEST = "attest"  # interval 1, every validator
    AGGREGATE = "aggregate"  # interval 2, aggregators (run by ForkChoiceStore.on_tick)


def duties_at(
    slot: int, interval: int, validator_index: int, validator_count: int
) -> tuple[Duty, ...]:
    """The duties of ``validator_index`` at ``interval`` (0..4) of ``slot``."""
    match interval:
        case 0 if validator_count and proposer_for_slot(slot, validator_count) == validator_index:
            return (Duty.PROPOSE,)
        case 1:
            return (Duty.ATTEST,)
        case 2:
            return (Duty.AGGREGATE,)
    return ()


class Signer(Protocol):
    def sign_attestation(self, validator_index: int, data: AttestationData) -> bytes: ...

    def block_proof(
        self, block: Block, attestation_proofs: Sequence[SingleMessageAggregate]
    ) -> bytes: ...


class PlaceholderSigner:
    """Structurally valid, cryptographically meaningless signatures (mocked mode only)."""

    def sign_attestation(self, validator_index: int, data: AttestationData) -> bytes:
        scheme = active_scheme()
        seed = hashlib.sha256(validator_index.to_bytes(8, "little") + data.hash_tree_root())
        rho_bytes = scheme.rand_length * 4
        fixed_part = 4 + rho_bytes + 4
        path_size = 4 + scheme.log_lifetime * scheme.digest_bytes
        # Small non-zero field elements for rho: canonical and never all zero.
        rho = b"".join(
            (1 + byte).to_bytes(4, "little") for byte in seed.digest()[: scheme.rand_length]
        )
        body = bytes(scheme.signature_size - fixed_part - path_size)
        return (
            fixed_part.to_bytes(4, "little")
            + rho
            + (fixed_part + path_size).to_bytes(4, "little")
            + (4).to_bytes(4, "little")
            + bytes(path_size - 4)
            + body
        )

    def block_proof(
        self, block: Block, attestation_proofs: Sequence[SingleMessageAggregate]
    ) -> bytes:
        return mock_proof(block.hash_tree_root() + b"".join(p.proof for p in attestation_proofs))


def _bits(mask: int) -> Bitlist:
    length = mask.bit_length()
    return Bitlist(length, mask.to_bytes((length + 7) // 8, "little"))


def build_block(
    state: ChainState,
    *,
    slot: int,
    proposer_index: int,
    parent_root: bytes,
    known_block_roots: Set[bytes],
    payloads: Mapping[AttestationData, set[SingleMessageAggregate]],
) -> tuple[Block, ChainState, list[SingleMessageAggregate]]:
    """A valid block on ``state`` carrying as many justifying votes as it can.

    Rounds: take every eligible vote (source = the current justified checkpoint, all
    roots on this chain, target not yet justified), apply the transition, and repeat
    while justification or finalization moved. One attestation (and one proof, merged
    if needed) per distinct vote.
    """
    advanced = process_slots(state, slot)
    chosen: dict[AttestationData, list[SingleMessageAggregate]] = {}
    if payloads:
        justified = (
            Checkpoint(root=parent_root, slot=0)
            if state.latest_block_header.slot == 0
            else state.latest_justified
        )
        finalized_slot = state.latest_finalized.slot
        view = advanced
        empty_slots = slot - state.latest_block_header.slot - 1
        history = _ExtendedHistory(state.history, [parent_root, *([ZERO_ROOT] * empty_slots)])
        candidates = sorted(payloads.items(), key=lambda item: item[0].target.slot)
        while True:
            added = False
            for data, proofs in candidates:
                if data in chosen:
                    continue
                if len(chosen) >= MAX_ATTESTATIONS_DATA:
                    break
                if not _eligible(data, justified, finalized_slot, view, known_block_roots):
                    continue
                if not attestation_lies_on_chain(data, history):
                    continue
                selected, _ = select_proofs_for_coverage(proofs)
                if not selected:
                    continue
                chosen[data] = selected
                added = True
            if not added:
                break
            trial = _block(slot, proposer_index, parent_root, ZERO_ROOT, chosen)
            post = process_block(advanced, trial)
            if post.latest_justified == justified and post.latest_finalized.slot == finalized_slot:
                break
            justified = post.latest_justified
            finalized_slot = post.latest_finalized.slot
            view = post
    merged = {data: _merge(data, proofs) for data, proofs in chosen.items()}
    block = _block(
        slot, proposer_index, parent_root, ZERO_ROOT, {d: [p] for d, p in merged.items()}
    )
    post_state = process_block(advanced, block)
    final = _block(
        slot, proposer_index, parent_root, post_state.hash_tree_root(), merged_lists(merged)
    )
    return final, post_state, list(merged.values())


def merged_lists(
    merged: Mapping[AttestationData, SingleMessageAggregate],
) -> dict[AttestationData, list[SingleMessageAggregate]]:
    return {data: [proof] for data, proof in merged.items()}


class _ExtendedHistory(Sequence[bytes]):
    """The chain as it will look once the block applies, without copying the history."""

    def __init__(self, history: Sequence[bytes], extension: list[bytes]) -> None:
        self._history = history
        self._extension = extension
        self._split = len(history)

    def __len__(self) -> int:
        return self._split + len(self._extension)

    def __getitem__(self, index: int) -> bytes:  # type: ignore[override]
        if 0 <= index < self._split:
            return self._history[index]
        return self._extension[index - self._split]


def _eligible(
    data: AttestationData,
    justified: Checkpoint,
    finalized_slot: int,
    view: ChainState,
    known_block_roots: Set[bytes],
) -> bool:
    if data.head.root not in known_block_roots or data.source.slot != justified.slot:
        return False

    def is_justified(slot: int) -> bool:
        if slot <= finalized_slot:
            return True
        index = slot - finalized_slot - 1
        return index < view.justified_length and view.is_slot_justified_bit(index)

    if not is_justified(data.source.slot):
        return False
    genesis_self_vote = data.source.slot == 0 and data.target.slot == 0
    return genesis_self_vote or not is_justified(data.target.slot)


def _merge(data: AttestationData, proofs: list[SingleMessageAggregate]) -> SingleMessageAggregate:
    if len(proofs) == 1:
        return proofs[0]
    union = 0
    for proof in proofs:
        union |= participant_mask(proof.participants)
    marker = data.hash_tree_root() + b"".join(proof.proof for proof in proofs)
    return SingleMessageAggregate(participants=_bits(union), proof=mock_proof(marker))


def _block(
    slot: int,
    proposer_index: int,
    parent_root: bytes,
    state_root: bytes,
    chosen: Mapping[AttestationData, list[SingleMessageAggregate]],
) -> Block:
    attestations = tuple(
        AggregatedAttestation(aggregation_bits=proof.participants, data=data)
        for data, proofs in chosen.items()
        for proof in proofs
    )
    return Block(
        slot=slot,
        proposer_index=proposer_index,
        parent_root=parent_root,
        state_root=state_root,
        body=BlockBody(attestations=attestations),
    )


@dataclass(frozen=True, slots=True)
class ProducedBlock:
    root: bytes
    signed_block: SignedBlock


def produce_block(
    store: ForkChoiceStore, slot: int, validator_index: int, signer: Signer
) -> ProducedBlock:
    """The proposer's duty: build on the freshest head and import the block locally."""
    store.on_tick(slot * 5, has_proposal=True)
    store.accept_new_attestations()
    head_state = store.head_state()
    if validator_index != proposer_for_slot(slot, head_state.validator_count):
        raise ConsensusRejection(
            RejectionReason.WRONG_PROPOSER, f"validator {validator_index} does not propose {slot}"
        )
    block, _, proofs = build_block(
        head_state,
        slot=slot,
        proposer_index=validator_index,
        parent_root=store.head,
        known_block_roots=store.blocks.keys(),
        payloads=store.known_payloads,
    )
    signed = SignedBlock(
        block=block, proof=MultiMessageAggregate(proof=signer.block_proof(block, proofs))
    )
    root = store.on_block(signed)
    return ProducedBlock(root=root, signed_block=signed)


def produce_attestation(
    store: ForkChoiceStore, slot: int, validator_index: int, signer: Signer
) -> SignedAttestation:
    """The attester's duty: vote for the current head with the store's target."""
    data = store.produce_attestation_data(slot)
    return SignedAttestation(
        validator_index=validator_index,
        data=data,
        signature=signer.sign_attestation(validator_index, data),
    )

"""The fork-choice store: blocks, states, votes, head. Loop thread only.

All consensus state lives here and is touched only on the loop thread: every public
method checks the store's :class:`~lean_p2p.runtime.affinity.LoopAffinity` (no lock
anywhere). Foreign threads hand blocks and attestations to the mailbox instead.

The rules are leanSpec's lstar fork choice (its vectors pin every observable, including
the order in which vote pools are kept), organised to run rather than to read:

- blocks are indexed by root with a parent -> children map kept up to date, so LMD-GHOST
  never rebuilds the tree;
- each validator's latest vote is found with integer bitmasks, one pass over the
  distinct AttestationData (not one dict update per validator per proof);
- weights are pushed up from the distinct voted heads only;
- states are :class:`~lean_p2p.consensus.state.ChainState` values whose root is cheap.

Values handed out (blocks, checkpoints, snapshots, ``to_container`` states) are
immutable. Internal pools are mutable and private.

Why one module: the pure parts already live apart (the state transition, hashing,
justifiability, checkpoints, signatures). What stays is the store's own state and the
rules that read and write it together: block import updates the child map and the
pools that the vote weights and LMD-GHOST then read, in an order the vectors pin.
Split by rule, each piece would reach into the others' private pools.
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Iterable
from dataclasses import dataclass

from lean_p2p.consensus.config import (
    GOSSIP_DISPARITY_INTERVALS,
    INTERVALS_PER_SLOT,
    JUSTIFICATION_LOOKBACK_SLOTS,
    ZERO_ROOT,
)
from lean_p2p.consensus.errors import ConsensusRejection, RejectionReason
from lean_p2p.consensus.hashing import attestation_data_root, body_root_of, header_root
from lean_p2p.consensus.justifiability import is_justifiable_after
from lean_p2p.consensus.signatures import MockedProofVerifier, SignatureVerifier
from lean_p2p.consensus.state import ChainState
from lean_p2p.consensus.state_transition import state_transition
from lean_p2p.containers import (
    AttestationData,
    Bitlist,
    Block,
    Checkpoint,
    SignedAggregatedAttestation,
    SignedAttestation,
    SignedBlock,
    SingleMessageAggregate,
    State,
)
from lean_p2p.runtime.affinity import LoopAffinity, loop_only

__all__ = ["ForkChoiceStore", "ProofPool", "StoreStatistics", "participant_mask"]

logger = logging.getLogger(__name__)

ProofPool = dict[AttestationData, set[SingleMessageAggregate]]


def participant_mask(bits: Bitlist) -> int:
    """The set bits of ``bits`` as an integer (bit i = validator i)."""
    return int.from_bytes(bits.data, "little")


def _indices(mask: int) -> list[int]:
    # The binary string, least significant bit first: one C-level pass, no bigint ops.
    return [index for index, bit in enumerate(bin(mask)[:1:-1]) if bit == "1"]


@dataclass(frozen=True, slots=True)
class StoreStatistics:
    time: int
    head_slot: int
    justified_slot: int
    finalized_slot: int
    blocks: int
    blocks_imported: int
    duplicate_blocks: int
    attestations_accepted: int
    aggregates_accepted: int
    rejections: int


class ForkChoiceStore:
    """LMD-GHOST fork choice over 3SF-mini justification, anchored at a trusted block."""

    def __init__(
        self,
        anchor_state: State | ChainState,
        anchor_block: Block,
        *,
        validator_index: int | None = None,
        verifier: SignatureVerifier | None = None,
    ) -> None:
        self.affinity = LoopAffinity("ForkChoiceStore", "Mailbox.put (the chain lanes)")
        state = (
            anchor_state
            if isinstance(anchor_state, ChainState)
            else ChainState.from_container(anchor_state)
        )
        if anchor_block.state_root != state.hash_tree_root():
            raise ConsensusRejection(
                RejectionReason.ANCHOR_STATE_ROOT_MISMATCH,
                "anchor block state root differs from the anchor state's root",
            )
        anchor_root = header_root(
            anchor_block.slot,
            anchor_block.proposer_index,
            anchor_block.parent_root,
            anchor_block.state_root,
            body_root_of(anchor_block.body),
        )
        self.verifier: SignatureVerifier = verifier or MockedProofVerifier()
        self.validator_index = validator_index
        self.genesis_time = state.genesis_time
        self.time = anchor_block.slot * INTERVALS_PER_SLOT
        self.head = anchor_root
        self.safe_target = anchor_root
        anchor = Checkpoint(root=anchor_root, slot=anchor_block.slot)
        self.latest_justified = anchor
        self.latest_finalized = anchor
        self.blocks: dict[bytes, Block] = {anchor_root: anchor_block}
        self.states: dict[bytes, ChainState] = {anchor_root: state}
        self._children: dict[bytes, list[bytes]] = {}
        # Vote pools, keyed by the vote. Insertion order is observable (ties between two
        # votes of one validator at one slot go to the first inserted), so every update
        # reproduces the spec's order.
        self.attestation_signatures: dict[AttestationData, set[tuple[int, bytes]]] = {}
        self.new_payloads: ProofPool = {}
        self.known_payloads: ProofPool = {}
        self._blocks_imported = 0
        self._duplicate_blocks = 0
        self._attestations_accepted = 0
        self._aggregates_accepted = 0
        self._rejections = 0

    # -- queries -----------------------------------------------------------------------

    @property
    def current_slot(self) -> int:
        return self.time // INTERVALS_PER_SLOT

    @loop_only
    def has_block(self, root: bytes) -> bool:
        return root in self.blocks

    @loop_only
    def head_state(self) -> ChainState:
        return self.states[self.head]

    @loop_only
    def statistics(self) -> StoreStatistics:
        return StoreStatistics(
            time=self.time,
            head_slot=self.blocks[self.head].slot,
            justified_slot=self.latest_justified.slot,
            finalized_slot=self.latest_finalized.slot,
            blocks=len(self.blocks),
            blocks_imported=self._blocks_imported,
            duplicate_blocks=self._duplicate_blocks,
            attestations_accepted=self._attestations_accepted,
            aggregates_accepted=self._aggregates_accepted,
            rejections=self._rejections,
        )

    def is_ancestor(self, ancestor: Checkpoint, descendant: Checkpoint) -> bool:
        """Whether ``ancestor`` lies on ``descendant``'s chain of known blocks."""
        if ancestor.slot > descendant.slot:
            return False
        blocks = self.blocks
        root = descendant.root
        while (block := blocks.get(root)) is not None:
            if block.slot == ancestor.slot:
                return root == ancestor.root
            if block.slot < ancestor.slot:
                return False
            root = block.parent_root
        return False

    def _count_rejection(self, kind: str, rejection: ConsensusRejection, **fields: object) -> None:
        # Counted here, logged with fields; the caller decides what the sender deserves.
        self._rejections += 1
        logger.debug(
            "%s rejected: %s",
            kind,
            rejection.reason.value,
            extra={"reason": rejection.reason.value, **fields},
        )

    # -- time --------------------------------------------------------------------------

    @loop_only
    def on_tick(
        self, target_interval: int, *, has_proposal: bool, is_aggregator: bool = False
    ) -> list[SignedAggregatedAttestation]:
        """Advance to ``target_interval``, running every interval's duty on the way.

        Only the last step may carry the proposal signal. Returns the aggregates this
        node produced (when it aggregates), for the P2P actor to publish.

        With no pending votes, one full slot of duties reaches a fixed point (nothing is
        left to promote or aggregate; head and safe target stop moving), so a long quiet
        gap (a node waking after hours) skips to the last slot instead of running every
        interval; the result is the same as ticking through.
        """
        produced: list[SignedAggregatedAttestation] = []
        settle_until = self.time + INTERVALS_PER_SLOT
        while self.time < target_interval:
            if (
                self.time >= settle_until
                and target_interval - self.time > INTERVALS_PER_SLOT
                and not self.new_payloads
                and not self.attestation_signatures
            ):
                # Keep the interval phase: land exactly one slot before the target.
                self.time = target_interval - INTERVALS_PER_SLOT
            signal = has_proposal and self.time + 1 == target_interval
            produced += self._tick_interval(signal, is_aggregator)
        return produced

    def _tick_interval(
        self, has_proposal: bool, is_aggregator: bool
    ) -> list[SignedAggregatedAttestation]:
        self.time += 1
        match self.time % INTERVALS_PER_SLOT:
            case 0 if has_proposal:
                self.accept_new_attestations()
            case 2 if is_aggregator:
                return self.aggregate()
            case 3:
                self.update_safe_target()
            case 4:
                self.accept_new_attestations()
        return []

    # -- blocks ------------------------------------------------------------------------

    @loop_only
    def on_block(self, signed_block: SignedBlock, *, recompute_head: bool = True) -> bytes:
        """Import a block whose parent state is known; returns its root.

        Re-importing a known block is a no-op. Raises :class:`ConsensusRejection`.
        ``recompute_head=False`` defers the head to the caller's next
        :meth:`update_head` (for importing a batch of synced blocks at once); the vote
        pools are then pruned at the next import that advances finality, as the spec
        prunes only on import.
        """
        block = signed_block.block
        # The block root is its header's root: hash the body once and reuse it.
        body_root = body_root_of(block.body)
        block_root = header_root(
            block.slot, block.proposer_index, block.parent_root, block.state_root, body_root
        )
        if block_root in self.blocks:
            self._duplicate_blocks += 1
            return block_root
        try:
            self._import_block(signed_block, block_root, body_root, recompute_head)
        except ConsensusRejection as rejection:
            self._count_rejection("block", rejection, slot=block.slot, root=block_root.hex())
            raise
        return block_root

    def _import_block(
        self, signed_block: SignedBlock, block_root: bytes, body_root: bytes, recompute_head: bool
    ) -> None:
        block = signed_block.block
        previous_finalized_slot = self.latest_finalized.slot
        parent_state = self.states.get(block.parent_root)
        if parent_state is None:
            raise ConsensusRejection(
                RejectionReason.UNKNOWN_PARENT_BLOCK,
                f"parent {block.parent_root.hex()} of slot {block.slot} is unknown",
            )
        attestations = block.body.attestations
        if len({attestation.data for attestation in attestations}) != len(attestations):
            raise ConsensusRejection(
                RejectionReason.DUPLICATE_ATTESTATION_DATA,
                "the block repeats an attestation data entry",
            )
        self._verify_block_signatures(signed_block, block_root, parent_state)
        post_state = state_transition(parent_state, block, body_root)
        if post_state.latest_justified.slot > self.latest_justified.slot:
            self.latest_justified = post_state.latest_justified
        # The block's own votes enter the counted pool with no proof yet (they add no
        # weight until a proof arrives by gossip). The spec builds the new pool as
        # {block votes} | known: block votes first, existing entries keep their proofs.
        if attestations:
            known: ProofPool = {attestation.data: set() for attestation in attestations}
            for data, proofs in self.known_payloads.items():
                known[data] = proofs
            self.known_payloads = known
        self.blocks[block_root] = block
        self.states[block_root] = post_state
        self._children.setdefault(block.parent_root, []).append(block_root)
        self._blocks_imported += 1
        if not recompute_head:
            return
        self.update_head()
        if self.latest_finalized.slot > previous_finalized_slot:
            self.prune_stale_attestation_data()

    def _verify_block_signatures(
        self, signed_block: SignedBlock, block_root: bytes, state: ChainState
    ) -> None:
        block = signed_block.block
        validators = state.validators
        count = len(validators)
        keys_per_message: list[list[bytes]] = []
        messages: list[tuple[bytes, int]] = []
        for attestation in block.body.attestations:
            voters = participant_mask(attestation.aggregation_bits)
            if voters == 0:
                raise ConsensusRejection(
                    RejectionReason.EMPTY_AGGREGATION_BITS, "aggregation bits name no validator"
                )
            if voters >> count:
                raise ConsensusRejection(
                    RejectionReason.VALIDATOR_INDEX_OUT_OF_RANGE,
                    "aggregation bits name a validator outside the registry",
                )
            keys_per_message.append(
                [validators[index].attestation_public_key for index in _indices(voters)]
            )
            messages.append((attestation_data_root(attestation.data), attestation.data.slot))
        if block.proposer_index >= count:
            raise ConsensusRejection(
                RejectionReason.PROPOSER_INDEX_OUT_OF_RANGE,
                f"proposer {block.proposer_index} is outside a registry of {count}",
            )
        keys_per_message.append([validators[block.proposer_index].proposal_public_key])
        messages.append((block_root, block.slot))
        if not self.verifier.verify_block_proof(
            keys_per_message, messages, signed_block.proof.proof
        ):
            raise ConsensusRejection(
                RejectionReason.INVALID_BLOCK_PROOF, "the block proof does not verify"
            )

    # -- attestations ------------------------------------------------------------------

    def validate_attestation(self, data: AttestationData) -> None:
        """Check a vote's blocks, topology, slots, ancestry and timing."""
        blocks = self.blocks
        source, target, head = data.source, data.target, data.head
        source_block = blocks.get(source.root)
        if source_block is None:
            raise ConsensusRejection(RejectionReason.UNKNOWN_SOURCE_BLOCK, "unknown source")
        target_block = blocks.get(target.root)
        if target_block is None:
            raise ConsensusRejection(RejectionReason.UNKNOWN_TARGET_BLOCK, "unknown target")
        head_block = blocks.get(head.root)
        if head_block is None:
            raise ConsensusRejection(RejectionReason.UNKNOWN_HEAD_BLOCK, "unknown head")
        if source.slot > target.slot:
            raise ConsensusRejection(
                RejectionReason.SOURCE_AFTER_TARGET, "source slot exceeds target slot"
            )
        if head.slot < target.slot:
            raise ConsensusRejection(
                RejectionReason.HEAD_OLDER_THAN_TARGET, "head slot precedes target slot"
            )
        if source_block.slot != source.slot:
            raise ConsensusRejection(RejectionReason.SOURCE_SLOT_MISMATCH, "source slot mismatch")
        if target_block.slot != target.slot:
            raise ConsensusRejection(RejectionReason.TARGET_SLOT_MISMATCH, "target slot mismatch")
        if head_block.slot != head.slot:
            raise ConsensusRejection(RejectionReason.HEAD_SLOT_MISMATCH, "head slot mismatch")
        if not self.is_ancestor(source, target):
            raise ConsensusRejection(
                RejectionReason.SOURCE_NOT_ANCESTOR_OF_TARGET, "source is not an ancestor"
            )
        if not self.is_ancestor(target, head):
            raise ConsensusRejection(
                RejectionReason.TARGET_NOT_ANCESTOR_OF_HEAD, "target is not an ancestor"
            )
        if data.slot < head.slot:
            raise ConsensusRejection(
                RejectionReason.ATTESTATION_SLOT_BEFORE_HEAD, "vote slot precedes its head"
            )
        # Work in slots: multiplying a near-2**64 wire slot into intervals is pointless.
        max_slot = (self.time + GOSSIP_DISPARITY_INTERVALS) // INTERVALS_PER_SLOT
        if data.slot > max_slot:
            raise ConsensusRejection(
                RejectionReason.ATTESTATION_TOO_FAR_IN_FUTURE,
                f"vote slot {data.slot} is beyond slot {max_slot}",
            )

    @loop_only
    def attestation_key(self, signed_attestation: SignedAttestation) -> bytes:
        """The public key a vote's signature must verify against, once everything but
        the signature checks out (what a caller verifying elsewhere needs first).
        Raises :class:`ConsensusRejection`, counted, for a vote that fails before it."""
        try:
            return self._attestation_key(signed_attestation)
        except ConsensusRejection as rejection:
            self._count_vote_rejection(signed_attestation, rejection)
            raise

    def _count_vote_rejection(
        self, signed_attestation: SignedAttestation, rejection: ConsensusRejection
    ) -> None:
        self._count_rejection(
            "attestation",
            rejection,
            slot=signed_attestation.data.slot,
            validator=signed_attestation.validator_index,
        )

    def _attestation_key(self, signed_attestation: SignedAttestation) -> bytes:
        data = signed_attestation.data
        self.validate_attestation(data)
        validators = self.states[data.target.root].validators
        index = signed_attestation.validator_index
        if index >= len(validators):
            raise ConsensusRejection(
                RejectionReason.VALIDATOR_NOT_IN_STATE,
                f"validator {index} is not in the target state",
            )
        return validators[index].attestation_public_key

    @loop_only
    def on_gossip_attestation(
        self,
        signed_attestation: SignedAttestation,
        *,
        is_aggregator: bool = False,
        signature_valid: bool | None = None,
    ) -> None:
        """Validate a single vote; aggregators keep its signature for aggregation.

        ``signature_valid`` is the verdict of a verification done elsewhere (on worker
        threads); None asks this store's verifier, here.
        """
        data = signed_attestation.data
        index = signed_attestation.validator_index
        try:
            public_key = self._attestation_key(signed_attestation)
            if signature_valid is None:
                signature_valid = self.verifier.verify_attestation(
                    public_key, data.slot, attestation_data_root(data), signed_attestation.signature
                )
            if not signature_valid:
                raise ConsensusRejection(
                    RejectionReason.INVALID_SIGNATURE, "attestation signature does not verify"
                )
        except ConsensusRejection as rejection:
            self._count_vote_rejection(signed_attestation, rejection)
            raise
        self._attestations_accepted += 1
        if is_aggregator:
            entries = self.attestation_signatures.get(data)
            if entries is None:
                self.attestation_signatures[data] = {(index, signed_attestation.signature)}
            else:
                entries.add((index, signed_attestation.signature))

    @loop_only
    def on_gossip_aggregated_attestation(self, aggregate: SignedAggregatedAttestation) -> None:
        """Validate an aggregate and add its proof to the pending pool."""
        try:
            data = aggregate.data
            self.validate_attestation(data)
            participants = participant_mask(aggregate.proof.participants)
            if participants == 0:
                raise ConsensusRejection(
                    RejectionReason.EMPTY_AGGREGATION_BITS, "the aggregate names no validator"
                )
            validators = self.states[data.target.root].validators
            if participants >> len(validators):
                raise ConsensusRejection(
                    RejectionReason.VALIDATOR_NOT_IN_STATE,
                    "the aggregate names a validator outside the target state",
                )
            keys = [validators[index].attestation_public_key for index in _indices(participants)]
            if not self.verifier.verify_aggregate(
                keys, attestation_data_root(data), data.slot, aggregate.proof.proof
            ):
                raise ConsensusRejection(
                    RejectionReason.INVALID_SIGNATURE, "aggregate proof does not verify"
                )
        except ConsensusRejection as rejection:
            self._count_rejection("aggregate", rejection, slot=aggregate.data.slot)
            raise
        self._aggregates_accepted += 1
        proofs = self.new_payloads.get(data)
        if proofs is None:
            self.new_payloads[data] = {aggregate.proof}
        else:
            proofs.add(aggregate.proof)

    # -- pools -------------------------------------------------------------------------

    @loop_only
    def accept_new_attestations(self) -> None:
        """Promote pending proofs into the counted pool, then recompute the head."""
        known = self.known_payloads
        for data, proofs in self.new_payloads.items():
            existing = known.get(data)
            if existing is None:
                known[data] = set(proofs)
            else:
                existing |= proofs
        self.new_payloads = {}
        self.update_head()

    def prune_stale_attestation_data(self) -> None:
        """Drop votes whose head is not strictly above, and descended from, finality."""
        finalized = self.latest_finalized
        verdicts: dict[AttestationData, bool] = {}

        def live(data: AttestationData) -> bool:
            verdict = verdicts.get(data)
            if verdict is None:
                verdict = data.head.slot > finalized.slot and self.is_ancestor(finalized, data.head)
                verdicts[data] = verdict
            return verdict

        self.attestation_signatures = {
            data: entries for data, entries in self.attestation_signatures.items() if live(data)
        }
        self.new_payloads = {data: p for data, p in self.new_payloads.items() if live(data)}
        self.known_payloads = {data: p for data, p in self.known_payloads.items() if live(data)}

    # -- LMD-GHOST ---------------------------------------------------------------------

    def latest_votes(self, pool: ProofPool) -> list[tuple[AttestationData, int]]:
        """Each validator's latest vote in ``pool``, as (vote, voters bitmask) pairs.

        Highest slot wins; between two votes of one slot the first inserted wins; votes
        whose head is at or below finality are ignored (they do not shadow others).
        """
        finalized_slot = self.latest_finalized.slot
        candidates: list[tuple[int, int, AttestationData, int]] = []
        for order, (data, proofs) in enumerate(pool.items()):
            if data.head.slot <= finalized_slot or not proofs:
                continue
            voters = 0
            for proof in proofs:
                voters |= participant_mask(proof.participants)
            if voters:
                candidates.append((-data.slot, order, data, voters))
        candidates.sort(key=lambda candidate: (candidate[0], candidate[1]))
        assigned = 0
        votes: list[tuple[AttestationData, int]] = []
        for _, _, data, voters in candidates:
            fresh = voters & ~assigned
            if fresh:
                assigned |= fresh
                votes.append((data, fresh))
        return votes

    def _weights(
        self, votes: Iterable[tuple[AttestationData, int]], start_slot: int
    ) -> dict[bytes, int]:
        """Votes crediting each block strictly above ``start_slot`` (head and ancestors)."""
        blocks = self.blocks
        pending: dict[bytes, int] = {}
        for data, voters in votes:
            root = data.head.root
            block = blocks.get(root)
            if block is not None and block.slot > start_slot:
                pending[root] = pending.get(root, 0) + voters.bit_count()
        # Push counts up the tree, highest slot first: a parent's slot is below all its
        # children's, so it is popped after every descendant has handed its count up and
        # each block is visited once, however many votes pass through it.
        heap = [(-blocks[root].slot, root) for root in pending]
        heapq.heapify(heap)
        weights: dict[bytes, int] = {}
        while heap:
            _, root = heapq.heappop(heap)
            count = pending.pop(root)
            weights[root] = count
            parent_root = blocks[root].parent_root
            parent = blocks.get(parent_root)
            if parent is None or parent.slot <= start_slot:
                continue
            if parent_root in pending:
                pending[parent_root] += count
            else:
                pending[parent_root] = count
                heapq.heappush(heap, (-parent.slot, parent_root))
        return weights

    def block_weights(self) -> dict[bytes, int]:
        """Counted-pool weight of every block above the finalized slot."""
        votes = self.latest_votes(self.known_payloads)
        return self._weights(votes, self.latest_finalized.slot)

    def _ghost(
        self,
        start_root: bytes,
        votes: list[tuple[AttestationData, int]],
        min_score: int | None = None,
    ) -> bytes:
        start_block = self.blocks.get(start_root)
        if start_block is None:
            raise KeyError(f"fork-choice start {start_root.hex()} is not a known block")
        weights = self._weights(votes, start_block.slot)
        children_of = self._children
        head = start_root
        while children := children_of.get(head):
            best: tuple[int, bytes] | None = None
            for child in children:
                weight = weights.get(child, 0)
                if min_score is not None and weight < min_score:
                    continue
                candidate = (weight, child)
                if best is None or candidate > best:
                    best = candidate
            if best is None:
                break
            head = best[1]
        return head

    @loop_only
    def update_head(self) -> bytes:
        """Recompute the head from the latest justified root; returns it."""
        votes = self.latest_votes(self.known_payloads)
        head = self._ghost(self.latest_justified.root, votes)
        self.head = head
        # Keep the finalized checkpoint on the head's chain: the head state's finalized
        # slot, resolved to the ancestor block at that slot.
        finalized = self.states[head].latest_finalized
        blocks = self.blocks
        candidate = blocks.get(finalized.root)
        if candidate is not None and candidate.slot == finalized.slot:
            # The state's finalized root comes from the head's own history, so when it is
            # a known block it is the ancestor the climb below would find.
            self.latest_finalized = Checkpoint(root=finalized.root, slot=finalized.slot)
            return head
        root = head
        while (block := blocks.get(root)) is not None and block.slot > finalized.slot:
            if block.parent_root not in blocks:
                break
            root = block.parent_root
        if blocks[root].slot == finalized.slot:
            self.latest_finalized = Checkpoint(root=root, slot=finalized.slot)
        return head

    @loop_only
    def update_safe_target(self) -> bytes:
        """The deepest block that 2/3 of this slot's pending voters support."""
        validator_count = self.states[self.head].validator_count
        min_score = -(-2 * validator_count // 3)
        votes = self.latest_votes(self.new_payloads)
        self.safe_target = self._ghost(self.latest_justified.root, votes, min_score)
        return self.safe_target

    # -- aggregation -------------------------------------------------------------------

    @loop_only
    def aggregate(self) -> list[SignedAggregatedAttestation]:
        """Fold fresh signatures and pending proofs into one proof per vote (interval 2)."""
        validators = self.states[self.head].validators
        produced: list[SignedAggregatedAttestation] = []
        fresh_votes = dict.fromkeys([*self.new_payloads, *self.attestation_signatures])
        for data in fresh_votes:
            children, covered = select_proofs_for_coverage(
                self.new_payloads.get(data), self.known_payloads.get(data)
            )
            raw = sorted(
                (entry for entry in self.attestation_signatures.get(data, ())),
                key=lambda entry: entry[0],
            )
            signatures = [
                (index, validators[index].attestation_public_key, signature)
                for index, signature in raw
                if not covered >> index & 1
            ]
            if not signatures and len(children) < 2:
                continue
            participants = covered
            for index, _, _ in signatures:
                participants |= 1 << index
            child_inputs = [
                (
                    child.proof,
                    [
                        validators[i].attestation_public_key
                        for i in _indices(participant_mask(child.participants))
                    ],
                )
                for child in children
            ]
            proof = self.verifier.aggregate(
                attestation_data_root(data), data.slot, signatures, child_inputs
            )
            bits = Bitlist(
                participants.bit_length(),
                participants.to_bytes((participants.bit_length() + 7) // 8, "little"),
            )
            produced.append(
                SignedAggregatedAttestation(
                    data=data, proof=SingleMessageAggregate(participants=bits, proof=proof)
                )
            )
        self.new_payloads = {aggregate.data: {aggregate.proof} for aggregate in produced}
        self.attestation_signatures = {
            data: entries
            for data, entries in self.attestation_signatures.items()
            if data not in self.new_payloads
        }
        return produced

    # -- validator duties --------------------------------------------------------------

    @loop_only
    def attestation_target(self) -> Checkpoint:
        """The checkpoint a validator should vote as target now."""
        blocks = self.blocks
        root = self.head
        finalized_slot = self.latest_finalized.slot
        lower_bound = max(blocks[self.safe_target].slot, finalized_slot)
        for _ in range(JUSTIFICATION_LOOKBACK_SLOTS):
            block = blocks[root]
            if block.slot > lower_bound:
                root = block.parent_root
            else:
                break
        while True:
            block = blocks[root]
            if block.slot <= finalized_slot or is_justifiable_after(block.slot, finalized_slot):
                break
            root = block.parent_root
        return Checkpoint(root=root, slot=blocks[root].slot)

    @loop_only
    def produce_attestation_data(self, slot: int) -> AttestationData:
        """What this node votes for at ``slot``: head, target, and the head's source."""
        head = Checkpoint(root=self.head, slot=self.blocks[self.head].slot)
        target = self.attestation_target()
        source = self.states[self.head].latest_justified
        if source.root == ZERO_ROOT:
            source = Checkpoint(root=self.head, slot=source.slot)
        if source.slot > target.slot:
            # The target walk is bounded by the safe target and finalization, never by
            # the head's justified checkpoint, so on a sparse chain it can land behind
            # the source: a vote every node would refuse. leanSpec asserts here (its
            # node's validator dies: leanSpec issue #1206); the other lean clients, and
            # leanSpec's proposed fix (#1207), vote for the justified checkpoint itself,
            # which is on the head chain and justifiable by construction.
            target = source
        return AttestationData(slot=slot, head=head, target=target, source=source)


def select_proofs_for_coverage(
    priority: set[SingleMessageAggregate] | None,
    fallback: set[SingleMessageAggregate] | None = None,
) -> tuple[list[SingleMessageAggregate], int]:
    """Greedy set cover: proofs adding the most uncovered validators, priority pool first.

    Ties go to the larger canonical encoding, so the pick never depends on set order.
    Returns the chosen proofs and the bitmask of validators they cover.
    """
    chosen: list[SingleMessageAggregate] = []
    covered = 0
    for pool in (priority, fallback):
        if not pool:
            continue
        masks = {proof: participant_mask(proof.participants) for proof in pool}
        encodings = {proof: proof.encode() for proof in pool}
        candidates = set(pool)
        while candidates:
            best = max(
                candidates,
                key=lambda proof: ((masks[proof] & ~covered).bit_count(), encodings[proof]),
            )
            gained = masks[best] & ~covered
            if not gained:
                break
            chosen.append(best)
            covered |= gained
            candidates.discard(best)
    return chosen, covered

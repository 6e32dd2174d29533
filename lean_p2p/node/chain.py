"""The chain actor's logic: fork-choice store, parked-block pool, validator duties. Loop thread.

Sans-IO like the P2P core: every input is a value (an interval tick, or what the P2P core
hands over) and every output is a list of :data:`~lean_p2p.p2p.chain.ChainRequest` values
(fetch these roots, publish this block / attestation / aggregate). No clock, no I/O.
Deterministic: the same inputs in the same order give the same store, which is what
record and replay rely on.

Duties per interval of slot ``s`` (lstar): 0 — the proposer of ``s`` (round-robin)
accepts pending votes and proposes; 1 — every local validator votes; 2 — an aggregator
folds the votes it collected into aggregates; 3 — safe target; 4 — accept pending votes.
Signatures are placeholders (see :mod:`lean_p2p.node.signing`): the devnet runs with the
mocked prover, like the leanSpec vectors.

A block whose parent is unknown is parked (bounded, every drop counted) and its parent
is fetched by root; when a block is imported, the blocks parked on it are imported next.
A rejected block or vote is counted by reason and logged; it never raises out.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from lean_p2p.consensus.clock import SlotClock
from lean_p2p.consensus.config import INTERVALS_PER_SLOT, MAX_ATTESTATIONS_DATA
from lean_p2p.consensus.errors import ConsensusRejection
from lean_p2p.consensus.signatures import SignatureVerifier, mock_proof
from lean_p2p.consensus.state import ChainState
from lean_p2p.consensus.state_transition import process_block, process_slots, proposer_for_slot
from lean_p2p.consensus.store import ForkChoiceStore, select_proofs_for_coverage
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
    State,
)
from lean_p2p.node.config import GenesisSpec
from lean_p2p.node.genesis import genesis_block, genesis_state
from lean_p2p.node.signing import placeholder_signature
from lean_p2p.p2p.chain import (
    AggregateReceived,
    AttestationReceived,
    BlockReceived,
    ChainRequest,
    FetchAbandoned,
    FetchRoots,
    PublishAggregate,
    PublishAttestation,
    PublishBlock,
    PublishRejected,
    ToChain,
)

__all__ = ["ChainService", "ChainSummary", "ChainTimings"]

logger = logging.getLogger(__name__)

MAX_PARKED_BLOCKS = 1024


@dataclass(frozen=True, slots=True)
class ChainSummary:
    """The chain's headline numbers (for progress lines, metrics and the devnet JSON)."""

    current_slot: int
    head_slot: int
    head_root: bytes
    justified_slot: int
    finalized_slot: int
    finalized_root: bytes
    safe_target_slot: int
    blocks: int
    parked: int


class ChainTimings:
    """Processing times the metrics export (seconds of loop-thread CPU per operation)."""

    def __init__(self) -> None:
        self.block_import: list[float] = []
        self.attestation: list[float] = []

    def drain(self) -> tuple[list[float], list[float]]:
        blocks, attestations = self.block_import, self.attestation
        self.block_import, self.attestation = [], []
        return blocks, attestations


class ChainService:
    """Store + parked blocks + duties of the local validators (loop thread only)."""

    def __init__(
        self,
        genesis: GenesisSpec,
        *,
        validator_indices: Sequence[int] = (),
        is_aggregator: bool = False,
        verifier: SignatureVerifier | None = None,
        max_parked: int = MAX_PARKED_BLOCKS,
    ) -> None:
        state = genesis_state(genesis)
        anchor = genesis_block(state)
        self.store = ForkChoiceStore(
            state,
            anchor.block,
            validator_index=validator_indices[0] if validator_indices else None,
            verifier=verifier,
        )
        self.anchor_root = anchor.block.hash_tree_root()
        self.slot_clock = SlotClock(genesis.genesis_time)
        self.validator_indices = tuple(validator_indices)
        self.is_aggregator = is_aggregator
        self.counters: Counter[str] = Counter()
        self.timings = ChainTimings()
        self.reorg_depths: list[int] = []  # drained by the node into its metrics
        self.last_aggregate_coverage = 0  # validators in the latest aggregate seen
        self._signed_blocks: dict[bytes, SignedBlock] = {self.anchor_root: anchor}
        self._parked: dict[bytes, dict[bytes, SignedBlock]] = {}  # parent -> root -> block
        self._parked_count = 0
        self._max_parked = max_parked
        self._validator_count = len(genesis.validator_keys)
        self._previous_head = Checkpoint(root=self.anchor_root, slot=0)

    # --- ChainReader (for the P2P core) ---------------------------------------------

    def head(self) -> Checkpoint:
        store = self.store
        return Checkpoint(root=store.head, slot=store.blocks[store.head].slot)

    def finalized(self) -> Checkpoint:
        return self.store.latest_finalized

    def root_at_slot(self, slot: int) -> bytes | None:
        blocks = self.store.blocks
        root = self.store.head
        while (block := blocks.get(root)) is not None and block.slot > slot:
            root = block.parent_root
        return root if block is not None and block.slot == slot else None

    def get_block(self, root: bytes) -> SignedBlock | None:
        return self._signed_blocks.get(root)

    def blocks_by_range(self, start_slot: int, count: int) -> Sequence[SignedBlock]:
        end = start_slot + count
        blocks = self.store.blocks
        found: list[SignedBlock] = []
        root = self.store.head
        while (block := blocks.get(root)) is not None and block.slot >= start_slot:
            if block.slot < end and root in self._signed_blocks:
                found.append(self._signed_blocks[root])
            root = block.parent_root
        found.reverse()
        return found

    # --- views ------------------------------------------------------------------------

    def summary(self) -> ChainSummary:
        store = self.store
        return ChainSummary(
            current_slot=store.current_slot,
            head_slot=store.blocks[store.head].slot,
            head_root=store.head,
            justified_slot=store.latest_justified.slot,
            finalized_slot=store.latest_finalized.slot,
            finalized_root=store.latest_finalized.root,
            safe_target_slot=store.blocks[store.safe_target].slot,
            blocks=len(store.blocks),
            parked=self._parked_count,
        )

    def fingerprint(self) -> bytes:
        """A digest of the whole store: blocks, head, checkpoints, time and vote pools.

        Two stores with equal fingerprints agree on everything fork choice uses; replay
        compares these to prove it reproduced a recorded node exactly.
        """
        store = self.store
        digest = hashlib.sha256()
        for root in sorted(store.blocks):
            digest.update(root + store.states[root].hash_tree_root())
        digest.update(store.head + store.safe_target + store.time.to_bytes(8, "little"))
        digest.update(store.latest_justified.encode() + store.latest_finalized.encode())
        for name, pool in (("new", store.new_payloads), ("known", store.known_payloads)):
            digest.update(name.encode())
            for data in sorted(pool, key=lambda d: d.hash_tree_root()):
                digest.update(data.hash_tree_root())
                for proof in sorted(p.encode() for p in pool[data]):
                    digest.update(hashlib.sha256(proof).digest())
        for data in sorted(store.attestation_signatures, key=lambda d: d.hash_tree_root()):
            digest.update(data.hash_tree_root())
            for index, _ in sorted(store.attestation_signatures[data]):
                digest.update(index.to_bytes(8, "little"))
        return digest.digest()

    def finalized_state(self) -> State | None:
        state = self.store.states.get(self.store.latest_finalized.root)
        return state.to_container() if state is not None else None

    # --- inputs -----------------------------------------------------------------------

    def on_interval(self, interval: int) -> list[ChainRequest]:
        """Advance the store to ``interval`` (since genesis) and run this node's duties."""
        requests = self._on_interval(interval)
        self._note_head()
        return requests

    def on_input(self, value: ToChain) -> list[ChainRequest]:
        """Take what the P2P core hands over: blocks, votes, aggregates, failures."""
        requests = self._on_input(value)
        self._note_head()
        return requests

    def _note_head(self) -> None:
        """Count a reorg when the head moves to a block that does not descend from it."""
        store = self.store
        previous = self._previous_head
        if store.head == previous.root:
            return
        head = self.head()
        self._previous_head = head
        if store.is_ancestor(previous, head):
            return
        root = previous.root
        blocks = store.blocks
        while (block := blocks.get(root)) is not None and not store.is_ancestor(
            Checkpoint(root=root, slot=block.slot), head
        ):
            root = block.parent_root
        ancestor_slot = block.slot if block is not None else 0
        self.counters["reorgs"] += 1
        self.reorg_depths.append(previous.slot - ancestor_slot)

    def _on_interval(self, interval: int) -> list[ChainRequest]:
        store = self.store
        if interval <= store.time:
            self.counters["stale_ticks"] += 1
            return []
        slot, phase = divmod(interval, INTERVALS_PER_SLOT)
        proposer = proposer_for_slot(slot, self._validator_count)
        proposing = phase == 0 and slot > 0 and proposer in self.validator_indices
        aggregates = store.on_tick(
            interval, has_proposal=proposing, is_aggregator=self.is_aggregator
        )
        requests: list[ChainRequest] = [PublishAggregate(a) for a in aggregates]
        self.counters["aggregates_produced"] += len(aggregates)
        for aggregate in aggregates:
            self.last_aggregate_coverage = aggregate.proof.participants.count()
        if proposing:
            requests += self._propose(slot, proposer)
        if phase == 1:
            requests += self._attest(slot)
        return requests

    def _on_input(self, value: ToChain) -> list[ChainRequest]:
        match value:
            case BlockReceived():
                return self._import(value.block, value.root)
            case AttestationReceived():
                self._accept_attestation(value.attestation)
            case AggregateReceived():
                try:
                    self.store.on_gossip_aggregated_attestation(value.aggregate)
                    self.counters["aggregates_accepted"] += 1
                    self.last_aggregate_coverage = value.aggregate.proof.participants.count()
                except ConsensusRejection as rejection:
                    self._reject("aggregate", rejection)
            case FetchAbandoned():
                self._drop_parked_on(value.roots, value.reason)
            case PublishRejected():
                self.counters[f"publish_rejected_{value.topic.name.lower()}"] += 1
        return []

    # --- blocks -----------------------------------------------------------------------

    def _import(self, signed_block: SignedBlock, root: bytes) -> list[ChainRequest]:
        store = self.store
        if root in store.blocks:
            self.counters["blocks_duplicate"] += 1
            return []
        parent = signed_block.block.parent_root
        if parent not in store.blocks:
            return self._park(signed_block, root)
        requests: list[ChainRequest] = []
        pending = [(signed_block, root)]
        while pending:  # import, then whatever was parked on it, breadth first
            block, block_root = pending.pop(0)
            started = time.perf_counter()
            try:
                store.on_block(block)
            except ConsensusRejection as rejection:
                self._reject("block", rejection, slot=block.block.slot)
                self._drop_parked_on((block_root,), "parent rejected")
                continue
            finally:
                self.timings.block_import.append(time.perf_counter() - started)
            self._signed_blocks[block_root] = block
            self.counters["blocks_imported"] += 1
            children = self._parked.pop(block_root, {})
            self._parked_count -= len(children)
            pending += [(child, child_root) for child_root, child in children.items()]
        return requests

    def _park(self, signed_block: SignedBlock, root: bytes) -> list[ChainRequest]:
        parent = signed_block.block.parent_root
        siblings = self._parked.setdefault(parent, {})
        if root in siblings:
            self.counters["blocks_parked_duplicate"] += 1
            return []
        if self._parked_count >= self._max_parked:
            self.counters["blocks_parked_dropped"] += 1
            logger.warning("parked-block pool full, block dropped", extra={"root": root.hex()})
            if not siblings:
                del self._parked[parent]
            return []
        siblings[root] = signed_block
        self._parked_count += 1
        self.counters["blocks_parked"] += 1
        return [FetchRoots((parent,))]

    def _drop_parked_on(self, roots: Sequence[bytes], reason: str) -> None:
        pending = list(roots)
        while pending:
            children = self._parked.pop(pending.pop(), {})
            self._parked_count -= len(children)
            self.counters["blocks_parked_abandoned"] += len(children)
            pending += list(children)
        if roots:
            logger.info("parked blocks abandoned", extra={"roots": len(roots), "reason": reason})

    # --- attestations -----------------------------------------------------------------

    def _accept_attestation(self, attestation: SignedAttestation) -> bool:
        started = time.perf_counter()
        try:
            self.store.on_gossip_attestation(attestation, is_aggregator=self.is_aggregator)
        except ConsensusRejection as rejection:
            self._reject("attestation", rejection)
            return False
        finally:
            self.timings.attestation.append(time.perf_counter() - started)
        self.counters["attestations_accepted"] += 1
        return True

    def _reject(self, kind: str, rejection: ConsensusRejection, **fields: object) -> None:
        self.counters[f"{kind}_rejected_{rejection.reason.value.lower()}"] += 1
        self.counters[f"{kind}s_rejected"] += 1
        logger.info(
            f"{kind} rejected",
            extra={"reason": rejection.reason.value, "detail": str(rejection), **fields},
        )

    # --- duties -----------------------------------------------------------------------

    def _attest(self, slot: int) -> list[ChainRequest]:
        if not self.validator_indices:
            return []
        data = self.store.produce_attestation_data(slot)
        message = data.hash_tree_root()
        requests: list[ChainRequest] = []
        for index in self.validator_indices:
            attestation = SignedAttestation(
                validator_index=index,
                data=data,
                signature=placeholder_signature(index, slot, message),
            )
            self._accept_attestation(attestation)
            requests.append(PublishAttestation(attestation))
        self.counters["attestations_produced"] += len(requests)
        return requests

    def _propose(self, slot: int, proposer: int) -> list[ChainRequest]:
        store = self.store
        parent_root = store.head
        pre = process_slots(store.states[parent_root], slot)
        attestations = self._select_attestations(pre, slot)
        post = process_block(
            pre, self._block(slot, proposer, parent_root, b"\0" * 32, attestations)
        )
        block = self._block(slot, proposer, parent_root, post.hash_tree_root(), attestations)
        proof = mock_proof(block.hash_tree_root() + slot.to_bytes(8, "little"))
        signed = SignedBlock(block=block, proof=MultiMessageAggregate(proof=proof))
        root = block.hash_tree_root()
        self._import(signed, root)
        if root not in store.blocks:
            self.counters["proposals_failed"] += 1
            return []
        self.counters["blocks_proposed"] += 1
        return [PublishBlock(signed)]

    @staticmethod
    def _block(
        slot: int,
        proposer: int,
        parent_root: bytes,
        state_root: bytes,
        attestations: tuple[AggregatedAttestation, ...],
    ) -> Block:
        return Block(
            slot=slot,
            proposer_index=proposer,
            parent_root=parent_root,
            state_root=state_root,
            body=BlockBody(attestations=attestations),
        )

    def _select_attestations(
        self, state: ChainState, slot: int
    ) -> tuple[AggregatedAttestation, ...]:
        """Votes with proofs the block can count: justified source, on this chain.

        Votes for the currently justified source come first (they can move
        justification), then by target slot and coverage; at most
        ``MAX_ATTESTATIONS_DATA`` distinct votes.
        """
        blocks = self.store.blocks
        justified = state.latest_justified
        candidates: list[tuple[tuple[bool, int, int], AttestationData, int]] = []
        for data, proofs in self.store.known_payloads.items():
            if not proofs or data.slot >= slot or data.head.root not in blocks:
                continue
            if data.target.slot <= data.source.slot:
                continue
            _, covered = select_proofs_for_coverage(proofs)
            if covered == 0:
                continue
            key = (data.source == justified, data.target.slot, covered.bit_count())
            candidates.append((key, data, covered))
        candidates.sort(key=lambda candidate: candidate[0], reverse=True)
        return tuple(
            AggregatedAttestation(aggregation_bits=_bitlist(covered), data=data)
            for _, data, covered in candidates[:MAX_ATTESTATIONS_DATA]
        )


def _bitlist(mask: int) -> Bitlist:
    length = mask.bit_length()
    return Bitlist(length, mask.to_bytes((length + 7) // 8, "little"))

"""The chain actor's logic: fork-choice store, parked-block pool, validator duties. Loop thread.

Sans-IO like the P2P core: every input is a value (an interval tick, or what the P2P core
hands over) and every output is a list of :data:`~lean_p2p.p2p.chain.ChainRequest` values
(fetch these roots, publish this block / attestation / aggregate). No clock, no I/O.
Deterministic: the same inputs in the same order give the same store, which is what
record and replay rely on.

Duties per interval of slot ``s`` (lstar, :func:`~lean_p2p.consensus.validator.duties_at`):
0 — the proposer of ``s`` accepts pending votes and proposes
(:func:`~lean_p2p.consensus.validator.produce_block`); 1 — every local validator votes;
2 — an aggregator folds the votes it collected into aggregates; 3 — safe target;
4 — accept pending votes. Signatures are placeholders
(:class:`~lean_p2p.consensus.validator.PlaceholderSigner`): the devnet runs with the
mocked prover, like the leanSpec vectors.

Every gossip input ends in a verdict for the driver (:class:`~lean_p2p.p2p.chain.ReportGossip`),
which forwards the message only on ACCEPT: a block that imports, a vote or aggregate the
store takes. A rejection that proves the message invalid (a bad signature, inconsistent
checkpoints, a state transition that fails) is REJECT, and counts against the peer that
sent it; one that depends on this node's view or clock (an unknown block, a slot too far
ahead), a duplicate, a second vote by a validator in one slot, or a block that waits for
its parent is IGNORE.

With ``verify_async``, a gossip vote's signature is not checked here: once everything
else about the vote checks out, the chain asks for it to be verified
(:class:`~lean_p2p.node.verification.VerifySignatures`, a numbered ticket), holds the
vote, and hands it to the store only when the result comes back (:meth:`on_verified`):
the store sees only verified votes, and the loop never spends a verification. The
verdict for the driver waits for the result too; a request the verifier could not take
(overloaded, or closing) ends in IGNORE.

A block whose parent is unknown waits in the consensus package's
:class:`~lean_p2p.consensus.parked.ParkedBlockPool` (bounded in count and age, every
eviction counted); its missing ancestors go to the P2P core as one
:class:`~lean_p2p.p2p.chain.FetchRoots` of up to 1,024 roots per flush. When a block is
imported, the blocks parked on it are imported next. A rejected block or vote is counted
by reason and logged; it never raises out.

The pool's clock is the store's: ``now`` is the store time in seconds since genesis, so
parking, retries and expiry replay exactly like everything else.

Persistence (``storage``, a :class:`~lean_p2p.node.persistence.ChainWriter`): every block
imported or proposed, the finalized and justified checkpoints when they move, every
:data:`SNAPSHOT_INTERVAL_SLOTS` slots of finality a finalized state (the restart's
anchor), the head, and once per slot (interval 4) a snapshot of the vote pools are
offered to it after each input; the offers only append references, the writer thread
encodes and commits. A node restarted from its database (``restored``) starts from the
anchor state and replays the committed blocks above it onto it, without verifying
their signatures again (they were verified before they were committed), which brings
back the committed finalized and justified checkpoints (checked, and counted if not),
then takes the committed votes back into its pools.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from lean_p2p.consensus.clock import SlotClock
from lean_p2p.consensus.config import INTERVALS_PER_SLOT, MILLISECONDS_PER_INTERVAL
from lean_p2p.consensus.errors import ConsensusRejection, RejectionReason
from lean_p2p.consensus.hashing import attestation_data_root
from lean_p2p.consensus.parked import ParkedBlockPool, import_with_parking
from lean_p2p.consensus.signatures import SignatureVerifier
from lean_p2p.consensus.state_transition import proposer_for_slot
from lean_p2p.consensus.store import ForkChoiceStore, ProofPool
from lean_p2p.consensus.validator import (
    Duty,
    PlaceholderSigner,
    Signer,
    duties_at,
    produce_attestation,
    produce_block,
)
from lean_p2p.containers import (
    Block,
    Checkpoint,
    SignedAggregatedAttestation,
    SignedAttestation,
    SignedBlock,
    State,
)
from lean_p2p.crypto import SlotOutsideKey
from lean_p2p.net import GossipVerdict
from lean_p2p.node.config import GenesisSpec
from lean_p2p.node.database import StoredChain, StoredCheckpoint, VotePool
from lean_p2p.node.genesis import genesis_block, genesis_state
from lean_p2p.node.verification import (
    Outcome,
    SignatureCheck,
    SignaturesVerified,
    VerifySignatures,
)
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
    ReportGossip,
    ToChain,
)

__all__ = [
    "VIEW_DEPENDENT_REASONS",
    "ChainOutput",
    "ChainService",
    "ChainStorage",
    "ChainSummary",
    "ChainTimings",
    "gossip_verdict",
]

#: What the chain asks for: of the P2P actor, or of the verification service.
ChainOutput = ChainRequest | VerifySignatures

logger = logging.getLogger(__name__)

MAX_PARKED_BLOCKS = 1024
#: Slots behind the current one for which a validator's first vote is remembered; a
#: second vote by it in one of them is IGNOREd (older votes are refused by the store).
VOTE_MEMORY_SLOTS = 64
#: How far (slots) a head may lag the clock before blocks waiting above it pause the
#: validators (see ``ChainService._paused_for_sync``).
SYNC_LAG_SLOTS = 2
#: Paused slots without the head moving after which the validators resume anyway.
MAX_SYNC_PAUSE_SLOTS = 8
#: Slots finality must advance before a new finalized state is stored as the restart's
#: anchor. Copying a state out of the store costs the loop more than importing a block
#: (``lean-p2p bench storage``); a restart replays at most this many slots more.
SNAPSHOT_INTERVAL_SLOTS = 32

#: Rejections that depend on what this node has seen, or on its clock: the message may
#: be valid in another view, so it is IGNOREd and its sender not penalized.
VIEW_DEPENDENT_REASONS = frozenset(
    {
        RejectionReason.UNKNOWN_PARENT_BLOCK,
        RejectionReason.UNKNOWN_SOURCE_BLOCK,
        RejectionReason.UNKNOWN_TARGET_BLOCK,
        RejectionReason.UNKNOWN_HEAD_BLOCK,
        RejectionReason.ATTESTATION_TOO_FAR_IN_FUTURE,
        RejectionReason.JUSTIFIED_SLOT_OUT_OF_RANGE,
    }
)


def gossip_verdict(reason: RejectionReason) -> GossipVerdict:
    """REJECT for what proves a message invalid, IGNORE for what depends on the view."""
    return GossipVerdict.IGNORE if reason in VIEW_DEPENDENT_REASONS else GossipVerdict.REJECT


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

    def __str__(self) -> str:
        return (
            f"slot {self.current_slot}: head {self.head_slot} (0x{self.head_root.hex()[:8]}), "
            f"justified {self.justified_slot}, finalized {self.finalized_slot} "
            f"(0x{self.finalized_root.hex()[:8]}), {self.blocks} blocks, {self.parked} parked"
        )


class ChainStorage(Protocol):
    """Where the chain offers what a restart needs (loop thread; must not block)."""

    def offer_block(self, root: bytes, block: SignedBlock) -> None: ...

    def offer_checkpoints(
        self,
        anchor: StoredCheckpoint | None,
        finalized: Checkpoint | None,
        justified: Checkpoint | None,
    ) -> None: ...

    def offer_votes(
        self, votes: Sequence[tuple[VotePool, SignedAggregatedAttestation]], time: int
    ) -> None: ...

    def offer_head(self, head: bytes, safe_target: bytes) -> None: ...

    def flush(self, *, now: bool = False) -> bool: ...


class _CommittedBlockVerifier:
    """The restart replay's verifier: a committed block's proof was verified before it
    was committed, so it is not verified again; anything else goes to the real one."""

    def __init__(self, real: SignatureVerifier) -> None:
        self.real = real

    @property
    def mode(self) -> str:
        return self.real.mode

    def verify_attestation(
        self, public_key: bytes, slot: int, message: bytes, signature: bytes
    ) -> bool:
        return self.real.verify_attestation(public_key, slot, message, signature)

    def verify_aggregate(
        self, public_keys: Sequence[bytes], message: bytes, slot: int, proof: bytes
    ) -> bool:
        return self.real.verify_aggregate(public_keys, message, slot, proof)

    def verify_block_proof(
        self,
        public_keys_per_message: Sequence[Sequence[bytes]],
        messages: Sequence[tuple[bytes, int]],
        proof: bytes,
    ) -> bool:
        return True

    def aggregate(
        self,
        message: bytes,
        slot: int,
        signatures: Sequence[tuple[int, bytes, bytes]],
        children: Sequence[tuple[bytes, Sequence[bytes]]],
    ) -> bytes:
        return self.real.aggregate(message, slot, signatures, children)


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
        signer: Signer | None = None,
        verify_async: bool = False,
        anchor: tuple[State, SignedBlock] | None = None,
        storage: ChainStorage | None = None,
        restored: StoredChain | None = None,
    ) -> None:
        """``anchor``: the finalized state and its block to start from (checkpoint
        sync, :mod:`lean_p2p.node.checkpoint_sync`); None: genesis. ``restored``: the
        chain committed by an earlier run (it replaces ``anchor``). ``storage``: where
        changes are offered for persisting."""
        if restored is not None:
            anchor = (restored.anchor.state, restored.anchor.block)
        if anchor is None:
            state = genesis_state(genesis)
            anchor_block = genesis_block(state)
        else:
            state, anchor_block = anchor
        self.store = ForkChoiceStore(
            state,
            anchor_block.block,
            validator_index=validator_indices[0] if validator_indices else None,
            verifier=verifier,
        )
        self.anchor_root = anchor_block.block.hash_tree_root()
        self.slot_clock = SlotClock(genesis.genesis_time)
        self.validator_indices = tuple(validator_indices)
        self.is_aggregator = is_aggregator
        self.counters: Counter[str] = Counter()
        self.timings = ChainTimings()
        self.reorg_depths: list[int] = []  # drained by the node into its metrics
        self.last_aggregate_coverage = 0  # validators in the latest aggregate seen
        self._signed_blocks: dict[bytes, SignedBlock] = {self.anchor_root: anchor_block}
        self.parked = ParkedBlockPool(max_blocks=max_parked)
        self._duties_paused = False
        #: the head slot when the current pause began (or last moved), and that slot
        self._pause_head: int | None = None
        self._pause_start = 0
        self._unsignable_keys: set[tuple[int, str]] = set()
        self._signer: Signer = signer if signer is not None else PlaceholderSigner()
        self._validator_count = len(genesis.validator_keys)
        self._previous_head = Checkpoint(root=self.anchor_root, slot=anchor_block.block.slot)
        #: validators whose vote for a slot was accepted from gossip, by slot
        self._votes_seen: dict[int, set[int]] = {}
        self.verify_async = verify_async
        #: gossip votes waiting for their signature's verification, by ticket
        self._awaiting: dict[int, tuple[SignedAttestation, bytes]] = {}
        self._next_ticket = 1
        self.storage = storage
        self._stored_finalized: Checkpoint | None = None
        self._stored_justified: Checkpoint | None = None
        self._stored_anchor_slot: int | None = None
        self._stored_head = (b"", b"")
        if restored is not None:
            self._restore(restored)
        self._persist()

    # --- persistence --------------------------------------------------------------------

    def _restore(self, restored: StoredChain) -> None:
        """Replay the committed blocks above the finalized state, then take the
        committed votes back; what does not fit (a block whose parent was never
        committed) is counted and logged, not fatal."""
        store = self.store
        # The finalized chain before the anchor: not fork choice's business, but peers
        # syncing from genesis ask for it (BlocksByRange, BlocksByRoot).
        for root, ancestor in restored.history:
            self._signed_blocks[root] = ancestor
        real_verifier = store.verifier
        store.verifier = _CommittedBlockVerifier(real_verifier)
        try:
            for block in restored.blocks:
                try:
                    root = store.on_block(block, recompute_head=False)
                except ConsensusRejection as rejection:
                    self.counters["restore_blocks_skipped"] += 1
                    logger.warning(
                        "committed block not restored",
                        extra={"slot": block.block.slot, "reason": rejection.reason.value},
                    )
                    continue
                self._signed_blocks[root] = block
                self.counters["restore_blocks"] += 1
        finally:
            store.verifier = real_verifier
        store.update_head()
        finalized_slot = store.latest_finalized.slot
        for pool_name, vote in restored.votes:
            data = vote.data
            if data.head.slot <= finalized_slot or not all(
                store.has_block(c.root) for c in (data.head, data.target, data.source)
            ):
                continue
            pool = store.known_payloads if pool_name == "known" else store.new_payloads
            pool.setdefault(data, set()).add(vote.proof)
            self.counters["restore_votes"] += 1
        store.update_head()
        # Votes the replay re-added for blocks at or below finality (the spec prunes
        # them only on an import that moves finality, which a batch replay skips).
        store.prune_stale_attestation_data()
        # Resume where it stopped: at the stored time, aiming at the stored safe target.
        # Left at the anchor's time, the catch-up ticks would recompute the safe target
        # from empty pools, and the next votes would aim too low to justify anything
        # (seen: a slot or more without justification after every restart).
        if restored.time is not None and restored.time > store.time:
            store.time = restored.time
        if restored.safe_target is not None and store.has_block(restored.safe_target):
            store.safe_target = restored.safe_target
        self._previous_head = self.head()
        for kind, reached, committed in (
            ("finalized", store.latest_finalized, restored.finalized),
            ("justified", store.latest_justified, restored.justified),
        ):
            if reached != committed:
                # A block missing from the file (dropped while the disk was behind).
                self.counters[f"restore_{kind}_differs"] += 1
                logger.warning(
                    f"restored {kind} checkpoint differs from the committed one",
                    extra={"committed_slot": committed.slot, "restored_slot": reached.slot},
                )
        logger.info(
            "chain restored from the database",
            extra={
                "finalized_slot": finalized_slot,
                "justified_slot": store.latest_justified.slot,
                "head_slot": store.blocks[store.head].slot,
                "blocks": self.counters["restore_blocks"],
                "votes": self.counters["restore_votes"],
            },
        )

    def attach_storage(self, storage: ChainStorage) -> None:
        """Offer everything a restart needs to ``storage`` from now on, beginning with
        the current checkpoints, head and votes."""
        self.storage = storage
        self._stored_finalized = self._stored_justified = None
        self._stored_anchor_slot = None
        self._stored_head = (b"", b"")
        self._persist(votes=True)

    def persist_final(self) -> None:
        """The last offer before the storage closes: a votes snapshot as of now, so a
        restart resumes with the votes of the slot it stopped in. (Single signatures
        an aggregator has not folded yet are not kept.)"""
        self._persist(votes=True)

    def _persist(self, *, votes: bool = False) -> None:
        """Offer what changed since the last offer (cheap when nothing did)."""
        storage = self.storage
        if storage is None:
            return
        store = self.store
        anchor = finalized = justified = None
        if store.latest_finalized != self._stored_finalized:
            finalized = self._stored_finalized = store.latest_finalized
            last = self._stored_anchor_slot
            if last is None or finalized.slot >= last + SNAPSHOT_INTERVAL_SLOTS:
                anchor = self.stored_checkpoint(finalized)
                self._stored_anchor_slot = finalized.slot
        if store.latest_justified != self._stored_justified:
            justified = self._stored_justified = store.latest_justified
        if finalized is not None or justified is not None:
            storage.offer_checkpoints(anchor, finalized, justified)
        if votes:
            storage.offer_votes(self.vote_snapshot(), store.time)
        if (store.head, store.safe_target) != self._stored_head:
            self._stored_head = (store.head, store.safe_target)
            storage.offer_head(store.head, store.safe_target)
        storage.flush()

    def stored_checkpoint(self, checkpoint: Checkpoint) -> StoredCheckpoint:
        # The container copy is made here, on the loop: a ChainState shares its history
        # with other forks and must not cross threads (lean_p2p.consensus.state). The
        # store's checkpoints always name blocks it holds (the anchor or imported ones).
        return StoredCheckpoint(
            checkpoint,
            self._signed_blocks[checkpoint.root],
            self.store.states[checkpoint.root].to_container(),
        )

    def vote_snapshot(self) -> list[tuple[VotePool, SignedAggregatedAttestation]]:
        """Every proof in the vote pools, in pool order (references, no copies)."""
        self.store.affinity.check()
        snapshot: list[tuple[VotePool, SignedAggregatedAttestation]] = []
        pools: tuple[tuple[VotePool, ProofPool], ...] = (
            ("known", self.store.known_payloads),
            ("new", self.store.new_payloads),
        )
        for name, pool in pools:
            for data, proofs in pool.items():
                snapshot += [
                    (name, SignedAggregatedAttestation(data=data, proof=proof)) for proof in proofs
                ]
        return snapshot

    def _offer_block(self, root: bytes, block: SignedBlock) -> None:
        if self.storage is not None:
            self.storage.offer_block(root, block)

    # --- ChainReader (for the P2P core) ---------------------------------------------

    def head(self) -> Checkpoint:
        self.store.affinity.check()
        store = self.store
        return Checkpoint(root=store.head, slot=store.blocks[store.head].slot)

    def finalized(self) -> Checkpoint:
        self.store.affinity.check()
        return self.store.latest_finalized

    def _known_block(self, root: bytes) -> Block | None:
        """A block of the store, or one of the history before its anchor (restored
        from the database, kept only to serve peers)."""
        block = self.store.blocks.get(root)
        if block is None and (signed := self._signed_blocks.get(root)) is not None:
            block = signed.block
        return block

    def root_at_slot(self, slot: int) -> bytes | None:
        self.store.affinity.check()
        root = self.store.head
        while (block := self._known_block(root)) is not None and block.slot > slot:
            root = block.parent_root
        return root if block is not None and block.slot == slot else None

    def get_block(self, root: bytes) -> SignedBlock | None:
        self.store.affinity.check()
        return self._signed_blocks.get(root)

    def blocks_by_range(self, start_slot: int, count: int) -> Sequence[SignedBlock]:
        self.store.affinity.check()
        end = start_slot + count
        found: list[SignedBlock] = []
        root = self.store.head
        while (block := self._known_block(root)) is not None and block.slot >= start_slot:
            if block.slot < end and root in self._signed_blocks:
                found.append(self._signed_blocks[root])
            root = block.parent_root
        found.reverse()
        return found

    # --- views ------------------------------------------------------------------------

    def summary(self) -> ChainSummary:
        self.store.affinity.check()
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
            parked=len(self.parked),
        )

    def fingerprint(self) -> bytes:
        """A digest of the whole store: blocks, head, checkpoints, time and vote pools.

        Two stores with equal fingerprints agree on everything fork choice uses; replay
        compares these to prove it reproduced a recorded node exactly.
        """
        self.store.affinity.check()
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
        self.store.affinity.check()
        state = self.store.states.get(self.store.latest_finalized.root)
        return state.to_container() if state is not None else None

    # --- inputs -----------------------------------------------------------------------

    def on_interval(self, interval: int) -> list[ChainRequest]:
        """Advance the store to ``interval`` (since genesis) and run this node's duties."""
        requests = self._on_interval(interval)
        self._note_head()
        self._persist(votes=interval % INTERVALS_PER_SLOT == INTERVALS_PER_SLOT - 1)
        # Every tick also retries roots whose fetch has been in flight too long and
        # expires parked blocks that waited too long.
        return requests + self._flush_parked()

    def on_input(self, value: ToChain) -> list[ChainOutput]:
        """Take what the P2P core hands over: blocks, votes, aggregates, failures; for
        each gossip message, the verdict goes back first (or a request to verify it)."""
        outcome = self._on_input(value)
        self._note_head()
        self._persist()
        requests: list[ChainOutput] = []
        if isinstance(outcome, VerifySignatures):
            requests.append(outcome)
        elif outcome is not None:
            requests += self._report(getattr(value, "message_id", b""), outcome)
        if isinstance(value, BlockReceived | FetchAbandoned):
            requests += self._flush_parked()
        return requests

    def on_verified(self, result: SignaturesVerified) -> list[ChainOutput]:
        """The verification of a held vote came back: hand it to the store or not."""
        held = self._awaiting.pop(result.ticket, None)
        if held is None:
            self.counters["verification_unknown_ticket"] += 1
            return []
        attestation, message_id = held
        if result.outcome is not Outcome.VERIFIED:
            # Not judged: no penalty for the sender, and not forwarded.
            self.counters[f"verification_{result.outcome.value}"] += 1
            verdict = GossipVerdict.IGNORE
        else:
            verdict = self._take_vote(attestation, signature_valid=result.all_valid)
        self._note_head()
        self._persist()
        return self._report(message_id, verdict)

    @property
    def awaiting_verification(self) -> int:
        return len(self._awaiting)

    def _report(self, message_id: bytes, verdict: GossipVerdict) -> list[ChainOutput]:
        if not message_id:
            return []
        self.counters[f"gossip_{verdict.value}"] += 1
        return [ReportGossip(message_id, verdict)]

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
        duties = {
            index: duties_at(slot, phase, index, self._validator_count)
            for index in self.validator_indices
        }
        proposer = proposer_for_slot(slot, self._validator_count)
        proposing = slot > 0 and Duty.PROPOSE in duties.get(proposer, ())
        aggregates = store.on_tick(
            interval, has_proposal=proposing, is_aggregator=self.is_aggregator
        )
        requests: list[ChainRequest] = [PublishAggregate(a) for a in aggregates]
        self.counters["aggregates_produced"] += len(aggregates)
        for aggregate in aggregates:
            self.last_aggregate_coverage = aggregate.proof.participants.count()
        attesters = [index for index, due in duties.items() if Duty.ATTEST in due]
        if (proposing or attesters) and self._paused_for_sync(slot):
            self.counters["duties_skipped_syncing"] += int(proposing) + len(attesters)
            return requests
        if proposing:
            requests += self._propose(slot, proposer)
        if attesters:
            requests += self._attest(slot, attesters)
        return requests

    def _paused_for_sync(self, slot: int) -> bool:
        """Whether this node is still catching up, so its validators wait.

        It is when its head lags the clock by more than :data:`SYNC_LAG_SLOTS` while it
        holds blocks from the network above its head that cannot import yet (their
        parents are on the way): a block or vote now would build on a head the network
        has left. A late joiner of ours once proposed on genesis that way, and a node
        that synced from it followed it onto that fork. A network that stalls (no newer
        blocks anywhere) never pauses anyone, and a peer that sends orphans cannot
        pause a node whose head keeps up with the clock. Nor for long one whose head
        does not: after :data:`MAX_SYNC_PAUSE_SLOTS` paused slots in which its head did
        not move, the duties resume (orphans that never import, sent while the network
        stalls, must not keep its validators out of the recovery).
        """
        head_slot = self.store.blocks[self.store.head].slot
        tip = self.parked.highest_slot() if slot - head_slot > SYNC_LAG_SLOTS else None
        paused = tip is not None and tip > head_slot
        if paused and self._pause_head != head_slot:
            self._pause_head, self._pause_start = head_slot, slot  # a pause, or progress
        stuck = paused and slot - self._pause_start > MAX_SYNC_PAUSE_SLOTS
        if stuck:
            paused = False
            self.counters["sync_pauses_overridden"] += 1
        if paused != self._duties_paused:
            self._duties_paused = paused
            message = (
                "validator duties paused: catching up"
                if paused
                else "validator duties resumed: the head has not moved while paused"
                if stuck
                else "validator duties resumed"
            )
            logger.info(message, extra={"slot": slot, "head_slot": head_slot, "network_slot": tip})
        return paused

    def _on_input(self, value: ToChain) -> GossipVerdict | VerifySignatures | None:
        match value:
            case BlockReceived():
                return self._import(value.block, value.root)
            case AttestationReceived():
                return self._accept_gossip_attestation(value.attestation, value.message_id)
            case AggregateReceived():
                try:
                    self.store.on_gossip_aggregated_attestation(value.aggregate)
                except ConsensusRejection as rejection:
                    self._reject("aggregate", rejection.reason, detail=str(rejection))
                    return gossip_verdict(rejection.reason)
                self.counters["aggregates_accepted"] += 1
                self.last_aggregate_coverage = value.aggregate.proof.participants.count()
                return GossipVerdict.ACCEPT
            case FetchAbandoned():
                self._abandon(value.roots, value.reason)
            case PublishRejected():
                self.counters[f"publish_rejected_{value.topic.name.lower()}"] += 1
        return None

    # --- blocks -----------------------------------------------------------------------

    def _now(self) -> float:
        """The parked-block pool's clock: store time in seconds (deterministic)."""
        return self.store.time * MILLISECONDS_PER_INTERVAL / 1000

    def _import(self, signed_block: SignedBlock, root: bytes) -> GossipVerdict:
        """Import a block (and what waited on it); the verdict on ``root`` itself:
        ACCEPT if it imported, IGNORE if known already or parked, else by reason."""
        if self.store.has_block(root):
            self.counters["blocks_duplicate"] += 1
            return GossipVerdict.IGNORE
        started = time.perf_counter()
        report = import_with_parking(self.store, self.parked, signed_block, self._now())
        elapsed = time.perf_counter() - started
        if report.imported:
            # One observation per block: a released branch shares the call's time.
            share = elapsed / len(report.imported)
            self.timings.block_import += [share] * len(report.imported)
        for block_root, block in zip(report.imported, report.imported_blocks, strict=True):
            self._signed_blocks[block_root] = block
            self._offer_block(block_root, block)
        # Only counts that moved: a zero entry would show up in every report.
        if report.imported:
            self.counters["blocks_imported"] += len(report.imported)
        if report.duplicates:
            self.counters["blocks_duplicate"] += len(report.duplicates)
        verdict = GossipVerdict.ACCEPT if root in report.imported else GossipVerdict.IGNORE
        for block_root, reason in report.rejected:
            if block_root == root:
                verdict = gossip_verdict(reason)
            if reason is RejectionReason.UNKNOWN_PARENT_BLOCK:
                # Only a parked descendant of a rejected block is reported this way (an
                # unknown parent itself parks): it can never import.
                self.counters["blocks_parked_abandoned"] += 1
            else:
                self._reject("block", reason, root=block_root.hex())
        self._count_pool()
        return verdict

    def _abandon(self, roots: Sequence[bytes], reason: str) -> None:
        """The P2P core gave up on ``roots``: what waits on them cannot import."""
        self.parked.request_failed(tuple(roots))
        dropped = sum(len(self.parked.drop_descendants(root)) for root in roots)
        self.counters["blocks_parked_abandoned"] += dropped
        if dropped:
            logger.info(
                "parked blocks abandoned",
                extra={"roots": len(roots), "blocks": dropped, "reason": reason},
            )
        self._count_pool()

    def _flush_parked(self) -> list[ChainRequest]:
        fetch = self.parked.flush(self._now(), self.store.has_block)
        self._count_pool()
        return [FetchRoots(fetch.roots)] if fetch is not None else []

    def _count_pool(self) -> None:
        """Mirror the pool's cumulative statistics into the chain counters (metrics)."""
        stats = self.parked.statistics()
        for name, value in (
            ("blocks_parked", stats.parked_total),
            ("blocks_parked_duplicate", stats.duplicates),
            ("blocks_parked_released", stats.released),
            ("blocks_parked_dropped", stats.evicted_for_space),
            ("blocks_parked_expired", stats.evicted_for_age),
            ("parked_fetch_requests", stats.requests),
            ("parked_roots_requested", stats.roots_requested),
        ):
            if value:
                self.counters[name] = value

    # --- attestations -----------------------------------------------------------------

    def _accept_gossip_attestation(
        self, attestation: SignedAttestation, message_id: bytes
    ) -> GossipVerdict | VerifySignatures:
        """A vote from gossip: the first one per validator and slot, if the store takes
        it; with ``verify_async``, a request to verify its signature first."""
        if self._duplicate_vote(attestation):
            return GossipVerdict.IGNORE
        if not self.verify_async:
            return self._take_vote(attestation, signature_valid=None)
        try:
            public_key = self.store.attestation_key(attestation)
        except ConsensusRejection as rejection:
            self._reject("attestation", rejection.reason, detail=str(rejection))
            return gossip_verdict(rejection.reason)
        ticket = self._next_ticket
        self._next_ticket += 1
        self._awaiting[ticket] = (attestation, message_id)
        data = attestation.data
        check = SignatureCheck(
            public_key, data.slot, attestation_data_root(data), attestation.signature
        )
        return VerifySignatures(ticket, (check,))

    def _duplicate_vote(self, attestation: SignedAttestation) -> bool:
        if attestation.validator_index in self._votes_seen.get(attestation.data.slot, ()):
            self.counters["attestations_duplicate_vote"] += 1
            return True
        return False

    def _take_vote(
        self, attestation: SignedAttestation, *, signature_valid: bool | None
    ) -> GossipVerdict:
        # Checked again: another vote by the validator may have been taken meanwhile.
        if signature_valid is not None and self._duplicate_vote(attestation):
            return GossipVerdict.IGNORE
        refused = self._accept_attestation(attestation, signature_valid=signature_valid)
        if refused is not None:
            return gossip_verdict(refused)
        self._remember_vote(attestation.data.slot, attestation.validator_index)
        return GossipVerdict.ACCEPT

    def _remember_vote(self, slot: int, index: int) -> None:
        self._votes_seen.setdefault(slot, set()).add(index)
        horizon = self.store.current_slot - VOTE_MEMORY_SLOTS
        for old in [seen for seen in self._votes_seen if seen < horizon]:
            del self._votes_seen[old]

    def _accept_attestation(
        self, attestation: SignedAttestation, *, signature_valid: bool | None = None
    ) -> RejectionReason | None:
        """Hand a vote to the store; the reason it refused it, or None if it took it."""
        started = time.perf_counter()
        try:
            self.store.on_gossip_attestation(
                attestation, is_aggregator=self.is_aggregator, signature_valid=signature_valid
            )
        except ConsensusRejection as rejection:
            self._reject("attestation", rejection.reason, detail=str(rejection))
            return rejection.reason
        finally:
            self.timings.attestation.append(time.perf_counter() - started)
        self.counters["attestations_accepted"] += 1
        return None

    def _reject(self, kind: str, reason: RejectionReason, **fields: object) -> None:
        self.counters[f"{kind}_rejected_{reason.value.lower()}"] += 1
        self.counters[f"{kind}s_rejected"] += 1
        logger.info(f"{kind} rejected", extra={"reason": reason.value, **fields})

    # --- duties -----------------------------------------------------------------------

    def _attest(self, slot: int, attesters: Sequence[int]) -> list[ChainRequest]:
        requests: list[ChainRequest] = []
        for index in attesters:
            try:
                attestation = produce_attestation(self.store, slot, index, self._signer)
            except SlotOutsideKey as error:
                self._unsignable(index, "attestation", slot, error)
                continue
            self._accept_attestation(attestation)
            requests.append(PublishAttestation(attestation))
        self.counters["attestations_produced"] += len(requests)
        return requests

    def _unsignable(self, index: int, purpose: str, slot: int, error: SlotOutsideKey) -> None:
        """A key that cannot sign this slot (its activation interval has passed): the
        duty is skipped and counted, and said loudly once per key; the node follows the
        chain on, it does not stop over a validator it cannot serve."""
        self.counters["duties_unsignable"] += 1
        if (index, purpose) not in self._unsignable_keys:
            self._unsignable_keys.add((index, purpose))
            logger.error(
                "validator key cannot sign: its duties are skipped from here on",
                extra={"validator": index, "key": purpose, "slot": slot, "detail": str(error)},
            )

    def _propose(self, slot: int, proposer: int) -> list[ChainRequest]:
        started = time.perf_counter()
        try:
            produced = produce_block(self.store, slot, proposer, self._signer)
        except ConsensusRejection as rejection:
            self.counters["proposals_failed"] += 1
            logger.warning(
                "proposal failed",
                extra={"slot": slot, "reason": rejection.reason.value, "detail": str(rejection)},
            )
            return []
        except SlotOutsideKey as error:
            self._unsignable(proposer, "proposal", slot, error)
            return []
        finally:
            self.timings.block_import.append(time.perf_counter() - started)
        self._signed_blocks[produced.root] = produced.signed_block
        self._offer_block(produced.root, produced.signed_block)
        self.counters["blocks_imported"] += 1
        self.counters["blocks_proposed"] += 1
        return [PublishBlock(produced.signed_block)]

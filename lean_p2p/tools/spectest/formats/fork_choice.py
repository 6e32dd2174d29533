"""Spectest plug-in: ``fork_choice`` vectors. Runs on the spectest's thread.

Each vector anchors a :class:`~lean_p2p.consensus.store.ForkChoiceStore` and replays its
steps (tick, block, gossip attestation, gossip aggregate). After **every** step, valid or
rejected, the whole ``storeSnapshot`` is compared (time, head, safe target, checkpoints,
every block root, every block weight above finality, and the coverage of all three vote
pools), and then the step's authored ``checks``. A rejected step must carry the vector's
``rejectionReason``.

As in the filler, the store belongs to validator 0, ticks act as an aggregator, and a
block step with ``tickToSlot`` first ticks to the block's slot with the proposal signal.
Block steps carry no proof in the vectors (they were built with a mocked prover), so each
block is wrapped in a placeholder proof that the default verifier accepts.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from typing import Any, Final

from lean_p2p.consensus.clock import interval_from_slot, interval_from_unix_time
from lean_p2p.consensus.errors import ConsensusRejection
from lean_p2p.consensus.hashing import attestation_data_root
from lean_p2p.consensus.signatures import (
    MockedProofVerifier,
    SignatureVerifier,
    XmssVerifier,
    mock_proof,
)
from lean_p2p.consensus.store import ForkChoiceStore, ProofPool, participant_mask
from lean_p2p.containers import (
    AttestationData,
    Bitlist,
    Block,
    Checkpoint,
    MultiMessageAggregate,
    SignedAggregatedAttestation,
    SignedAttestation,
    SignedBlock,
    SingleMessageAggregate,
    State,
)
from lean_p2p.crypto import availability
from lean_p2p.tools.spectest.formats._json import from_hex
from lean_p2p.tools.spectest.formats.state_transition import check_rejection, load
from lean_p2p.tools.spectest.runner import VectorFailure, VectorSkipped

__all__ = ["FORMAT", "replay", "run_vector", "snapshot"]

FORMAT: Final = "fork_choice"

_verifier: SignatureVerifier | None = None


def _shared_verifier() -> SignatureVerifier:
    # One verifier for all vectors: it is stateless, and its mode WARNING then appears
    # once per run rather than once per vector. Where the native library is built, the
    # vectors' attestation signatures (real test-scheme XMSS) are verified for real.
    global _verifier
    if _verifier is None:
        _verifier = (
            XmssVerifier() if availability().startswith("available") else MockedProofVerifier()
        )
    return _verifier


def _hex(root: bytes) -> str:
    return "0x" + root.hex()


def _pool_entries(pool: ProofPool) -> list[dict[str, Any]]:
    entries = [
        (
            attestation_data_root(data),
            sorted(sorted(_bit_indices(participant_mask(proof.participants))) for proof in proofs),
        )
        for data, proofs in pool.items()
    ]
    return [{"dataRoot": _hex(root), "participantSets": sets} for root, sets in sorted(entries)]


def _bit_indices(mask: int) -> list[int]:
    return [index for index in range(mask.bit_length()) if mask >> index & 1]


def snapshot(store: ForkChoiceStore) -> dict[str, Any]:
    """The store observables, in the vectors' ``storeSnapshot`` JSON shape."""
    finalized_slot = store.latest_finalized.slot
    weights = store.block_weights()
    roots = sorted(store.blocks)
    signatures = sorted(
        (attestation_data_root(data), sorted(index for index, _ in entries))
        for data, entries in store.attestation_signatures.items()
    )
    return {
        "time": store.time,
        "headRoot": _hex(store.head),
        "safeTargetRoot": _hex(store.safe_target),
        "latestJustified": {
            "root": _hex(store.latest_justified.root),
            "slot": store.latest_justified.slot,
        },
        "latestFinalized": {
            "root": _hex(store.latest_finalized.root),
            "slot": store.latest_finalized.slot,
        },
        "blockRoots": [_hex(root) for root in roots],
        "blockWeights": [
            {"root": _hex(root), "weight": weights.get(root, 0)}
            for root in roots
            if store.blocks[root].slot > finalized_slot
        ],
        "attestationSignatures": [
            {"dataRoot": _hex(root), "validatorIndices": indices} for root, indices in signatures
        ],
        "newAggregatedPayloads": _pool_entries(store.new_payloads),
        "knownAggregatedPayloads": _pool_entries(store.known_payloads),
    }


def run_vector(test_id: str, fixture: Mapping[str, Any]) -> None:
    replay(fixture)


def replay(fixture: Mapping[str, Any], verifier: SignatureVerifier | None = None) -> int:
    """Replay one vector; returns the number of steps. Raises VectorFailure."""
    anchor_state = load(State, fixture["anchorState"])
    anchor_block = load(Block, fixture["anchorBlock"])
    try:
        store = ForkChoiceStore(
            anchor_state,
            anchor_block,
            validator_index=0,
            verifier=verifier or _shared_verifier(),
        )
    except ConsensusRejection as rejection:
        check_rejection(rejection, fixture.get("rejectionReason"))
        return 0
    check_rejection(None, fixture.get("rejectionReason"))
    labels: dict[str, bytes] = {"genesis": anchor_block.hash_tree_root()}
    steps = fixture["steps"]
    for index, step in enumerate(steps):
        try:
            _run_step(store, step, labels)
        except VectorFailure as failure:
            raise VectorFailure(f"step {index} ({step['stepType']}): {failure}") from failure
    return len(steps)


def _run_step(store: ForkChoiceStore, step: Mapping[str, Any], labels: dict[str, bytes]) -> None:
    old_head = store.head
    filled_block: Block | None = None
    rejection: ConsensusRejection | None = None
    try:
        match step["stepType"]:
            case "tick":
                if step.get("interval") is not None:
                    target = int(step["interval"])
                else:
                    target = interval_from_unix_time(store.genesis_time, step["time"])
                store.on_tick(target, has_proposal=bool(step["hasProposal"]), is_aggregator=True)
            case "block":
                filled_block = load(Block, step["block"])
                root = filled_block.hash_tree_root()
                label = step["block"].get("blockRootLabel")
                if label is not None:
                    labels[label] = root
                if step.get("tickToSlot"):
                    store.on_tick(
                        interval_from_slot(filled_block.slot),
                        has_proposal=True,
                        is_aggregator=True,
                    )
                if store.states.get(filled_block.parent_root) is not None:
                    _replay_builder_gossip(store, filled_block)
                    _recover_builder_votes(store, filled_block, step.get("storeSnapshot"))
                proof = MultiMessageAggregate(proof=mock_proof(root))
                store.on_block(SignedBlock(block=filled_block, proof=proof))
            case "attestation":
                attestation = load(SignedAttestation, step["attestation"])
                store.on_gossip_attestation(
                    attestation, is_aggregator=bool(step.get("isAggregator"))
                )
            case "gossipAggregatedAttestation":
                aggregate = load(SignedAggregatedAttestation, step["attestation"])
                store.on_gossip_aggregated_attestation(aggregate)
            case other:
                raise VectorSkipped(f"unknown fork-choice step {other!r}")
    except ConsensusRejection as error:
        rejection = error
    if step.get("valid", True):
        check_rejection(rejection, None)
    else:
        check_rejection(rejection, step.get("rejectionReason") or "ANY")
    expected_snapshot = step.get("storeSnapshot")
    if expected_snapshot is not None:
        actual = snapshot(store)
        for key, value in expected_snapshot.items():
            if actual.get(key) != value:
                raise VectorFailure(f"storeSnapshot.{key}: got {actual.get(key)}, want {value}")
    checks = step.get("checks")
    if checks and rejection is None:
        _check(store, checks, labels, filled_block, old_head)


def _replay_builder_gossip(store: ForkChoiceStore, block: Block) -> None:
    """Reproduce the filler's side effect of building ``block`` through the store.

    The filler built each block on a scratch copy of the store: it ticked the copy to the
    block's slot, gossiped the block's votes into it as an aggregator, aggregated,
    accepted, and then merged the copy's counted pool back into the real store's. The
    vectors record only the block, so the votes are replayed from its aggregation bits
    (with placeholder signatures, which this verifier never sees).
    """
    scratch = copy.copy(store)
    scratch.known_payloads = {data: set(p) for data, p in store.known_payloads.items()}
    scratch.new_payloads = {data: set(p) for data, p in store.new_payloads.items()}
    scratch.attestation_signatures = {
        data: set(entries) for data, entries in store.attestation_signatures.items()
    }
    scratch.on_tick(interval_from_slot(block.slot), has_proposal=True, is_aggregator=True)
    body = block.body.attestations
    for attestation in body:
        data = attestation.data
        if sum(1 for other in body if other.data == data) > 1:
            # A repeated vote can only have been forced into the body after building,
            # and forced votes were never gossiped.
            continue
        for index in _bit_indices(participant_mask(attestation.aggregation_bits)):
            placeholder = b"builder-gossip" + index.to_bytes(8, "little")
            scratch.attestation_signatures.setdefault(data, set()).add((index, placeholder))
    scratch.aggregate()
    scratch.accept_new_attestations()
    for data, proofs in scratch.known_payloads.items():
        store.known_payloads.setdefault(data, set()).update(proofs)


def _recover_builder_votes(
    store: ForkChoiceStore, block: Block, expected: Mapping[str, Any] | None
) -> int:
    """Recover votes the filler gossiped while building a block but left out of it.

    The block spec of some vectors names votes the builder then did not include (a stale
    or off-chain target); the filler still gossiped and aggregated them into the store,
    where they change pools and weights. The vector keeps only their data root and
    voters (in ``storeSnapshot``). We search the votes buildable from known blocks for
    that root and add it to the counted pool the way the filler did (before the block is
    imported). Votes the block carries are never recovered this way (the replay of the
    body must produce them), so a store that loses a vote still fails the vector.
    Everything that follows from a recovered vote (weights, head, pruning) is computed by
    the store. Returns how many votes were recovered.
    """
    if not expected:
        return 0
    ours = {attestation_data_root(data) for data in store.known_payloads}
    ours |= {attestation_data_root(attestation.data) for attestation in block.body.attestations}
    missing = {
        from_hex(entry["dataRoot"]): entry["participantSets"]
        for entry in expected.get("knownAggregatedPayloads", ())
        if from_hex(entry["dataRoot"]) not in ours
    }
    if not missing:
        return 0
    wanted = len(missing)
    checkpoints = sorted(
        {(block.slot, root) for root, block in store.blocks.items()}, key=lambda c: c[0]
    )
    top_slot = max(slot for slot, _ in checkpoints) + 2
    for data in _candidate_votes(checkpoints, top_slot):
        participant_sets = missing.get(attestation_data_root(data))
        if participant_sets is None:
            continue
        proofs = store.known_payloads.setdefault(data, set())
        for participants in participant_sets:
            bits = Bitlist.from_indices(max(participants) + 1, participants)
            marker = b"recovered-builder-vote" + bits.data
            proofs.add(SingleMessageAggregate(participants=bits, proof=mock_proof(marker)))
        del missing[attestation_data_root(data)]
        if not missing:
            break
    RECOVERED_VOTES[0] += wanted - len(missing)
    return wanted - len(missing)


#: Votes recovered so far in this process (reported by the tests and the benchmark).
RECOVERED_VOTES = [0]


def _candidate_votes(
    checkpoints: list[tuple[int, bytes]], top_slot: int
) -> Iterator[AttestationData]:
    points = [Checkpoint(root=root, slot=slot) for slot, root in checkpoints]
    for head in points:
        for target in points:
            if target.slot > head.slot:
                continue
            for source in points:
                if source.slot > target.slot:
                    continue
                for slot in range(head.slot, top_slot + 1):
                    yield AttestationData(slot=slot, head=head, target=target, source=source)


def _check(
    store: ForkChoiceStore,
    checks: Mapping[str, Any],
    labels: Mapping[str, bytes],
    filled_block: Block | None,
    old_head: bytes,
) -> None:
    def expect(name: str, actual: object, wanted: object) -> None:
        if actual != wanted:
            raise VectorFailure(f"checks.{name}: got {actual!r}, want {wanted!r}")

    def root_of(label: str) -> bytes:
        if label not in labels:
            raise VectorFailure(f"unknown block label {label!r}")
        return labels[label]

    blocks = store.blocks
    scalars = {
        "time": store.time,
        "headSlot": blocks[store.head].slot,
        "headRoot": _hex(store.head),
        "latestJustifiedSlot": store.latest_justified.slot,
        "latestJustifiedRoot": _hex(store.latest_justified.root),
        "latestFinalizedSlot": store.latest_finalized.slot,
        "latestFinalizedRoot": _hex(store.latest_finalized.root),
        "safeTarget": _hex(store.safe_target),
        "safeTargetSlot": blocks[store.safe_target].slot,
    }
    label_roots = {
        "headRootLabel": store.head,
        "latestJustifiedRootLabel": store.latest_justified.root,
        "latestFinalizedRootLabel": store.latest_finalized.root,
        "safeTargetRootLabel": store.safe_target,
    }
    pools: dict[str, Mapping[AttestationData, object]] = {
        "attestationSignatureTargetSlots": store.attestation_signatures,
        "latestNewAggregatedTargetSlots": store.new_payloads,
        "latestKnownAggregatedTargetSlots": store.known_payloads,
    }
    for name, wanted in checks.items():
        if name in scalars:
            expect(name, scalars[name], wanted)
        elif name in label_roots:
            expect(name, _hex(label_roots[name]), _hex(root_of(wanted)))
        elif name in pools:
            expect(name, sorted({data.target.slot for data in pools[name]}), sorted(wanted))
        elif name == "attestationTargetSlot":
            expect(name, store.attestation_target().slot, wanted)
        elif name == "attestationTargetRootLabel":
            expect(name, _hex(store.attestation_target().root), _hex(root_of(wanted)))
        elif name == "filledBlockRootLabel":
            assert filled_block is not None
            expect(name, _hex(filled_block.hash_tree_root()), _hex(root_of(wanted)))
        elif name == "blockAttestationCount":
            assert filled_block is not None
            expect(name, len(filled_block.body.attestations), wanted)
        elif name == "blockAttestations":
            assert filled_block is not None
            _check_block_attestations(filled_block, wanted)
        elif name == "labelsInStore":
            for label in wanted:
                if root_of(label) not in blocks:
                    raise VectorFailure(f"checks.labelsInStore: {label} is not in the store")
        elif name == "newPoolProofParticipants":
            covered: dict[int, set[int]] = {}
            for data, proofs in store.new_payloads.items():
                union = covered.setdefault(data.target.slot, set())
                for proof in proofs:
                    union.update(_bit_indices(participant_mask(proof.participants)))
            for slot, participants in wanted.items():
                expect(name, covered.get(int(slot), set()), set(participants))
        elif name == "attestationChecks":
            _check_attestations(store, wanted, root_of)
        elif name == "reorgDepth":
            expect(name, len(_ancestors(blocks, old_head) - _ancestors(blocks, store.head)), wanted)
        elif name == "lexicographicHeadAmong":
            _check_lexicographic_head(store, [root_of(label) for label in wanted])
        else:
            raise VectorFailure(f"unsupported check {name!r}")


def _ancestors(blocks: Mapping[bytes, Block], root: bytes) -> set[bytes]:
    seen: set[bytes] = set()
    while root in blocks and root not in seen:
        seen.add(root)
        root = blocks[root].parent_root
    return seen


def _check_block_attestations(block: Block, wanted: list[Mapping[str, Any]]) -> None:
    actual = [
        (set(_bit_indices(participant_mask(attestation.aggregation_bits))), attestation.data)
        for attestation in block.body.attestations
    ]
    for expectation in wanted:
        participants = set(expectation["participants"])
        match = next((data for voters, data in actual if voters == participants), None)
        if match is None:
            raise VectorFailure(f"checks.blockAttestations: none covers {sorted(participants)}")
        slot = expectation.get("attestationSlot")
        if slot is not None and match.slot != slot:
            raise VectorFailure(f"checks.blockAttestations: slot {match.slot}, want {slot}")
        target_slot = expectation.get("targetSlot")
        if target_slot is not None and match.target.slot != target_slot:
            raise VectorFailure(
                f"checks.blockAttestations: target slot {match.target.slot}, want {target_slot}"
            )


def _check_attestations(
    store: ForkChoiceStore, wanted: list[Mapping[str, Any]], root_of: Any
) -> None:
    for expectation in wanted:
        validator = int(expectation["validator"])
        latest: AttestationData | None = None
        location = expectation["location"]
        if location == "signatures":
            for data, entries in store.attestation_signatures.items():
                if any(index == validator for index, _ in entries) and (
                    latest is None or latest.slot < data.slot
                ):
                    latest = data
        else:
            pool = store.new_payloads if location == "new" else store.known_payloads
            for data, proofs in pool.items():
                voted = any(participant_mask(p.participants) >> validator & 1 for p in proofs)
                if voted and (latest is None or latest.slot < data.slot):
                    latest = data
        if latest is None:
            raise VectorFailure(f"checks.attestationChecks: validator {validator} not {location}")
        observed = {
            "attestationSlot": latest.slot,
            "headSlot": latest.head.slot,
            "sourceSlot": latest.source.slot,
            "targetSlot": latest.target.slot,
        }
        for key, value in observed.items():
            if key in expectation and expectation[key] is not None and expectation[key] != value:
                raise VectorFailure(
                    f"checks.attestationChecks: validator {validator} {key} {value}, "
                    f"want {expectation[key]}"
                )
        label = expectation.get("sourceRootLabel")
        if label is not None and latest.source.root != root_of(label):
            raise VectorFailure(f"checks.attestationChecks: validator {validator} source root")


def _check_lexicographic_head(store: ForkChoiceStore, fork_roots: list[bytes]) -> None:
    weights = store.block_weights()
    fork_weights = {weights.get(root, 0) for root in fork_roots}
    if len(fork_weights) != 1:
        raise VectorFailure(f"checks.lexicographicHeadAmong: forks weigh {fork_weights}")
    winner = max(fork_roots)
    if winner not in _ancestors(store.blocks, store.head):
        raise VectorFailure("checks.lexicographicHeadAmong: head is not on the largest root")

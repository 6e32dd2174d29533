"""The chain service alone (sans-IO): duties, parked blocks, rejections, determinism."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace

import pytest

from lean_p2p.consensus.config import MILLISECONDS_PER_INTERVAL
from lean_p2p.consensus.errors import RejectionReason
from lean_p2p.consensus.hashing import attestation_data_root
from lean_p2p.consensus.validator import PlaceholderSigner
from lean_p2p.containers import (
    Block,
    BlockBody,
    Checkpoint,
    MultiMessageAggregate,
    SignedAttestation,
    SignedBlock,
    SingleMessageAggregate,
)
from lean_p2p.containers.xmss import signature_from_parts
from lean_p2p.net import GossipVerdict
from lean_p2p.net.protocol import GossipTopic
from lean_p2p.node.chain import ChainService, gossip_verdict
from lean_p2p.node.config import GenesisSpec
from lean_p2p.node.verification import Outcome, SignaturesVerified, VerifySignatures
from lean_p2p.p2p.chain import (
    AttestationReceived,
    BlockReceived,
    BlockSource,
    FetchAbandoned,
    FetchRoots,
    PublishAggregate,
    PublishAttestation,
    PublishBlock,
    PublishRejected,
    ReportGossip,
)


def _service(**options: object) -> ChainService:
    return ChainService(GenesisSpec.placeholder(0, 4), **options)  # type: ignore[arg-type]


def _orphan(parent: bytes, slot: int) -> tuple[SignedBlock, bytes]:
    block = Block(
        slot=slot,
        proposer_index=slot % 4,
        parent_root=parent,
        state_root=b"\x01" * 32,
        body=BlockBody(attestations=()),
    )
    return SignedBlock(block=block, proof=MultiMessageAggregate(proof=b"")), block.hash_tree_root()


def test_duties_follow_the_intervals() -> None:
    chain = _service(validator_indices=(1,), is_aggregator=True)
    kinds = {}
    for interval in range(1, 11):  # slots 0 and 1
        kinds[interval] = [type(request) for request in chain.on_interval(interval)]
    assert kinds[5] == [PublishBlock]  # slot 1, interval 0: validator 1 proposes
    assert kinds[1] == kinds[6] == [PublishAttestation]  # interval 1: it votes
    assert PublishAggregate in kinds[7]  # interval 2: the aggregator folds its vote
    assert chain.summary().head_slot == 1
    assert chain.on_interval(3) == []  # a stale tick changes nothing
    assert chain.counters["stale_ticks"] == 1


def test_same_inputs_give_the_same_store() -> None:
    first, second = (
        _service(validator_indices=(0, 1, 2, 3), is_aggregator=True),
        _service(validator_indices=(0, 1, 2, 3), is_aggregator=True),
    )
    for interval in range(1, 31):
        first.on_interval(interval)
        second.on_interval(interval)
    assert first.fingerprint() == second.fingerprint()
    assert first.summary().finalized_slot > 0
    second.on_interval(31)
    assert first.fingerprint() != second.fingerprint()


def _receive(chain: ChainService, block: SignedBlock) -> list[object]:
    root = block.block.hash_tree_root()
    return list(chain.on_input(BlockReceived(block, root, "peer", BlockSource.GOSSIP)))


def test_orphans_are_parked_fetched_and_bounded() -> None:
    chain = _service(max_parked=2)
    requests = []
    for slot in (1, 2, 3):
        requests += _receive(chain, _orphan(bytes([slot]) * 32, slot)[0])
    assert requests == [FetchRoots((bytes([slot]) * 32,)) for slot in (1, 2, 3)]
    # The pool is full at two: the oldest orphan made room for the third.
    assert chain.summary().parked == 2
    assert chain.counters["blocks_parked"] == 3
    assert chain.counters["blocks_parked_dropped"] == 1
    # The same orphan again is neither parked twice nor fetched again.
    assert _receive(chain, _orphan(b"\x02" * 32, 2)[0]) == []
    assert chain.counters["blocks_parked_duplicate"] == 1
    # Giving up on a parent drops what waits on it, and it is not asked for again.
    assert chain.on_input(FetchAbandoned((b"\x02" * 32,), "no peer had it")) == []
    assert chain.summary().parked == 1
    assert chain.counters["blocks_parked_abandoned"] == 1


def test_unanswered_roots_are_asked_again_in_one_batch() -> None:
    chain = _service()
    parents = [bytes([slot]) * 32 for slot in (1, 2, 3)]
    for slot, parent in zip((1, 2, 3), parents, strict=True):
        _receive(chain, _orphan(parent, slot)[0])
    assert chain.counters["parked_fetch_requests"] == 3
    # Still in flight: ticks ask for nothing until the retry delay has passed.
    assert chain.on_interval(1) == []
    retry = int(chain.parked.retry_after * 1000 / MILLISECONDS_PER_INTERVAL) + 2
    requests = [r for i in range(2, retry + 1) for r in chain.on_interval(i)]
    assert requests == [FetchRoots(tuple(parents))]
    assert chain.counters["parked_roots_requested"] == 6


def test_a_failed_fetch_is_asked_again_at_once_by_the_pool() -> None:
    chain = _service()
    block, _ = _orphan(b"\x07" * 32, 1)
    _receive(chain, block)
    chain.parked.request_failed((b"\x07" * 32,))
    assert chain.on_interval(1) == [FetchRoots((b"\x07" * 32,))]


def test_parked_blocks_expire_with_store_time() -> None:
    chain = _service()
    _receive(chain, _orphan(b"\x05" * 32, 1)[0])
    assert chain.summary().parked == 1
    past_max_age = int(chain.parked.max_age * 1000 / MILLISECONDS_PER_INTERVAL) + 10
    chain.on_interval(past_max_age)
    assert chain.summary().parked == 0
    assert chain.counters["blocks_parked_expired"] == 1


def test_children_of_a_rejected_block_are_dropped_with_it() -> None:
    chain = _service()
    bad_parent, bad_root = _orphan(chain.anchor_root, 1)  # wrong state root: rejected
    child, _ = _orphan(bad_root, 2)
    assert _receive(chain, child) == [FetchRoots((bad_root,))]
    assert _receive(chain, bad_parent) == []
    assert chain.counters["blocks_rejected"] == 1
    assert chain.counters["blocks_parked_abandoned"] == 1
    assert chain.summary().parked == 0


def test_parked_child_is_imported_after_its_parent() -> None:
    producer = _service(validator_indices=(0, 1, 2, 3))
    blocks = []
    for interval in range(1, 16):
        blocks += [r.block for r in producer.on_interval(interval) if isinstance(r, PublishBlock)]
    assert [b.block.slot for b in blocks] == [1, 2, 3]
    follower = _service()
    for block in reversed(blocks):  # children first: each waits for its parent
        follower.on_input(
            BlockReceived(block, block.block.hash_tree_root(), "p", BlockSource.GOSSIP)
        )
    assert follower.summary().head_slot == 3
    assert follower.summary().parked == 0
    assert follower.counters["blocks_imported"] == 3
    assert follower.get_block(blocks[1].block.hash_tree_root()) == blocks[1]
    assert [b.block.slot for b in follower.blocks_by_range(1, 2)] == [1, 2]
    assert follower.root_at_slot(2) == blocks[1].block.hash_tree_root()
    assert follower.root_at_slot(7) is None


def test_invalid_block_is_rejected_with_its_reason() -> None:
    chain = _service()
    block, root = _orphan(chain.anchor_root, 1)
    assert chain.on_input(BlockReceived(block, root, "peer", BlockSource.GOSSIP)) == []
    assert chain.counters["blocks_rejected"] == 1
    assert any(key.startswith("block_rejected_") for key in chain.counters)
    assert chain.summary().head_slot == 0


def test_failed_publish_is_counted() -> None:
    chain = _service()
    chain.on_input(PublishRejected(GossipTopic.BLOCK, b"\x00" * 20, "no peers"))
    assert chain.counters["publish_rejected_block"] == 1


def _proposal(validator: int, slot: int) -> SignedBlock:
    """The block ``validator`` proposes at ``slot`` having seen nothing but genesis."""
    producer = _service(validator_indices=(validator,))
    for interval in range(1, slot * 5 + 1):
        for request in producer.on_interval(interval):
            if isinstance(request, PublishBlock):
                return request.block
    raise AssertionError("no proposal")


def test_a_head_switch_to_another_branch_is_a_reorg() -> None:
    fork_a, fork_b = _proposal(1, 1), _proposal(2, 2)  # siblings on genesis, no votes
    root_a, root_b = fork_a.block.hash_tree_root(), fork_b.block.hash_tree_root()
    # With no votes the tie goes to the larger root: import the loser first.
    first, second = (fork_a, fork_b) if root_b > root_a else (fork_b, fork_a)
    chain = _service()
    chain.on_input(BlockReceived(first, first.block.hash_tree_root(), "p", BlockSource.GOSSIP))
    assert chain.counters["reorgs"] == 0  # genesis -> first: an extension, not a reorg
    chain.on_input(BlockReceived(second, second.block.hash_tree_root(), "p", BlockSource.GOSSIP))
    assert chain.summary().head_root == second.block.hash_tree_root()
    assert chain.counters["reorgs"] == 1
    assert chain.reorg_depths == [first.block.slot]  # back to genesis (slot 0)


class _ForgingSigner(PlaceholderSigner):
    """Signs votes properly but forges block proofs: the store refuses its blocks."""

    def block_proof(
        self, block: Block, attestation_proofs: Sequence[SingleMessageAggregate]
    ) -> bytes:
        return b"forged"


def test_a_proposal_the_store_refuses_is_counted_not_published() -> None:
    chain = _service(validator_indices=(1,), signer=_ForgingSigner())
    requests = [r for interval in range(1, 11) for r in chain.on_interval(interval)]
    assert not any(isinstance(request, PublishBlock) for request in requests)
    assert PublishAttestation in {type(request) for request in requests}  # still votes
    assert chain.counters["proposals_failed"] == 1  # slot 1 is validator 1's
    assert chain.counters["blocks_proposed"] == 0
    assert chain.summary().head_slot == 0


# --- gossip verdicts ----------------------------------------------------------------------


def _gossip_block(chain: ChainService, block: SignedBlock, message_id: bytes) -> list[object]:
    root = block.block.hash_tree_root()
    return list(chain.on_input(BlockReceived(block, root, "p", BlockSource.GOSSIP, message_id)))


def test_every_gossip_block_gets_a_verdict_for_the_driver() -> None:
    producer = _service(validator_indices=(0, 1, 2, 3))
    blocks = []
    for interval in range(1, 11):
        blocks += [r.block for r in producer.on_interval(interval) if isinstance(r, PublishBlock)]
    first, second = blocks
    follower = _service()
    # the child first: it parks, so it is not forwarded (its parent is fetched)
    assert _gossip_block(follower, second, b"2")[0] == ReportGossip(b"2", GossipVerdict.IGNORE)
    assert _gossip_block(follower, first, b"1")[0] == ReportGossip(b"1", GossipVerdict.ACCEPT)
    assert _gossip_block(follower, first, b"1'")[0] == ReportGossip(b"1'", GossipVerdict.IGNORE)
    invalid, _ = _orphan(follower.anchor_root, 3)  # a state root that does not match
    assert _gossip_block(follower, invalid, b"x")[0] == ReportGossip(b"x", GossipVerdict.REJECT)
    # a block a request brought has no message to report on
    fetched, _ = _orphan(b"\x07" * 32, 9)
    assert not [
        r
        for r in follower.on_input(
            BlockReceived(fetched, fetched.block.hash_tree_root(), "p", BlockSource.BY_ROOT)
        )
        if isinstance(r, ReportGossip)
    ]


def test_every_gossip_vote_gets_a_verdict_and_only_the_first_per_slot_is_accepted() -> None:
    producer = _service(validator_indices=(0, 1, 2, 3))
    votes = [r.attestation for r in producer.on_interval(1) if isinstance(r, PublishAttestation)]
    chain = _service()
    chain.on_interval(1)

    def verdict(vote: SignedAttestation, message_id: bytes) -> GossipVerdict:
        [report] = chain.on_input(AttestationReceived(vote, "p", message_id))
        assert isinstance(report, ReportGossip) and report.message_id == message_id
        return report.verdict

    assert verdict(votes[0], b"a") is GossipVerdict.ACCEPT
    # the same validator again in that slot (another message id): IGNORE, not counted twice
    assert verdict(votes[0], b"b") is GossipVerdict.IGNORE
    assert chain.counters["attestations_duplicate_vote"] == 1
    # a vote naming a block this node has not seen: IGNORE (it may be valid elsewhere)
    unknown = replace(
        votes[1], data=replace(votes[1].data, head=Checkpoint(root=b"\x09" * 32, slot=0))
    )
    assert verdict(unknown, b"c") is GossipVerdict.IGNORE
    # a signature that cannot be one: REJECT, and the validator's real vote still counts
    forged = replace(votes[1], signature=signature_from_parts())
    assert verdict(forged, b"d") is GossipVerdict.REJECT
    assert verdict(votes[1], b"e") is GossipVerdict.ACCEPT
    assert chain.counters["gossip_accept"] == 2
    assert chain.counters["gossip_reject"] == 1
    assert chain.counters["gossip_ignore"] == 2


def test_the_verdict_follows_the_kind_of_rejection() -> None:
    assert gossip_verdict(RejectionReason.UNKNOWN_SOURCE_BLOCK) is GossipVerdict.IGNORE
    assert gossip_verdict(RejectionReason.ATTESTATION_TOO_FAR_IN_FUTURE) is GossipVerdict.IGNORE
    assert gossip_verdict(RejectionReason.INVALID_SIGNATURE) is GossipVerdict.REJECT
    assert gossip_verdict(RejectionReason.SOURCE_AFTER_TARGET) is GossipVerdict.REJECT
    assert gossip_verdict(RejectionReason.STATE_ROOT_MISMATCH) is GossipVerdict.REJECT


# --- votes verified elsewhere ---------------------------------------------------------------


def test_with_verify_async_a_vote_waits_for_its_verification_before_the_store() -> None:
    producer = _service(validator_indices=(0, 1, 2, 3))
    votes = [r.attestation for r in producer.on_interval(1) if isinstance(r, PublishAttestation)]
    chain = _service(verify_async=True)
    chain.on_interval(1)
    requests = [
        chain.on_input(AttestationReceived(vote, "p", bytes([i]))) for i, vote in enumerate(votes)
    ]
    tickets = []
    for vote, [request] in zip(votes, requests, strict=True):
        assert isinstance(request, VerifySignatures)
        [check] = request.checks
        assert (check.slot, check.signature) == (vote.data.slot, vote.signature)
        assert check.message == attestation_data_root(vote.data)
        tickets.append(request.ticket)
    assert chain.awaiting_verification == 4
    assert chain.counters["attestations_accepted"] == 0  # the store has seen none

    def answer(ticket: int, outcome: Outcome, valid: tuple[bool, ...] = ()) -> GossipVerdict:
        [report] = chain.on_verified(SignaturesVerified(ticket, outcome, valid))
        assert isinstance(report, ReportGossip)
        return report.verdict

    assert answer(tickets[0], Outcome.VERIFIED, (True,)) is GossipVerdict.ACCEPT
    assert answer(tickets[1], Outcome.VERIFIED, (False,)) is GossipVerdict.REJECT
    assert answer(tickets[2], Outcome.OVERLOADED) is GossipVerdict.IGNORE
    assert answer(tickets[3], Outcome.CANCELLED) is GossipVerdict.IGNORE
    assert chain.counters["attestations_accepted"] == 1
    assert chain.counters["attestation_rejected_invalid_signature"] == 1
    assert (
        chain.counters["verification_overloaded"] == chain.counters["verification_cancelled"] == 1
    )
    assert chain.awaiting_verification == 0
    # a result for no held vote changes nothing but a counter
    assert chain.on_verified(SignaturesVerified(tickets[0], Outcome.VERIFIED, (True,))) == []
    assert chain.counters["verification_unknown_ticket"] == 1


def test_with_verify_async_a_vote_that_fails_before_its_signature_is_never_sent_to_verify() -> None:
    producer = _service(validator_indices=(0,))
    [vote] = [r.attestation for r in producer.on_interval(1) if isinstance(r, PublishAttestation)]
    chain = _service(verify_async=True)
    chain.on_interval(1)
    unknown = replace(vote, data=replace(vote.data, head=Checkpoint(root=b"\x09" * 32, slot=0)))
    assert chain.on_input(AttestationReceived(unknown, "p", b"u")) == [
        ReportGossip(b"u", GossipVerdict.IGNORE)
    ]
    assert chain.awaiting_verification == 0


def _duties_at_slot(chain: ChainService, slot: int) -> list[type]:
    """Everything the chain asks for over ``slot``'s five intervals, by kind."""
    kinds: list[type] = []
    for interval in range(slot * 5, slot * 5 + 5):
        kinds += [type(request) for request in chain.on_interval(interval)]
    return kinds


def test_a_node_that_lags_behind_blocks_it_holds_pauses_its_validators(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Validator 1 proposes at slots 1, 5 and 9; the node sees no other block until slot
    # 8, when one arrives whose parent it does not have: the network is ahead of its
    # head (its own block at slot 5), and a block or vote now would fork off it.
    chain = _service(validator_indices=(1,))
    for interval in range(1, 8 * 5):
        chain.on_interval(interval)
    orphan, root = _orphan(b"\x07" * 32, 8)
    chain.on_input(BlockReceived(orphan, root, "peer", BlockSource.GOSSIP))
    with caplog.at_level(logging.INFO, logger="lean_p2p.node.chain"):
        assert _duties_at_slot(chain, 9) == []
    assert chain.counters["duties_skipped_syncing"] == 2  # its proposal and its vote
    assert chain.summary().head_slot == 5
    assert "validator duties paused: catching up" in caplog.text


def test_a_stalled_network_or_a_fresh_head_does_not_pause_validators() -> None:
    # Nothing waits above the head: the network itself is quiet, duties go on.
    quiet = _service(validator_indices=(1,))
    for interval in range(1, 9 * 5):
        quiet.on_interval(interval)
    assert PublishBlock in _duties_at_slot(quiet, 9)
    # An orphan arrives, but the head keeps up with the clock: nothing to catch up.
    fresh = _service(validator_indices=(0, 1, 2, 3))
    for interval in range(1, 4 * 5):
        fresh.on_interval(interval)
    assert fresh.summary().head_slot == 3
    orphan, root = _orphan(b"\x07" * 32, 4)
    fresh.on_input(BlockReceived(orphan, root, "peer", BlockSource.GOSSIP))
    assert PublishBlock in _duties_at_slot(fresh, 4)
    assert fresh.counters["duties_skipped_syncing"] == 0


def test_a_key_past_its_slots_skips_its_duties_and_the_node_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from lean_p2p.containers import TEST_SCHEME
    from lean_p2p.node.keys import XmssSigner, generate_validator_keys

    # The shortest keys: slots 0 to 31 (two bottom trees). Validator 1 proposes at
    # slots 1, 5, ..., 29 and 33, and votes every slot.
    keys = generate_validator_keys(4, seed=b"short", scheme=TEST_SCHEME, num_active_slots=4)
    assert keys[1].attestation.num_active_slots == 32
    genesis = GenesisSpec(0, tuple(k.public_keys for k in keys))
    chain = ChainService(genesis, validator_indices=(1,), signer=XmssSigner({1: keys[1]}))
    assert PublishBlock in _duties_at_slot(chain, 1)  # inside its interval: signed
    for slot in range(2, 32):
        _duties_at_slot(chain, slot)
    with caplog.at_level(logging.ERROR, logger="lean_p2p.node.chain"):
        for slot in range(32, 35):
            assert _duties_at_slot(chain, slot) == []  # no vote, no block: nothing to sign
    assert chain.counters["duties_unsignable"] == 4  # three votes and the slot-33 proposal
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert [(r.validator, r.key) for r in errors] == [(1, "attestation"), (1, "proposal")]  # type: ignore[attr-defined]
    assert chain.summary().current_slot == 34  # the node itself went on


def test_a_pause_that_goes_nowhere_ends(caplog: pytest.LogCaptureFixture) -> None:
    # An orphan whose parent never comes (sent while the network stalls) pauses the
    # validators, but not for ever: after eight slots without head progress they resume.
    chain = _service(validator_indices=(1,))
    for interval in range(1, 8 * 5):
        chain.on_interval(interval)
    orphan, root = _orphan(b"\x07" * 32, 8)
    chain.on_input(BlockReceived(orphan, root, "peer", BlockSource.GOSSIP))
    paused_slots = []
    with caplog.at_level(logging.INFO, logger="lean_p2p.node.chain"):
        for slot in range(9, 22):
            skipped = chain.counters["duties_skipped_syncing"]
            kinds = _duties_at_slot(chain, slot)
            if chain.counters["duties_skipped_syncing"] > skipped:
                assert PublishAttestation not in kinds
                paused_slots.append(slot)
            else:
                assert PublishAttestation in kinds
    assert paused_slots == list(range(9, 18))  # 9 to 17: the pause began at 9
    assert chain.counters["sync_pauses_overridden"] == 4  # slots 18 to 21
    assert "validator duties resumed: the head has not moved while paused" in caplog.text

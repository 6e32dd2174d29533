"""State transition: cached roots equal the container's, and every refusal has a reason."""

from __future__ import annotations

import pytest

from lean_p2p.consensus.errors import ConsensusRejection, RejectionReason
from lean_p2p.consensus.state import ChainState
from lean_p2p.consensus.state_transition import (
    process_attestations,
    process_block,
    process_slots,
    state_transition,
)
from lean_p2p.containers import (
    AggregatedAttestation,
    AttestationData,
    Bitlist,
    Block,
    BlockBody,
    Checkpoint,
    State,
)
from tests.consensus.chain import ZERO, devnet_store, genesis, run_slots


def _next_block(state: ChainState, **overrides: object) -> Block:
    advanced = process_slots(state, state.slot + 1)
    fields: dict[str, object] = {
        "slot": state.slot + 1,
        "proposer_index": (state.slot + 1) % max(1, state.validator_count),
        "parent_root": advanced.latest_block_header.hash_tree_root(),
        "state_root": ZERO,
        "body": BlockBody(attestations=()),
    }
    fields.update(overrides)
    block = Block(**fields)  # type: ignore[arg-type]
    if "state_root" in overrides:
        return block
    post = process_block(advanced, block)
    return Block(**{**fields, "state_root": post.hash_tree_root()})  # type: ignore[arg-type]


def test_cached_root_equals_container_root_along_a_finalizing_chain() -> None:
    store = devnet_store(4)
    run_slots(store, 1, 12, voters=4)
    assert store.latest_finalized.slot >= 8
    for state in store.states.values():
        container = state.to_container()
        assert container.hash_tree_root() == state.hash_tree_root()
        assert ChainState.from_container(State.decode(container.encode())).hash_tree_root() == (
            state.hash_tree_root()
        )


def test_valid_block_applies() -> None:
    state, _ = genesis(4)
    post = state_transition(state, _next_block(state))
    assert post.slot == 1 and post.latest_block_header.slot == 1


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"proposer_index": 3}, RejectionReason.WRONG_PROPOSER),
        ({"parent_root": b"\x01" * 32}, RejectionReason.PARENT_ROOT_MISMATCH),
        ({"state_root": b"\x02" * 32}, RejectionReason.STATE_ROOT_MISMATCH),
    ],
)
def test_bad_blocks_are_rejected_with_a_reason(
    overrides: dict[str, object], reason: RejectionReason
) -> None:
    state, _ = genesis(4)
    with pytest.raises(ConsensusRejection) as caught:
        state_transition(state, _next_block(state, **overrides))
    assert caught.value.reason is reason


def test_slots_never_go_back() -> None:
    state, _ = genesis(4)
    with pytest.raises(ConsensusRejection) as caught:
        process_slots(state, 0)
    assert caught.value.reason is RejectionReason.BLOCK_SLOT_NOT_IN_FUTURE


def test_empty_registry_schedules_no_proposer() -> None:
    state, _ = genesis(0)
    with pytest.raises(ConsensusRejection) as caught:
        state_transition(state, _next_block(state, proposer_index=0, state_root=ZERO))
    assert caught.value.reason is RejectionReason.EMPTY_VALIDATOR_REGISTRY


def _vote(state: ChainState, bits: Bitlist, target_slot: int = 1) -> AggregatedAttestation:
    root = state.history[target_slot] if len(state.history) > target_slot else ZERO
    checkpoint = Checkpoint(root=root, slot=target_slot)
    source = Checkpoint(root=state.history[0], slot=0)
    data = AttestationData(slot=target_slot, head=checkpoint, target=checkpoint, source=source)
    return AggregatedAttestation(aggregation_bits=bits, data=data)


def _state_at_slot_two() -> ChainState:
    state, _ = genesis(4)
    state = state_transition(state, _next_block(state))
    state = state_transition(state, _next_block(state))
    return process_block(process_slots(state, 3), _next_block(state, state_root=ZERO))


def test_empty_and_out_of_range_aggregation_bits_reject_the_block() -> None:
    state = _state_at_slot_two()
    with pytest.raises(ConsensusRejection) as caught:
        process_attestations(state, [_vote(state, Bitlist.zeros(4))])
    assert caught.value.reason is RejectionReason.EMPTY_AGGREGATION_BITS
    with pytest.raises(ConsensusRejection) as caught:
        process_attestations(state, [_vote(state, Bitlist.from_indices(9, [0, 8]))])
    assert caught.value.reason is RejectionReason.VALIDATOR_INDEX_OUT_OF_RANGE


def test_too_many_distinct_votes_reject_the_block() -> None:
    state = _state_at_slot_two()
    votes = [
        AggregatedAttestation(
            aggregation_bits=Bitlist.from_indices(4, [0]),
            data=AttestationData(
                slot=slot,
                head=Checkpoint(root=ZERO, slot=0),
                target=Checkpoint(root=ZERO, slot=0),
                source=Checkpoint(root=ZERO, slot=0),
            ),
        )
        for slot in range(9)
    ]
    with pytest.raises(ConsensusRejection) as caught:
        process_attestations(state, votes)
    assert caught.value.reason is RejectionReason.TOO_MANY_ATTESTATION_DATA


def test_two_thirds_justify_and_votes_are_tallied_once() -> None:
    state = _state_at_slot_two()
    once = process_attestations(state, [_vote(state, Bitlist.from_indices(4, [0, 1]))])
    assert once.latest_justified.slot == 0
    assert [votes.bit_count() for _, votes in once.justifications] == [2]
    again = process_attestations(once, [_vote(once, Bitlist.from_indices(4, [0, 1]))])
    assert [votes.bit_count() for _, votes in again.justifications] == [2]
    justified = process_attestations(again, [_vote(again, Bitlist.from_indices(4, [2]))])
    assert justified.latest_justified.slot == 1
    assert justified.justifications == ()


def test_from_container_rejects_inconsistent_justifications() -> None:
    state, _ = genesis(4)
    container = state.to_container()
    broken = State(
        **{
            **{name: getattr(container, name) for name in State.__dataclass_fields__},
            "justifications_roots": (b"\x05" * 32,),
            "justifications_validators": Bitlist.zeros(3),
        }
    )
    with pytest.raises(ValueError, match="expected 1 roots x 4 validators"):
        ChainState.from_container(broken)
    zero_root = State(
        **{
            **{name: getattr(container, name) for name in State.__dataclass_fields__},
            "justifications_roots": (ZERO,),
            "justifications_validators": Bitlist.zeros(4),
        }
    )
    with pytest.raises(ValueError, match="zero hash"):
        ChainState.from_container(zero_root)

"""Test helpers: a genesis state and a small local devnet driven through the store."""

from __future__ import annotations

from lean_p2p.consensus.history import RootHistory
from lean_p2p.consensus.state import ChainState, validators_root
from lean_p2p.consensus.store import ForkChoiceStore
from lean_p2p.consensus.validator import PlaceholderSigner, produce_attestation, produce_block
from lean_p2p.containers import Block, BlockBody, BlockHeader, Checkpoint, Validator

ZERO = b"\x00" * 32


def genesis(validator_count: int, genesis_time: int = 0) -> tuple[ChainState, Block]:
    validators = tuple(
        Validator(
            attestation_public_key=index.to_bytes(2, "little") * 26,
            proposal_public_key=(index + 7).to_bytes(2, "little") * 26,
            index=index,
        )
        for index in range(validator_count)
    )
    header = BlockHeader(
        slot=0,
        proposer_index=0,
        parent_root=ZERO,
        state_root=ZERO,
        body_root=BlockBody(attestations=()).hash_tree_root(),
    )
    state = ChainState(
        genesis_time=genesis_time,
        slot=0,
        latest_block_header=header,
        latest_justified=Checkpoint(root=ZERO, slot=0),
        latest_finalized=Checkpoint(root=ZERO, slot=0),
        history=RootHistory.empty(),
        justified_bits=0,
        justified_length=0,
        validators=validators,
        validators_root=validators_root(validators),
        justifications=(),
    )
    block = Block(
        slot=0,
        proposer_index=0,
        parent_root=ZERO,
        state_root=state.hash_tree_root(),
        body=BlockBody(attestations=()),
    )
    return state, block


def devnet_store(validator_count: int) -> ForkChoiceStore:
    state, block = genesis(validator_count)
    return ForkChoiceStore(state, block, validator_index=0)


def run_slots(store: ForkChoiceStore, first_slot: int, last_slot: int, voters: int) -> None:
    """Propose every slot and let ``voters`` validators attest (one aggregating node)."""
    signer = PlaceholderSigner()
    count = store.head_state().validator_count
    for slot in range(first_slot, last_slot + 1):
        produce_block(store, slot, slot % count, signer)
        store.on_tick(slot * 5 + 1, has_proposal=False, is_aggregator=True)
        for validator in range(voters):
            vote = produce_attestation(store, slot, validator, signer)
            store.on_gossip_attestation(vote, is_aggregator=True)
        store.on_tick(slot * 5 + 4, has_proposal=False, is_aggregator=True)

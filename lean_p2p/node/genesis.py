"""Genesis: the lstar genesis state and its anchor block. Any thread (pure values).

As the spec builds it: slot 0, a zero header whose body root is the empty body's root,
zero checkpoints, empty history and justification lists, and the validator registry.
The anchor block is the slot-0 block whose state root is the genesis state's root; its
root is the genesis checkpoint every node starts from.
"""

from __future__ import annotations

from collections.abc import Sequence

from lean_p2p.containers import (
    Bitlist,
    Block,
    BlockBody,
    BlockHeader,
    Checkpoint,
    Config,
    MultiMessageAggregate,
    SignedBlock,
    State,
    Validator,
)
from lean_p2p.node.config import GenesisSpec

__all__ = ["ZERO_ROOT", "genesis_block", "genesis_state", "genesis_validators"]

ZERO_ROOT = b"\x00" * 32


def genesis_validators(keys: Sequence[tuple[bytes, bytes]]) -> tuple[Validator, ...]:
    return tuple(
        Validator(attestation_public_key=attestation, proposal_public_key=proposal, index=index)
        for index, (attestation, proposal) in enumerate(keys)
    )


def genesis_state(spec: GenesisSpec) -> State:
    empty_body_root = BlockBody(attestations=()).hash_tree_root()
    zero_checkpoint = Checkpoint(root=ZERO_ROOT, slot=0)
    return State(
        config=Config(genesis_time=spec.genesis_time),
        slot=0,
        latest_block_header=BlockHeader(
            slot=0,
            proposer_index=0,
            parent_root=ZERO_ROOT,
            state_root=ZERO_ROOT,
            body_root=empty_body_root,
        ),
        latest_justified=zero_checkpoint,
        latest_finalized=zero_checkpoint,
        historical_block_hashes=(),
        justified_slots=Bitlist.zeros(0),
        validators=genesis_validators(spec.validator_keys),
        justifications_roots=(),
        justifications_validators=Bitlist.zeros(0),
    )


def genesis_block(state: State) -> SignedBlock:
    """The anchor block for ``state`` (an empty proof: nothing signs genesis)."""
    block = Block(
        slot=state.slot,
        proposer_index=0,
        parent_root=ZERO_ROOT,
        state_root=state.hash_tree_root(),
        body=BlockBody(attestations=()),
    )
    return SignedBlock(block=block, proof=MultiMessageAggregate(proof=b""))

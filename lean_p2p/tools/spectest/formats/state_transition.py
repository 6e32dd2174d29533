"""Spectest plug-in: ``state_transition`` vectors. Runs on the spectest's thread.

A vector gives a ``pre`` state and ``blocks``; either every block applies (then the
post-state root must equal ``postStateRoot``, the cached root must equal the container's
root, and the authored ``post`` expectations must hold) or the run must fail with the
vector's ``rejectionReason``.

Two things the filler did are not recorded in the vectors and are reconstructed here:

- *Slot processing skipped.* Some blocks were applied with block processing only (no
  slot advance, no state-root check). Those blocks carry a zero state root and either
  meet a state already advanced past its header, or sit at or before the state's slot;
  such a block gets block processing only. Every other block gets the full transition.
- *No blocks at all.* A rejection vector without ``blocks`` failed while the filler was
  building its first block. We rebuild that block the way the filler does (the slot
  after the latest header, or the state's slot if later; the scheduled proposer; the
  header's root as parent; an empty body) and require the same rejection.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from lean_p2p.consensus.config import ZERO_ROOT
from lean_p2p.consensus.errors import ConsensusRejection
from lean_p2p.consensus.state import ChainState
from lean_p2p.consensus.state_transition import (
    process_block,
    process_slots,
    proposer_for_slot,
    state_transition,
)
from lean_p2p.containers import Block, BlockBody, State
from lean_p2p.tools.spectest.formats._json import from_hex, value_from_json
from lean_p2p.tools.spectest.runner import VectorFailure

__all__ = ["FORMAT", "check_rejection", "load", "run_vector"]

FORMAT: Final = "state_transition"


def load(cls: type[Any], value: Any) -> Any:
    """A container from the vectors' JSON form."""
    return value_from_json(cls.ssz_type, value)


def check_rejection(rejection: ConsensusRejection | None, expected: str | None) -> None:
    """Raise VectorFailure unless the outcome matches ``expected`` (None: success)."""
    if rejection is None:
        if expected is not None:
            raise VectorFailure(f"accepted, but the vector expects {expected}")
        return
    if expected is None:
        raise VectorFailure(f"unexpected rejection {rejection}")
    if rejection.reason.value != expected:
        raise VectorFailure(f"rejected with {rejection.reason.value}, expected {expected}")


def _slot_processing_skipped(state: ChainState, block: Block) -> bool:
    if block.state_root != ZERO_ROOT:
        return False
    return state.slot > state.latest_block_header.slot or block.slot <= state.slot


def _apply(state: ChainState, block: Block) -> ChainState:
    if _slot_processing_skipped(state, block):
        return process_block(state, block)
    return state_transition(state, block)


def _apply_rebuilt_first_block(state: ChainState) -> ChainState:
    slot = max(state.slot, state.latest_block_header.slot + 1)
    proposer = proposer_for_slot(slot, state.validator_count)
    advanced = process_slots(state, slot)
    block = Block(
        slot=slot,
        proposer_index=proposer,
        parent_root=advanced.latest_block_header.hash_tree_root(),
        state_root=ZERO_ROOT,
        body=BlockBody(attestations=()),
    )
    return process_block(advanced, block)


def run_vector(test_id: str, fixture: Mapping[str, Any]) -> None:
    state = ChainState.from_container(load(State, fixture["pre"]))
    expected = fixture.get("rejectionReason")
    blocks = [load(Block, block) for block in fixture.get("blocks") or ()]
    rejection: ConsensusRejection | None = None
    try:
        if not blocks and expected is not None:
            _apply_rebuilt_first_block(state)
        for block in blocks:
            state = _apply(state, block)
    except ConsensusRejection as error:
        rejection = error
    check_rejection(rejection, expected)
    if rejection is not None:
        return
    expected_root = fixture.get("postStateRoot")
    if expected_root is not None and state.hash_tree_root() != from_hex(expected_root):
        raise VectorFailure("post-state root differs from postStateRoot")
    post = state.to_container()
    if post.hash_tree_root() != state.hash_tree_root():
        raise VectorFailure("the cached state root differs from the container's root")
    _check_post(post, fixture.get("post"))


def _check_post(post: State, expected: Mapping[str, Any] | None) -> None:
    """The authored expectations that name plain values (the root already pins all)."""
    if not expected:
        return
    observed = {
        "slot": post.slot,
        "latestJustifiedSlot": post.latest_justified.slot,
        "latestFinalizedSlot": post.latest_finalized.slot,
        "latestJustifiedRoot": "0x" + post.latest_justified.root.hex(),
        "latestFinalizedRoot": "0x" + post.latest_finalized.root.hex(),
        "validatorCount": len(post.validators),
        "historicalBlockHashesCount": len(post.historical_block_hashes),
        "latestBlockHeaderSlot": post.latest_block_header.slot,
        "latestBlockHeaderProposerIndex": post.latest_block_header.proposer_index,
        "configGenesisTime": post.config.genesis_time,
        "justificationsRootsCount": len(post.justifications_roots),
        "justificationsValidatorsCount": len(post.justifications_validators),
    }
    for key, value in expected.items():
        if value is None or key not in observed:
            continue
        if observed[key] != value:
            raise VectorFailure(f"post.{key} is {observed[key]!r}, expected {value!r}")

"""Checkpoint-sync anchor checks. Any thread (pure function of an immutable State).

A node that starts from a downloaded finalized state checks it before trusting it:
a state with no validators cannot drive fork choice, and a registry beyond the limit is
a hostile blob. The answer is a value carrying the reason, so the caller can log it.
"""

from __future__ import annotations

from dataclasses import dataclass

from lean_p2p.consensus.config import VALIDATOR_REGISTRY_LIMIT
from lean_p2p.containers import State

__all__ = ["CheckpointVerdict", "verify_checkpoint_state"]


@dataclass(frozen=True, slots=True)
class CheckpointVerdict:
    accepted: bool
    reason: str


def verify_checkpoint_state(state: State) -> CheckpointVerdict:
    count = len(state.validators)
    if count == 0:
        return CheckpointVerdict(False, "the state has no validators")
    if count > VALIDATOR_REGISTRY_LIMIT:
        return CheckpointVerdict(
            False, f"{count} validators exceed the registry limit {VALIDATOR_REGISTRY_LIMIT}"
        )
    return CheckpointVerdict(True, f"{count} validators at slot {state.slot}")

"""Checkpoint-sync anchor checks."""

from __future__ import annotations

from lean_p2p.consensus.checkpoint import verify_checkpoint_state
from tests.consensus.chain import genesis


def test_a_registry_is_required() -> None:
    state, _ = genesis(0)
    verdict = verify_checkpoint_state(state.to_container())
    assert not verdict.accepted and "no validators" in verdict.reason
    state, _ = genesis(3)
    assert verify_checkpoint_state(state.to_container()).accepted

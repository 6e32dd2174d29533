"""Every leanSpec ``fork_choice`` vector through the fork_choice plug-in: none may fail or skip."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from lean_p2p.tools.spectest.formats import fork_choice
from lean_p2p.tools.spectest.runner import Outcome, VectorFailure, run_file
from tests.leanspec import leanspec_params


@pytest.mark.parametrize("path", leanspec_params("fork_choice"))
def test_fork_choice_vector(leanspec_root: Path, path: Path | None) -> None:
    assert path is not None, f"{leanspec_root}/fork_choice holds no vector files"
    results = list(run_file(fork_choice.FORMAT, fork_choice.run_vector, path))
    assert results, f"{path} holds no fixtures"
    for result in results:
        assert result.outcome is Outcome.PASSED, f"{result.test_id}: {result.detail}"


def _vector(root: Path, name: str) -> dict[str, Any]:
    (path,) = (root / "fork_choice").rglob(f"{name}.json")
    (fixture,) = json.loads(path.read_text()).values()
    assert isinstance(fixture, dict)
    return fixture


def test_a_wrong_snapshot_fails_the_vector(leanspec_root: Path) -> None:
    fixture = _vector(leanspec_root, "test_head_switches_to_heavier_fork")
    broken = copy.deepcopy(fixture)
    broken["steps"][-1]["storeSnapshot"]["headRoot"] = "0x" + "11" * 32
    with pytest.raises(VectorFailure, match="headRoot"):
        fork_choice.run_vector("broken", broken)
    weights = copy.deepcopy(fixture)
    snapshot = weights["steps"][-1]["storeSnapshot"]
    snapshot["blockWeights"][0]["weight"] += 1
    with pytest.raises(VectorFailure, match="blockWeights"):
        fork_choice.run_vector("broken", weights)


def test_a_wrong_rejection_reason_fails_the_vector(leanspec_root: Path) -> None:
    fixture = copy.deepcopy(
        _vector(leanspec_root, "test_gossip_attestation_with_invalid_signature")
    )
    step = next(step for step in fixture["steps"] if not step["valid"])
    step["rejectionReason"] = "UNKNOWN_HEAD_BLOCK"
    with pytest.raises(VectorFailure, match="INVALID_SIGNATURE"):
        fork_choice.run_vector("broken", fixture)


def test_block_votes_are_never_recovered_from_the_snapshot(leanspec_root: Path) -> None:
    # Claim that a block's own vote has one more voter than the block says: the replay
    # must not "recover" it from the expected snapshot, so the vector must fail.
    fixture = copy.deepcopy(_vector(leanspec_root, "test_block_includes_genesis_self_vote"))
    step = fixture["steps"][0]
    entry = step["storeSnapshot"]["knownAggregatedPayloads"][0]
    entry["participantSets"] = [[0, 1, 2]]
    with pytest.raises(VectorFailure, match="knownAggregatedPayloads"):
        fork_choice.run_vector("broken", fixture)


def test_the_vectors_attestation_signatures_are_verified_for_real(leanspec_root: Path) -> None:
    # One bit of a released chain hash changed: structurally the signature is as good
    # as before (a structural check would pass it), but it no longer verifies.
    fixture = copy.deepcopy(
        _vector(leanspec_root, "test_multiple_gossip_attestations_from_different_validators")
    )
    step = next(step for step in fixture["steps"] if "signature" in step.get("attestation", {}))
    signature = bytes.fromhex(step["attestation"]["signature"].removeprefix("0x"))
    changed = signature[:-4] + bytes([signature[-4] ^ 1]) + signature[-3:]
    step["attestation"]["signature"] = "0x" + changed.hex()
    assert fork_choice._shared_verifier().mode == "xmss"
    with pytest.raises(VectorFailure, match="INVALID_SIGNATURE"):
        fork_choice.run_vector("broken", fixture)

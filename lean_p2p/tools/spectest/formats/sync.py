"""Spectest plug-in: ``sync`` vectors (checkpoint-state verification).

Runs on the spectest's thread. A vector carries the SSZ bytes of an anchor state and
the verdict a client must reach on it; we decode the bytes, check the echoed facts
(validator count, slot), and compare our verdict
(:func:`lean_p2p.consensus.checkpoint.verify_checkpoint_state`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from lean_p2p.consensus.checkpoint import verify_checkpoint_state
from lean_p2p.containers import SSZError, State
from lean_p2p.tools.spectest.formats._json import from_hex
from lean_p2p.tools.spectest.runner import VectorFailure, VectorSkipped

__all__ = ["FORMAT", "run_vector"]

FORMAT: Final = "sync"


def run_vector(test_id: str, fixture: Mapping[str, Any]) -> None:
    operation = fixture["operation"]
    if operation.get("kind") != "verify_checkpoint":
        raise VectorSkipped(f"unknown sync operation {operation.get('kind')!r}")
    output = fixture["output"]
    encoded = from_hex(output["stateBytes"])
    try:
        state = State.decode(encoded)
    except SSZError as error:
        raise VectorFailure(f"state bytes do not decode: {error}") from error
    if state.encode() != encoded:
        raise VectorFailure("the decoded state does not re-encode to the same bytes")
    count = len(state.validators)
    if not count == output["validatorCount"] == operation["numValidators"]:
        raise VectorFailure(f"{count} validators, expected {output['validatorCount']}")
    if state.slot != output["anchorSlot"]:
        raise VectorFailure(f"state slot {state.slot}, expected {output['anchorSlot']}")
    verdict = verify_checkpoint_state(state).accepted
    if verdict != output["valid"]:
        raise VectorFailure(f"verdict {verdict}, expected {output['valid']}")

"""Spectest plug-in: ``justifiability`` vectors (slot, finalized slot -> delta, verdict).

Runs on the spectest's thread.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from lean_p2p.consensus.justifiability import is_justifiable_after, justifiability_delta
from lean_p2p.tools.spectest.runner import VectorFailure

__all__ = ["FORMAT", "run_vector"]

FORMAT: Final = "justifiability"


def run_vector(test_id: str, fixture: Mapping[str, Any]) -> None:
    slot = int(fixture["slot"])
    finalized_slot = int(fixture["finalizedSlot"])
    output = fixture["output"]
    delta = justifiability_delta(slot, finalized_slot)
    if delta != output["delta"]:
        raise VectorFailure(f"delta {delta}, expected {output['delta']}")
    verdict = is_justifiable_after(slot, finalized_slot)
    if verdict != output["isJustifiable"]:
        raise VectorFailure(f"justifiable={verdict}, expected {output['isJustifiable']}")

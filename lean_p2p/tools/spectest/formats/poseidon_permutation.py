"""Spectest plug-in: ``poseidon_permutation`` vectors (leanSpec's Poseidon, widths 16/24).

Runs on the spectest's thread. Each vector gives an input state and the state after the
permutation; ours is the C implementation in :mod:`lean_p2p.crypto`. Without the native
library every vector is skipped, saying why.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from lean_p2p.crypto import XmssUnavailable, poseidon_permute
from lean_p2p.tools.spectest.runner import VectorFailure, VectorSkipped

__all__ = ["FORMAT", "run_vector"]

FORMAT: Final = "poseidon_permutation"


def run_vector(test_id: str, fixture: Mapping[str, Any]) -> None:
    state = [int(value) for value in fixture["inputState"]]
    expected = [int(value) for value in fixture["outputState"]]
    if len(state) != fixture["width"]:
        raise VectorFailure(f"input of {len(state)} elements for width {fixture['width']}")
    try:
        ours = poseidon_permute(state)
    except XmssUnavailable as error:
        raise VectorSkipped(str(error)) from None
    if ours != expected:
        differing = [i for i, (a, b) in enumerate(zip(ours, expected, strict=True)) if a != b]
        raise VectorFailure(f"output differs at positions {differing}: {ours} != {expected}")

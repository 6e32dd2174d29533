"""3SF-mini justifiability against a brute-force definition."""

from __future__ import annotations

import pytest

from lean_p2p.consensus.justifiability import (
    is_justifiable_after,
    justifiability_delta,
    justified_index_after,
)


def _brute_force(delta: int) -> bool:
    squares = {n * n for n in range(200)}
    pronics = {n * (n + 1) for n in range(200)}
    return delta <= 5 or delta in squares or delta in pronics


@pytest.mark.parametrize("finalized", [0, 1, 17, 10_000])
def test_matches_definition(finalized: int) -> None:
    for delta in range(3_000):
        assert is_justifiable_after(finalized + delta, finalized) == _brute_force(delta), delta


def test_slot_before_finality_is_an_error() -> None:
    with pytest.raises(ValueError, match="before the finalized"):
        justifiability_delta(3, 4)
    with pytest.raises(ValueError):
        is_justifiable_after(3, 4)


def test_justified_index() -> None:
    assert justified_index_after(5, 5) is None
    assert justified_index_after(4, 5) is None
    assert justified_index_after(6, 5) == 0
    assert justified_index_after(9, 5) == 3

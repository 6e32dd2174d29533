"""3SF-mini justifiability of a slot relative to the finalized slot. Any thread (pure).

A slot at distance ``delta`` after the finalized slot may be justified when ``delta`` is
at most 5, a perfect square, or a pronic number ``n * (n + 1)``.
"""

from __future__ import annotations

import math

from lean_p2p.consensus.config import IMMEDIATE_JUSTIFICATION_WINDOW

__all__ = ["is_justifiable_after", "justifiability_delta", "justified_index_after"]


def justifiability_delta(slot: int, finalized_slot: int) -> int:
    """Distance of ``slot`` after ``finalized_slot``; ValueError if it lies before it."""
    if slot < finalized_slot:
        raise ValueError(f"slot {slot} lies before the finalized slot {finalized_slot}")
    return slot - finalized_slot


def is_justifiable_after(slot: int, finalized_slot: int) -> bool:
    """Whether ``slot`` is a justification candidate once ``finalized_slot`` is final."""
    delta = justifiability_delta(slot, finalized_slot)
    # Most candidates fall in the immediate window; test it before any square root.
    if delta <= IMMEDIATE_JUSTIFICATION_WINDOW:
        return True
    root = math.isqrt(delta)
    if root * root == delta:
        return True
    # delta = n(n+1)  <=>  4*delta + 1 = (2n+1)^2, an odd perfect square.
    discriminant = 4 * delta + 1
    discriminant_root = math.isqrt(discriminant)
    return discriminant_root * discriminant_root == discriminant and discriminant_root % 2 == 1


def justified_index_after(slot: int, finalized_slot: int) -> int | None:
    """Index of ``slot`` in the justified-slots bitfield (None: at or before finality)."""
    if slot <= finalized_slot:
        return None
    return slot - finalized_slot - 1

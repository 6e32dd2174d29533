"""Consensus constants of the lstar fork. Any thread (plain values).

One source of truth for the numbers the state transition, the fork-choice store and the
slot clock share; the values are the leanSpec lstar configuration.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "ATTESTATION_COMMITTEE_COUNT",
    "GOSSIP_DISPARITY_INTERVALS",
    "HISTORICAL_ROOTS_LIMIT",
    "IMMEDIATE_JUSTIFICATION_WINDOW",
    "INTERVALS_PER_SLOT",
    "JUSTIFICATION_LOOKBACK_SLOTS",
    "MAX_ATTESTATIONS_DATA",
    "MILLISECONDS_PER_INTERVAL",
    "MILLISECONDS_PER_SLOT",
    "SECONDS_PER_SLOT",
    "VALIDATOR_REGISTRY_LIMIT",
    "ZERO_ROOT",
]

SECONDS_PER_SLOT: Final = 4
INTERVALS_PER_SLOT: Final = 5
MILLISECONDS_PER_SLOT: Final = SECONDS_PER_SLOT * 1000
MILLISECONDS_PER_INTERVAL: Final = MILLISECONDS_PER_SLOT // INTERVALS_PER_SLOT
#: Future tolerance for gossip attestations, in intervals (about 800 ms of clock skew).
GOSSIP_DISPARITY_INTERVALS: Final = 1
JUSTIFICATION_LOOKBACK_SLOTS: Final = 3
HISTORICAL_ROOTS_LIMIT: Final = 2**18
VALIDATOR_REGISTRY_LIMIT: Final = 2**12
ATTESTATION_COMMITTEE_COUNT: Final = 1
#: Distinct AttestationData entries a block may carry.
MAX_ATTESTATIONS_DATA: Final = 8
#: The first slots after finalization are always justifiable.
IMMEDIATE_JUSTIFICATION_WINDOW: Final = 5
ZERO_ROOT: Final = b"\x00" * 32

"""Consensus rejections: a reason code (an enum) plus a message. Any thread (values).

Every way the state transition or the fork-choice store refuses an input raises
:class:`ConsensusRejection` carrying a :class:`RejectionReason`. The reason strings are
the leanSpec ones, so a vector's ``rejectionReason`` compares directly. Callers on the
loop thread turn a rejection into a counted, logged drop (or a peer penalty); it never
escapes the chain actor.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["ConsensusRejection", "RejectionReason"]


class RejectionReason(StrEnum):
    """Why an input was refused (values are the spec's language-neutral codes)."""

    # Block validation
    BLOCK_SLOT_NOT_IN_FUTURE = "BLOCK_SLOT_NOT_IN_FUTURE"
    BLOCK_OLDER_THAN_LATEST_HEADER = "BLOCK_OLDER_THAN_LATEST_HEADER"
    BLOCK_SLOT_MISMATCH = "BLOCK_SLOT_MISMATCH"
    PARENT_ROOT_MISMATCH = "PARENT_ROOT_MISMATCH"
    STATE_ROOT_MISMATCH = "STATE_ROOT_MISMATCH"
    UNKNOWN_PARENT_BLOCK = "UNKNOWN_PARENT_BLOCK"
    PROPOSER_INDEX_OUT_OF_RANGE = "PROPOSER_INDEX_OUT_OF_RANGE"
    EMPTY_VALIDATOR_REGISTRY = "EMPTY_VALIDATOR_REGISTRY"
    WRONG_PROPOSER = "WRONG_PROPOSER"
    TOO_MANY_ATTESTATION_DATA = "TOO_MANY_ATTESTATION_DATA"
    DUPLICATE_ATTESTATION_DATA = "DUPLICATE_ATTESTATION_DATA"
    EMPTY_AGGREGATION_BITS = "EMPTY_AGGREGATION_BITS"
    # Attestation validation
    UNKNOWN_SOURCE_BLOCK = "UNKNOWN_SOURCE_BLOCK"
    UNKNOWN_TARGET_BLOCK = "UNKNOWN_TARGET_BLOCK"
    UNKNOWN_HEAD_BLOCK = "UNKNOWN_HEAD_BLOCK"
    SOURCE_AFTER_TARGET = "SOURCE_AFTER_TARGET"
    HEAD_OLDER_THAN_TARGET = "HEAD_OLDER_THAN_TARGET"
    SOURCE_SLOT_MISMATCH = "SOURCE_SLOT_MISMATCH"
    TARGET_SLOT_MISMATCH = "TARGET_SLOT_MISMATCH"
    HEAD_SLOT_MISMATCH = "HEAD_SLOT_MISMATCH"
    SOURCE_NOT_ANCESTOR_OF_TARGET = "SOURCE_NOT_ANCESTOR_OF_TARGET"
    TARGET_NOT_ANCESTOR_OF_HEAD = "TARGET_NOT_ANCESTOR_OF_HEAD"
    ATTESTATION_TOO_FAR_IN_FUTURE = "ATTESTATION_TOO_FAR_IN_FUTURE"
    ATTESTATION_SLOT_BEFORE_HEAD = "ATTESTATION_SLOT_BEFORE_HEAD"
    VALIDATOR_NOT_IN_STATE = "VALIDATOR_NOT_IN_STATE"
    VALIDATOR_INDEX_OUT_OF_RANGE = "VALIDATOR_INDEX_OUT_OF_RANGE"
    JUSTIFIED_SLOT_OUT_OF_RANGE = "JUSTIFIED_SLOT_OUT_OF_RANGE"
    # Cryptographic verification
    INVALID_SIGNATURE = "INVALID_SIGNATURE"
    INVALID_BLOCK_PROOF = "INVALID_BLOCK_PROOF"
    # Anchor initialization
    ANCHOR_STATE_ROOT_MISMATCH = "ANCHOR_STATE_ROOT_MISMATCH"
    # Wire decoding
    DECODE_ERROR = "DECODE_ERROR"


class ConsensusRejection(Exception):
    """An input the consensus rules refuse; ``reason`` says which rule."""

    def __init__(self, reason: RejectionReason, message: str) -> None:
        super().__init__(f"{reason.value}: {message}")
        self.reason = reason
        self.detail = message

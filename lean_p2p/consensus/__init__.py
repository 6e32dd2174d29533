"""Consensus on the loop thread: lstar state transition, fork choice, parked blocks.

Loop thread. The fork-choice store and every ChainState live on the node's event-loop
thread behind a loop-affinity guard, with no lock; foreign threads reach them only
through the mailbox. Pure helpers (clock, justifiability, checkpoint checks) may run
anywhere.
"""

from lean_p2p.consensus.checkpoint import CheckpointVerdict, verify_checkpoint_state
from lean_p2p.consensus.clock import SlotClock, interval_from_slot
from lean_p2p.consensus.errors import ConsensusRejection, RejectionReason
from lean_p2p.consensus.justifiability import is_justifiable_after
from lean_p2p.consensus.parked import (
    BlocksByRootFetch,
    ParkedBlockPool,
    ParkedStatistics,
    import_with_parking,
)
from lean_p2p.consensus.signatures import (
    MOCK_PROOF_PREFIX,
    MockedProofVerifier,
    SignatureVerifier,
    XmssVerifier,
)
from lean_p2p.consensus.state import ChainState
from lean_p2p.consensus.state_transition import (
    process_attestations,
    process_block,
    process_block_header,
    process_slots,
    state_transition,
)
from lean_p2p.consensus.store import ForkChoiceStore, StoreStatistics
from lean_p2p.consensus.validator import (
    Duty,
    PlaceholderSigner,
    Signer,
    build_block,
    duties_at,
    produce_attestation,
    produce_block,
)

__all__ = [
    "MOCK_PROOF_PREFIX",
    "BlocksByRootFetch",
    "ChainState",
    "CheckpointVerdict",
    "ConsensusRejection",
    "Duty",
    "ForkChoiceStore",
    "MockedProofVerifier",
    "ParkedBlockPool",
    "ParkedStatistics",
    "PlaceholderSigner",
    "RejectionReason",
    "SignatureVerifier",
    "Signer",
    "SlotClock",
    "StoreStatistics",
    "XmssVerifier",
    "build_block",
    "duties_at",
    "import_with_parking",
    "interval_from_slot",
    "is_justifiable_after",
    "process_attestations",
    "process_block",
    "process_block_header",
    "process_slots",
    "produce_attestation",
    "produce_block",
    "state_transition",
    "verify_checkpoint_state",
]

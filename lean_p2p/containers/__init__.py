"""Immutable SSZ values of the lstar fork, their codec and merkleization. Any thread.

Every container is a frozen dataclass with ``encode() -> bytes``,
``decode(data) -> Self`` (raises :class:`SSZError`, a
:class:`lean_p2p.containers.errors.WireError`, on any bad input) and
``hash_tree_root() -> bytes``. Signatures are sized by the active XMSS scheme: the
fixtures' test scheme (424 bytes) by default, production (2536 bytes) selected with
``LEAN_P2P_SIGNATURE_SCHEME=production`` or :func:`select_signature_scheme`.
"""

from lean_p2p.containers.bitlist import Bitlist
from lean_p2p.containers.lstar import (
    AGGREGATION_BITS_LIMIT,
    HISTORICAL_ROOTS_LIMIT,
    MAX_REQUEST_BLOCKS,
    PROOF_BYTES_LIMIT,
    VALIDATOR_REGISTRY_LIMIT,
    AggregatedAttestation,
    Attestation,
    AttestationData,
    Block,
    BlockBody,
    BlockHeader,
    BlocksByRangeRequest,
    BlocksByRootRequest,
    Checkpoint,
    Config,
    MultiMessageAggregate,
    SignedAggregatedAttestation,
    SignedAttestation,
    SignedBlock,
    SingleMessageAggregate,
    SSZContainer,
    State,
    Status,
    Validator,
)
from lean_p2p.containers.merkle import (
    BYTES_PER_CHUNK,
    ZERO_HASHES,
    hash_pair,
    hash_up,
    merkleize,
    merkleize_chunks,
    mix_in_length,
    pack_bytes,
)
from lean_p2p.containers.scheme import (
    PRODUCTION_SCHEME,
    TEST_SCHEME,
    XmssScheme,
    active_scheme,
    select_signature_scheme,
    using_signature_scheme,
)
from lean_p2p.containers.ssz import SSZError
from lean_p2p.containers.xmss import signature_from_parts

__all__ = [
    "AGGREGATION_BITS_LIMIT",
    "BYTES_PER_CHUNK",
    "HISTORICAL_ROOTS_LIMIT",
    "MAX_REQUEST_BLOCKS",
    "PRODUCTION_SCHEME",
    "PROOF_BYTES_LIMIT",
    "TEST_SCHEME",
    "VALIDATOR_REGISTRY_LIMIT",
    "ZERO_HASHES",
    "AggregatedAttestation",
    "Attestation",
    "AttestationData",
    "Bitlist",
    "Block",
    "BlockBody",
    "BlockHeader",
    "BlocksByRangeRequest",
    "BlocksByRootRequest",
    "Checkpoint",
    "Config",
    "MultiMessageAggregate",
    "SSZContainer",
    "SSZError",
    "SignedAggregatedAttestation",
    "SignedAttestation",
    "SignedBlock",
    "SingleMessageAggregate",
    "State",
    "Status",
    "Validator",
    "XmssScheme",
    "active_scheme",
    "hash_pair",
    "hash_up",
    "merkleize",
    "merkleize_chunks",
    "mix_in_length",
    "pack_bytes",
    "select_signature_scheme",
    "signature_from_parts",
    "using_signature_scheme",
]

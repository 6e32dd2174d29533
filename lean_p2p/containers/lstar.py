"""The lstar (devnet-5) SSZ containers. Any thread: immutable values.

Field order is wire order; field names are leanSpec's snake_case names. Every
container is a frozen dataclass with ``encode()``, ``decode(data)`` (raises
:class:`~lean_p2p.containers.ssz.SSZError`) and ``hash_tree_root()``. Signatures are
``bytes`` of the active XMSS scheme's size (see :mod:`lean_p2p.containers.scheme`).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, ClassVar, Final, Self, cast

from lean_p2p.containers.bitlist import Bitlist
from lean_p2p.containers.ssz import (
    BYTES32,
    BYTES52,
    UINT64,
    BitlistType,
    ByteListType,
    ContainerType,
    ListType,
    SSZError,
    SSZType,
)
from lean_p2p.containers.xmss import SIGNATURE

__all__ = [
    "AGGREGATION_BITS_LIMIT",
    "HISTORICAL_ROOTS_LIMIT",
    "MAX_REQUEST_BLOCKS",
    "PROOF_BYTES_LIMIT",
    "VALIDATOR_REGISTRY_LIMIT",
    "AggregatedAttestation",
    "Attestation",
    "AttestationData",
    "Block",
    "BlockBody",
    "BlockHeader",
    "BlocksByRangeRequest",
    "BlocksByRootRequest",
    "Checkpoint",
    "Config",
    "MultiMessageAggregate",
    "SSZContainer",
    "SignedAggregatedAttestation",
    "SignedAttestation",
    "SignedBlock",
    "SingleMessageAggregate",
    "State",
    "Status",
    "Validator",
    "ValidatorsType",
]

HISTORICAL_ROOTS_LIMIT: Final = 2**18
VALIDATOR_REGISTRY_LIMIT: Final = 2**12
AGGREGATION_BITS_LIMIT: Final = VALIDATOR_REGISTRY_LIMIT
PROOF_BYTES_LIMIT: Final = 512 * 1024
MAX_REQUEST_BLOCKS: Final = 1024


class SSZContainer:
    """Base of every container: the codec methods over the class's ``ssz_type``."""

    __slots__ = ()
    ssz_type: ClassVar[ContainerType[Any]]

    def encode(self) -> bytes:
        return self.ssz_type.encode(self)

    @classmethod
    def decode(cls, data: bytes) -> Self:
        """Decode ``data``; raises :class:`SSZError` on anything but a valid encoding."""
        return cast(Self, cls.ssz_type.decode(data))

    def hash_tree_root(self) -> bytes:
        return self.ssz_type.hash_tree_root(self)


def _define(cls: type[SSZContainer], *layout: tuple[str, SSZType[Any]]) -> None:
    """Attach the SSZ layout to ``cls``, checking it names the dataclass fields in order."""
    declared = [field.name for field in fields(cast(Any, cls))]
    if declared != [name for name, _ in layout]:
        raise TypeError(f"{cls.__name__}: SSZ layout {layout} does not match fields {declared}")
    cls.ssz_type = ContainerType(cls, layout)


@dataclass(frozen=True, slots=True)
class Checkpoint(SSZContainer):
    """A block named by root and slot: what is justified and finalized, and what votes point at."""

    root: bytes
    """The block's hash_tree_root."""

    slot: int
    """The block's slot."""


@dataclass(frozen=True, slots=True)
class AttestationData(SSZContainer):
    """What a validator votes for in one slot: its view of head, target and source."""

    slot: int
    """The slot the vote is for."""

    head: Checkpoint
    """The head of the chain as the voter sees it."""

    target: Checkpoint
    """The checkpoint the vote would justify."""

    source: Checkpoint
    """The latest justified checkpoint the vote builds on."""


@dataclass(frozen=True, slots=True)
class Attestation(SSZContainer):
    """One validator's vote, unsigned, with the index of the validator who cast it."""

    validator_index: int
    """The voter's index in the registry."""

    data: AttestationData
    """The vote."""


@dataclass(frozen=True, slots=True)
class SignedAttestation(SSZContainer):
    """One validator's vote with its XMSS signature, as gossiped on the attestation subnets."""

    validator_index: int
    """The voter's index in the registry."""

    data: AttestationData
    """The vote."""

    signature: bytes
    """XMSS signature over ``data``'s root by the voter's attestation key (the active scheme's
    size)."""


@dataclass(frozen=True, slots=True)
class AggregatedAttestation(SSZContainer):
    """One vote shared by many validators, as carried in a block body; the signatures are folded
    into the block's proof."""

    aggregation_bits: Bitlist
    """Bit ``i`` set: validator ``i`` voted ``data``."""

    data: AttestationData
    """The shared vote."""


@dataclass(frozen=True, slots=True)
class SingleMessageAggregate(SSZContainer):
    """An aggregate proof that many validators signed one message."""

    participants: Bitlist
    """Bit ``i`` set: validator ``i``'s signature is in the proof."""

    proof: bytes
    """The aggregated proof bytes (at most 512 KiB; their format is the prover's)."""


@dataclass(frozen=True, slots=True)
class SignedAggregatedAttestation(SSZContainer):
    """A vote with one aggregate proof of everyone who signed it, as gossiped by aggregators."""

    data: AttestationData
    """The shared vote."""

    proof: SingleMessageAggregate
    """The proof over ``data``'s root, with its participants."""


@dataclass(frozen=True, slots=True)
class MultiMessageAggregate(SSZContainer):
    """One proof over several messages: a block's attestation signatures and its proposer's
    signature together."""

    proof: bytes
    """The aggregated proof bytes (at most 512 KiB; their format is the prover's)."""


@dataclass(frozen=True, slots=True)
class BlockBody(SSZContainer):
    """What a block carries: the votes it includes."""

    attestations: tuple[AggregatedAttestation, ...]
    """Aggregated votes, at most one entry per validator registry slot (4,096)."""


@dataclass(frozen=True, slots=True)
class BlockHeader(SSZContainer):
    """A block without its body, which its root stands for; the state keeps the latest one."""

    slot: int
    """The slot the block was proposed in."""

    proposer_index: int
    """The proposer's index in the registry."""

    parent_root: bytes
    """The parent block's root."""

    state_root: bytes
    """The post-state's root (zero in the state's copy until the next slot fills it in)."""

    body_root: bytes
    """The body's hash_tree_root."""


@dataclass(frozen=True, slots=True)
class Block(SSZContainer):
    """A proposed block: header fields and the full body."""

    slot: int
    """The slot the block was proposed in."""

    proposer_index: int
    """The proposer's index in the registry."""

    parent_root: bytes
    """The parent block's root."""

    state_root: bytes
    """The root of the state after this block."""

    body: BlockBody
    """The votes the block includes."""


@dataclass(frozen=True, slots=True)
class SignedBlock(SSZContainer):
    """A block with the one proof that covers its proposer's signature and its votes' signatures;
    what travels on the block topic and in BlocksByRoot/BlocksByRange responses."""

    block: Block
    """The block."""

    proof: MultiMessageAggregate
    """Proof over the proposer's signature of the block root and the included votes."""


@dataclass(frozen=True, slots=True)
class Validator(SSZContainer):
    """A validator's entry in the registry; it does not change after genesis."""

    attestation_public_key: bytes
    """XMSS public key (52 bytes) that verifies its votes."""

    proposal_public_key: bytes
    """XMSS public key (52 bytes) that verifies its block proposals."""

    index: int
    """Its position in the registry (checked on encode and decode, see :class:`ValidatorsType`)."""


@dataclass(frozen=True, slots=True)
class Config(SSZContainer):
    """The chain's configuration, committed into every state."""

    genesis_time: int
    """Unix time in seconds at which slot 0 begins."""


@dataclass(frozen=True, slots=True)
class State(SSZContainer):
    """The consensus state after a slot's processing: what the state transition reads and writes."""

    config: Config
    """The chain's configuration."""

    slot: int
    """The slot this state is at."""

    latest_block_header: BlockHeader
    """The header of the latest processed block."""

    latest_justified: Checkpoint
    """The latest justified checkpoint."""

    latest_finalized: Checkpoint
    """The latest finalized checkpoint."""

    historical_block_hashes: tuple[bytes, ...]
    """Block root per slot since genesis; a slot without a block holds the zero root."""

    justified_slots: Bitlist
    """Bit per slot after the finalized slot: set when that slot is justified."""

    validators: tuple[Validator, ...]
    """The validator registry."""

    justifications_roots: tuple[bytes, ...]
    """Roots that have votes towards justification but are not justified yet."""

    justifications_validators: Bitlist
    """Per root in ``justifications_roots``, one bit per validator that voted for it, concatenated
    in that order."""


@dataclass(frozen=True, slots=True)
class Status(SSZContainer):
    """The Status req/resp message: where a peer's chain stands, sent on every connection."""

    finalized: Checkpoint
    """The sender's latest finalized checkpoint."""

    head: Checkpoint
    """The sender's head block."""


@dataclass(frozen=True, slots=True)
class BlocksByRootRequest(SSZContainer):
    """A request for blocks by root (up to 1,024 roots)."""

    roots: tuple[bytes, ...]
    """The wanted blocks' roots; unknown ones are skipped in the answer."""


@dataclass(frozen=True, slots=True)
class BlocksByRangeRequest(SSZContainer):
    """A request for the canonical blocks in a slot range (up to 1,024 slots)."""

    start_slot: int
    """The first slot asked for."""

    count: int
    """How many slots from ``start_slot``."""


class ValidatorsType(ListType):
    """``List[Validator, 4096]`` whose every validator's ``index`` equals its position."""

    def _check_positions(self, value: tuple[Any, ...]) -> None:
        for position, validator in enumerate(value):
            if validator.index != position:
                raise SSZError(f"validator at position {position} claims index {validator.index}")

    def encode(self, value: tuple[Any, ...]) -> bytes:
        self._check_positions(value)
        return super().encode(value)

    def decode(self, data: bytes) -> tuple[Any, ...]:
        value = super().decode(data)
        self._check_positions(value)
        return value


_define(Checkpoint, ("root", BYTES32), ("slot", UINT64))
_CHECKPOINT = Checkpoint.ssz_type
_define(
    AttestationData,
    ("slot", UINT64),
    ("head", _CHECKPOINT),
    ("target", _CHECKPOINT),
    ("source", _CHECKPOINT),
)
_define(Attestation, ("validator_index", UINT64), ("data", AttestationData.ssz_type))
_define(
    SignedAttestation,
    ("validator_index", UINT64),
    ("data", AttestationData.ssz_type),
    ("signature", SIGNATURE),
)
_AGGREGATION_BITS = BitlistType(AGGREGATION_BITS_LIMIT)
_PROOF_BYTES = ByteListType(PROOF_BYTES_LIMIT)
_define(
    AggregatedAttestation,
    ("aggregation_bits", _AGGREGATION_BITS),
    ("data", AttestationData.ssz_type),
)
_define(SingleMessageAggregate, ("participants", _AGGREGATION_BITS), ("proof", _PROOF_BYTES))
_define(
    SignedAggregatedAttestation,
    ("data", AttestationData.ssz_type),
    ("proof", SingleMessageAggregate.ssz_type),
)
_define(MultiMessageAggregate, ("proof", _PROOF_BYTES))
_define(
    BlockBody,
    ("attestations", ListType(AggregatedAttestation.ssz_type, VALIDATOR_REGISTRY_LIMIT)),
)
_define(
    BlockHeader,
    ("slot", UINT64),
    ("proposer_index", UINT64),
    ("parent_root", BYTES32),
    ("state_root", BYTES32),
    ("body_root", BYTES32),
)
_define(
    Block,
    ("slot", UINT64),
    ("proposer_index", UINT64),
    ("parent_root", BYTES32),
    ("state_root", BYTES32),
    ("body", BlockBody.ssz_type),
)
_define(SignedBlock, ("block", Block.ssz_type), ("proof", MultiMessageAggregate.ssz_type))
_define(
    Validator,
    ("attestation_public_key", BYTES52),
    ("proposal_public_key", BYTES52),
    ("index", UINT64),
)
_define(Config, ("genesis_time", UINT64))
_define(
    State,
    ("config", Config.ssz_type),
    ("slot", UINT64),
    ("latest_block_header", BlockHeader.ssz_type),
    ("latest_justified", _CHECKPOINT),
    ("latest_finalized", _CHECKPOINT),
    ("historical_block_hashes", ListType(BYTES32, HISTORICAL_ROOTS_LIMIT)),
    ("justified_slots", BitlistType(HISTORICAL_ROOTS_LIMIT)),
    ("validators", ValidatorsType(Validator.ssz_type, VALIDATOR_REGISTRY_LIMIT)),
    ("justifications_roots", ListType(BYTES32, HISTORICAL_ROOTS_LIMIT)),
    ("justifications_validators", BitlistType(HISTORICAL_ROOTS_LIMIT * VALIDATOR_REGISTRY_LIMIT)),
)
_define(Status, ("finalized", _CHECKPOINT), ("head", _CHECKPOINT))
_define(BlocksByRootRequest, ("roots", ListType(BYTES32, MAX_REQUEST_BLOCKS)))
_define(BlocksByRangeRequest, ("start_slot", UINT64), ("count", UINT64))

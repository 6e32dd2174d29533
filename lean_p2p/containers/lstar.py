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
    root: bytes
    slot: int


@dataclass(frozen=True, slots=True)
class AttestationData(SSZContainer):
    slot: int
    head: Checkpoint
    target: Checkpoint
    source: Checkpoint


@dataclass(frozen=True, slots=True)
class Attestation(SSZContainer):
    validator_index: int
    data: AttestationData


@dataclass(frozen=True, slots=True)
class SignedAttestation(SSZContainer):
    validator_index: int
    data: AttestationData
    signature: bytes


@dataclass(frozen=True, slots=True)
class AggregatedAttestation(SSZContainer):
    aggregation_bits: Bitlist
    data: AttestationData


@dataclass(frozen=True, slots=True)
class SingleMessageAggregate(SSZContainer):
    participants: Bitlist
    proof: bytes


@dataclass(frozen=True, slots=True)
class SignedAggregatedAttestation(SSZContainer):
    data: AttestationData
    proof: SingleMessageAggregate


@dataclass(frozen=True, slots=True)
class MultiMessageAggregate(SSZContainer):
    proof: bytes


@dataclass(frozen=True, slots=True)
class BlockBody(SSZContainer):
    attestations: tuple[AggregatedAttestation, ...]


@dataclass(frozen=True, slots=True)
class BlockHeader(SSZContainer):
    slot: int
    proposer_index: int
    parent_root: bytes
    state_root: bytes
    body_root: bytes


@dataclass(frozen=True, slots=True)
class Block(SSZContainer):
    slot: int
    proposer_index: int
    parent_root: bytes
    state_root: bytes
    body: BlockBody


@dataclass(frozen=True, slots=True)
class SignedBlock(SSZContainer):
    block: Block
    proof: MultiMessageAggregate


@dataclass(frozen=True, slots=True)
class Validator(SSZContainer):
    attestation_public_key: bytes
    proposal_public_key: bytes
    index: int


@dataclass(frozen=True, slots=True)
class Config(SSZContainer):
    genesis_time: int


@dataclass(frozen=True, slots=True)
class State(SSZContainer):
    config: Config
    slot: int
    latest_block_header: BlockHeader
    latest_justified: Checkpoint
    latest_finalized: Checkpoint
    historical_block_hashes: tuple[bytes, ...]
    justified_slots: Bitlist
    validators: tuple[Validator, ...]
    justifications_roots: tuple[bytes, ...]
    justifications_validators: Bitlist


@dataclass(frozen=True, slots=True)
class Status(SSZContainer):
    finalized: Checkpoint
    head: Checkpoint


@dataclass(frozen=True, slots=True)
class BlocksByRootRequest(SSZContainer):
    roots: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class BlocksByRangeRequest(SSZContainer):
    start_slot: int
    count: int


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

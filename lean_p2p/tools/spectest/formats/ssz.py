"""The ``ssz`` fixture format: typeName + value -> serialized bytes and root. Any thread.

A vector either round-trips (``value`` encodes to ``serialized``, ``serialized``
decodes back to ``value``, and the root matches) or, with ``rejectionReason``, its
``rawBytes`` must be refused by the decoder with that reason.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from lean_p2p.containers import lstar
from lean_p2p.containers.scheme import PRODUCTION_SCHEME, TEST_SCHEME, using_signature_scheme
from lean_p2p.containers.ssz import (
    BOOLEAN,
    BYTES4,
    BYTES32,
    BYTES52,
    BYTES64,
    UINT8,
    UINT16,
    UINT32,
    UINT64,
    BitlistType,
    BitvectorType,
    ByteListType,
    ListType,
    SSZError,
    SSZType,
    VectorType,
)
from lean_p2p.containers.xmss import (
    FP,
    PUBLIC_KEY,
    SIGNATURE,
    hash_tree_layer_type,
    hash_tree_opening_type,
)
from lean_p2p.tools.spectest.formats._json import from_hex, value_from_json
from lean_p2p.tools.spectest.runner import VectorFailure, VectorSkipped

__all__ = ["FORMAT", "TYPES", "run_vector"]

FORMAT: Final = "ssz"

_CONTAINERS: Final = (
    lstar.Checkpoint,
    lstar.AttestationData,
    lstar.Attestation,
    lstar.SignedAttestation,
    lstar.AggregatedAttestation,
    lstar.SingleMessageAggregate,
    lstar.SignedAggregatedAttestation,
    lstar.MultiMessageAggregate,
    lstar.BlockBody,
    lstar.BlockHeader,
    lstar.Block,
    lstar.SignedBlock,
    lstar.Validator,
    lstar.Config,
    lstar.State,
    lstar.Status,
    lstar.BlocksByRootRequest,
    lstar.BlocksByRangeRequest,
)


def _container_factory(cls: type[lstar.SSZContainer]) -> Callable[[], SSZType[Any]]:
    return lambda: cls.ssz_type


#: typeName -> a factory of its SSZ type (factories, because some depend on the scheme).
TYPES: Final[dict[str, Callable[[], SSZType[Any]]]] = {
    **{cls.__name__: _container_factory(cls) for cls in _CONTAINERS},
    "Boolean": lambda: BOOLEAN,
    "Uint8": lambda: UINT8,
    "Uint16": lambda: UINT16,
    "Uint32": lambda: UINT32,
    "Uint64": lambda: UINT64,
    "Bytes4": lambda: BYTES4,
    "Bytes32": lambda: BYTES32,
    "Bytes52": lambda: BYTES52,
    "Bytes64": lambda: BYTES64,
    "Fp": lambda: FP,
    "PublicKey": lambda: PUBLIC_KEY,
    "Signature": lambda: SIGNATURE,
    "HashTreeOpening": hash_tree_opening_type,
    "HashTreeLayer": hash_tree_layer_type,
    "ByteList512KiB": lambda: ByteListType(lstar.PROOF_BYTES_LIMIT),
    "AttestationSubnets": lambda: BitvectorType(64),
    "Validators": lambda: lstar.ValidatorsType(
        lstar.Validator.ssz_type, lstar.VALIDATOR_REGISTRY_LIMIT
    ),
    # Sample and boundary types of leanSpec's own SSZ tests; the name states the shape.
    "SampleBitlist16": lambda: BitlistType(16),
    "DecodeBitlist8": lambda: BitlistType(8),
    "SmokeBitlist8": lambda: BitlistType(8),
    "BoundaryBitlist256": lambda: BitlistType(256),
    "SampleBitvector8": lambda: BitvectorType(8),
    "SampleBitvector64": lambda: BitvectorType(64),
    "DecodeBitvector16": lambda: BitvectorType(16),
    "BoundaryBitvector1": lambda: BitvectorType(1),
    "BoundaryBitvector7": lambda: BitvectorType(7),
    "BoundaryBitvector9": lambda: BitvectorType(9),
    "BoundaryBitvector255": lambda: BitvectorType(255),
    "BoundaryBitvector256": lambda: BitvectorType(256),
    "BoundaryBitvector257": lambda: BitvectorType(257),
    "SampleUint16Vector3": lambda: VectorType(UINT16, 3),
    "SampleUint64Vector4": lambda: VectorType(UINT64, 4),
    "SampleUint32List16": lambda: ListType(UINT32, 16),
    "BoundaryUint64List32": lambda: ListType(UINT64, 32),
    "SampleBytes32List8": lambda: ListType(BYTES32, 8),
}


_SCHEMES: Final = {"test": TEST_SCHEME, "prod": PRODUCTION_SCHEME}


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise VectorFailure(message)


def run_vector(test_id: str, fixture: Mapping[str, Any]) -> None:
    scheme = _SCHEMES.get(fixture.get("leanEnv", "test"))
    if scheme is None:
        raise VectorSkipped(f"unknown leanEnv {fixture.get('leanEnv')!r}")
    with using_signature_scheme(scheme):
        _run(fixture)


def _run(fixture: Mapping[str, Any]) -> None:
    type_name = fixture["typeName"]
    factory = TYPES.get(type_name)
    if factory is None:
        raise VectorSkipped(f"unsupported typeName {type_name}")
    ssz_type = factory()
    reason = fixture.get("rejectionReason")
    if reason is not None:
        raw = from_hex(fixture["rawBytes"])
        try:
            decoded = ssz_type.decode(raw)
        except SSZError as error:
            _expect(error.reason.value == reason, f"rejected as {error.reason}, want {reason}")
            return
        raise VectorFailure(f"{raw.hex()} decoded to {decoded!r}; want rejection {reason}")
    value = value_from_json(ssz_type, fixture["value"])
    serialized = from_hex(fixture["serialized"])
    encoded = ssz_type.encode(value)
    _expect(encoded == serialized, f"encode: {encoded.hex()} != {serialized.hex()}")
    decoded = ssz_type.decode(serialized)
    _expect(decoded == value, f"decode: {decoded!r} != {value!r}")
    root = ssz_type.hash_tree_root(value)
    _expect(root == from_hex(fixture["root"]), f"root {root.hex()} != {fixture['root']}")

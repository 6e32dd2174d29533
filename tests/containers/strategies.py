"""Hypothesis strategies for every SSZ type and lstar container (shared by tests)."""

from __future__ import annotations

import struct
from typing import Any

from hypothesis import strategies as st

from lean_p2p.containers import Bitlist, active_scheme
from lean_p2p.containers.lstar import ValidatorsType
from lean_p2p.containers.ssz import (
    BitlistType,
    BitvectorType,
    BooleanType,
    ByteListType,
    ByteVectorType,
    ContainerType,
    ListType,
    SSZType,
    UintType,
    VectorType,
)
from lean_p2p.containers.xmss import FIELD_MODULUS, SignatureType, signature_from_parts

__all__ = ["signatures", "values_of"]

MAX_LIST = 4
MAX_BYTES = 80


def _field_elements(count: int) -> st.SearchStrategy[bytes]:
    elements = st.lists(st.integers(0, FIELD_MODULUS - 1), min_size=count, max_size=count)
    return elements.map(lambda values: struct.pack(f"<{count}I", *values))


@st.composite
def signatures(draw: st.DrawFn) -> bytes:
    """Well-formed signature encodings of the active scheme with arbitrary field elements."""
    scheme = active_scheme()
    rho = draw(_field_elements(scheme.rand_length))
    siblings = draw(_field_elements(scheme.log_lifetime * scheme.hash_length))
    hashes = draw(_field_elements(scheme.dimension * scheme.hash_length))
    return signature_from_parts(rho, siblings, hashes, scheme)


def values_of(ssz_type: SSZType[Any]) -> st.SearchStrategy[Any]:
    """Valid Python values of ``ssz_type`` (lists kept short so tests stay fast)."""
    if isinstance(ssz_type, UintType):
        return st.integers(0, ssz_type.maximum)
    if isinstance(ssz_type, BooleanType):
        return st.booleans()
    if isinstance(ssz_type, ByteVectorType):
        return st.binary(min_size=ssz_type.length, max_size=ssz_type.length)
    if isinstance(ssz_type, ByteListType):
        return st.binary(max_size=min(ssz_type.limit, MAX_BYTES))
    if isinstance(ssz_type, SignatureType):
        return signatures()
    if isinstance(ssz_type, BitvectorType):
        length = ssz_type.length
        return st.lists(st.booleans(), min_size=length, max_size=length).map(tuple)
    if isinstance(ssz_type, BitlistType):
        bits = st.lists(st.booleans(), max_size=min(ssz_type.limit, MAX_BYTES))
        return bits.map(Bitlist.from_bools)
    if isinstance(ssz_type, ValidatorsType):
        return st.lists(values_of(ssz_type.element), max_size=MAX_LIST).map(
            lambda validators: tuple(
                type(v)(v.attestation_public_key, v.proposal_public_key, index)
                for index, v in enumerate(validators)
            )
        )
    if isinstance(ssz_type, ListType):
        return st.lists(values_of(ssz_type.element), max_size=MAX_LIST).map(tuple)
    if isinstance(ssz_type, VectorType):
        element = values_of(ssz_type.element)
        return st.lists(element, min_size=ssz_type.length, max_size=ssz_type.length).map(tuple)
    if isinstance(ssz_type, ContainerType):
        fields = {name: values_of(field_type) for name, field_type in ssz_type.fields}
        return st.builds(ssz_type.cls, **fields)
    raise TypeError(f"no strategy for {ssz_type!r}")

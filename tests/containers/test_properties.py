"""Property tests: every container round-trips, and bad bytes raise only SSZError."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lean_p2p.containers
from lean_p2p.containers import SSZContainer, SSZError
from tests.containers.strategies import values_of

PROPERTY_SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

ALL_CONTAINERS = [
    value
    for value in vars(lean_p2p.containers).values()
    if isinstance(value, type) and issubclass(value, SSZContainer) and value is not SSZContainer
]
CONTAINERS = pytest.mark.parametrize("cls", ALL_CONTAINERS, ids=lambda cls: cls.__name__)


@CONTAINERS
@PROPERTY_SETTINGS
@given(data=st.data())
def test_decode_inverts_encode(cls: type[SSZContainer], data: st.DataObject) -> None:
    value = data.draw(values_of(cls.ssz_type))
    encoded = value.encode()
    assert cls.decode(encoded) == value
    root = value.hash_tree_root()
    assert len(root) == 32
    assert cls.decode(encoded).hash_tree_root() == root


def _decode_or_typed_error(cls: type[SSZContainer], raw: bytes) -> None:
    """Decoding either fails with SSZError or yields a value that re-encodes to ``raw``."""
    try:
        value: Any = cls.decode(raw)
    except SSZError:
        return
    assert value.encode() == raw


@CONTAINERS
@PROPERTY_SETTINGS
@given(raw=st.binary(max_size=700))
def test_random_bytes_raise_only_ssz_error(cls: type[SSZContainer], raw: bytes) -> None:
    _decode_or_typed_error(cls, raw)


@CONTAINERS
@PROPERTY_SETTINGS
@given(data=st.data())
def test_mutated_encodings_raise_only_ssz_error(
    cls: type[SSZContainer], data: st.DataObject
) -> None:
    encoded = bytearray(data.draw(values_of(cls.ssz_type)).encode())
    mutation = data.draw(st.sampled_from(["flip", "truncate", "extend", "splice"]))
    if mutation == "flip" and encoded:
        index = data.draw(st.integers(0, len(encoded) - 1))
        encoded[index] ^= data.draw(st.integers(1, 255))
    elif mutation == "truncate" and encoded:
        del encoded[data.draw(st.integers(0, len(encoded) - 1)) :]
    elif mutation == "extend":
        encoded += data.draw(st.binary(min_size=1, max_size=40))
    else:
        index = data.draw(st.integers(0, len(encoded)))
        encoded[index:index] = data.draw(st.binary(min_size=1, max_size=8))
    _decode_or_typed_error(cls, bytes(encoded))

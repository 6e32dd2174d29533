"""Fixture JSON -> SSZ values, driven by the SSZ type. Any thread.

leanSpec writes keys in camelCase, bytes as ``0x`` hex, lists and bit fields as
``{"data": [...]}``, large integers sometimes as strings and field elements as
``Fp(value=N)``.
"""

from __future__ import annotations

import re
from typing import Any

from lean_p2p.containers.bitlist import Bitlist
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
from lean_p2p.containers.xmss import PublicKeyType, SignatureType

__all__ = ["camel_case", "from_hex", "value_from_json"]

_FIELD_ELEMENT = re.compile(r"^Fp\(value=(\d+)\)$")


def camel_case(snake: str) -> str:
    head, *rest = snake.split("_")
    return head + "".join(part.capitalize() for part in rest)


def from_hex(text: str) -> bytes:
    if not text.startswith("0x"):
        raise ValueError(f"expected 0x-prefixed hex, got {text[:20]!r}")
    return bytes.fromhex(text[2:])


def _unwrap(value: Any) -> Any:
    if isinstance(value, dict) and set(value) == {"data"}:
        return value["data"]
    return value


def _integer(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError(f"expected an integer, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        match = _FIELD_ELEMENT.match(value)
        return int(match.group(1) if match else value, 0)
    raise ValueError(f"expected an integer, got {value!r}")


def value_from_json(ssz_type: SSZType[Any], value: Any) -> Any:
    """The Python value of ``ssz_type`` that the fixture JSON ``value`` describes."""
    if isinstance(ssz_type, UintType):
        return _integer(value)
    if isinstance(ssz_type, BooleanType):
        if not isinstance(value, bool):
            raise ValueError(f"expected a boolean, got {value!r}")
        return value
    if isinstance(ssz_type, ByteVectorType | ByteListType | SignatureType | PublicKeyType):
        return from_hex(_unwrap(value))
    if isinstance(ssz_type, BitvectorType):
        return tuple(bool(bit) for bit in _unwrap(value))
    if isinstance(ssz_type, BitlistType):
        return Bitlist.from_bools(bool(bit) for bit in _unwrap(value))
    if isinstance(ssz_type, VectorType | ListType):
        return tuple(value_from_json(ssz_type.element, item) for item in _unwrap(value))
    if isinstance(ssz_type, ContainerType):
        if not isinstance(value, dict):
            raise ValueError(f"{ssz_type!r} expects an object, got {value!r}")
        arguments = {
            name: value_from_json(field_type, value[camel_case(name)])
            for name, field_type in ssz_type.fields
        }
        return ssz_type.cls(**arguments)
    raise TypeError(f"no JSON mapping for {ssz_type!r}")

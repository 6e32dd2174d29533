"""A small SSZ type system: serialize, deserialize and hash_tree_root. Any thread.

Each SSZ type is an immutable descriptor object (``UINT64``, ``ByteVectorType(32)``,
``ListType(element, limit)``, ``ContainerType(cls, fields)`` ...) that encodes and
decodes plain Python values: ``int``, ``bool``, ``bytes``, ``tuple`` for vectors and
lists, :class:`~lean_p2p.containers.bitlist.Bitlist`, and frozen dataclasses for
containers. Decoding validates everything the SSZ spec requires (exact sizes, offsets
in range and non-decreasing, list limits, bitlist delimiters) and raises only
:class:`SSZError`; it never allocates more than the input's own size.
"""

from __future__ import annotations

import struct
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from operator import attrgetter
from typing import Any, Final, Generic, TypeVar

from lean_p2p.containers.bitlist import Bitlist
from lean_p2p.containers.errors import WireError
from lean_p2p.containers.merkle import (
    BYTES_PER_CHUNK,
    hash_up,
    merkleize,
    merkleize_chunks,
    mix_in_length,
)
from lean_p2p.containers.scheme import scheme_generation

__all__ = [
    "BOOLEAN",
    "BYTES4",
    "BYTES32",
    "BYTES52",
    "BYTES64",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
    "BitlistType",
    "BitvectorType",
    "BooleanType",
    "ByteListType",
    "ByteVectorType",
    "ContainerType",
    "ListType",
    "SSZError",
    "SSZType",
    "UintType",
    "VectorType",
]

T = TypeVar("T")

OFFSET_BYTES: Final = 4
_OFFSET = struct.Struct("<I")


class SSZError(WireError):
    """Bytes that are not a valid encoding of the type, or a value it cannot encode."""


class SSZType(ABC, Generic[T]):
    """One SSZ type: its size class, codec and merkleization."""

    #: Basic types (uints, boolean) are packed together inside vectors and lists.
    is_basic: bool = False

    @abstractmethod
    def is_fixed(self) -> bool: ...

    def fixed_size(self) -> int:
        """Encoded size of every value (only for fixed-size types)."""
        raise TypeError(f"{self!r} is variable-size")

    @abstractmethod
    def encode(self, value: T) -> bytes: ...

    @abstractmethod
    def decode(self, data: bytes) -> T: ...

    @abstractmethod
    def hash_tree_root(self, value: T) -> bytes: ...

    def _expect_size(self, data: bytes) -> None:
        size = self.fixed_size()
        if len(data) != size:
            raise SSZError(f"{self!r} needs exactly {size} bytes, got {len(data)}")


# -- basic types -----------------------------------------------------------------------


class UintType(SSZType[int]):
    is_basic = True

    def __init__(self, byte_length: int) -> None:
        self.byte_length = byte_length
        self.maximum = (1 << (8 * byte_length)) - 1

    def __repr__(self) -> str:
        return f"uint{8 * self.byte_length}"

    def is_fixed(self) -> bool:
        return True

    def fixed_size(self) -> int:
        return self.byte_length

    def encode(self, value: int) -> bytes:
        if not 0 <= value <= self.maximum:
            raise SSZError(f"{value} is out of range for {self!r}")
        return value.to_bytes(self.byte_length, "little")

    def decode(self, data: bytes) -> int:
        self._expect_size(data)
        return int.from_bytes(data, "little")

    def hash_tree_root(self, value: int) -> bytes:
        return self.encode(value).ljust(BYTES_PER_CHUNK, b"\x00")


class BooleanType(SSZType[bool]):
    is_basic = True

    def __repr__(self) -> str:
        return "boolean"

    def is_fixed(self) -> bool:
        return True

    def fixed_size(self) -> int:
        return 1

    def encode(self, value: bool) -> bytes:
        return b"\x01" if value else b"\x00"

    def decode(self, data: bytes) -> bool:
        self._expect_size(data)
        if data[0] > 1:
            raise SSZError(f"boolean byte must be 0 or 1, got {data[0]}")
        return data[0] == 1

    def hash_tree_root(self, value: bool) -> bytes:
        return self.encode(value).ljust(BYTES_PER_CHUNK, b"\x00")


# -- byte strings ----------------------------------------------------------------------


class ByteVectorType(SSZType[bytes]):
    """``ByteVector[n]`` (``Bytes32`` and friends): exactly ``n`` bytes."""

    def __init__(self, length: int) -> None:
        self.length = length

    def __repr__(self) -> str:
        return f"Bytes{self.length}"

    def is_fixed(self) -> bool:
        return True

    def fixed_size(self) -> int:
        return self.length

    def encode(self, value: bytes) -> bytes:
        if len(value) != self.length:
            raise SSZError(f"{self!r} needs {self.length} bytes, got {len(value)}")
        return bytes(value)

    def decode(self, data: bytes) -> bytes:
        self._expect_size(data)
        return bytes(data)

    def hash_tree_root(self, value: bytes) -> bytes:
        if self.length == BYTES_PER_CHUNK:
            return bytes(value)
        return merkleize(value)


class ByteListType(SSZType[bytes]):
    """``ByteList[limit]``: up to ``limit`` bytes."""

    def __init__(self, limit: int) -> None:
        self.limit = limit

    def __repr__(self) -> str:
        return f"ByteList[{self.limit}]"

    def is_fixed(self) -> bool:
        return False

    def encode(self, value: bytes) -> bytes:
        if len(value) > self.limit:
            raise SSZError(f"{len(value)} bytes exceed {self!r}")
        return bytes(value)

    def decode(self, data: bytes) -> bytes:
        if len(data) > self.limit:
            raise SSZError(f"{len(data)} bytes exceed {self!r}")
        return bytes(data)

    def hash_tree_root(self, value: bytes) -> bytes:
        limit_chunks = (self.limit + BYTES_PER_CHUNK - 1) // BYTES_PER_CHUNK
        return mix_in_length(merkleize(value, limit_chunks), len(value))


# -- bit fields ------------------------------------------------------------------------


class BitvectorType(SSZType[tuple[bool, ...]]):
    """``Bitvector[n]``: exactly ``n`` bits, value a tuple of bools."""

    def __init__(self, length: int) -> None:
        if length < 1:
            raise ValueError("a bitvector holds at least one bit")
        self.length = length

    def __repr__(self) -> str:
        return f"Bitvector[{self.length}]"

    def is_fixed(self) -> bool:
        return True

    def fixed_size(self) -> int:
        return (self.length + 7) // 8

    def encode(self, value: tuple[bool, ...]) -> bytes:
        if len(value) != self.length:
            raise SSZError(f"{self!r} needs {self.length} bits, got {len(value)}")
        number = 0
        for index, bit in enumerate(value):
            if bit:
                number |= 1 << index
        return number.to_bytes(self.fixed_size(), "little")

    def decode(self, data: bytes) -> tuple[bool, ...]:
        self._expect_size(data)
        number = int.from_bytes(data, "little")
        if number >> self.length:
            raise SSZError(f"{self!r} has bits set beyond its length")
        return tuple(bool(number >> index & 1) for index in range(self.length))

    def hash_tree_root(self, value: tuple[bool, ...]) -> bytes:
        limit_chunks = (self.length + 255) // 256
        return merkleize(self.encode(value), limit_chunks)


class BitlistType(SSZType[Bitlist]):
    """``Bitlist[limit]``: value an immutable :class:`Bitlist`."""

    def __init__(self, limit: int) -> None:
        self.limit = limit

    def __repr__(self) -> str:
        return f"Bitlist[{self.limit}]"

    def is_fixed(self) -> bool:
        return False

    def encode(self, value: Bitlist) -> bytes:
        if value.length > self.limit:
            raise SSZError(f"{value.length} bits exceed {self!r}")
        # The delimiter bit sits right after the last bit; it may need one more byte.
        number = int.from_bytes(value.data, "little") | (1 << value.length)
        return number.to_bytes(value.length // 8 + 1, "little")

    def decode(self, data: bytes) -> Bitlist:
        if not data:
            raise SSZError(f"{self!r}: empty input has no delimiter bit")
        if len(data) > self.limit // 8 + 1:
            raise SSZError(f"{len(data)} bytes are too many for {self!r}")
        last = data[-1]
        if last == 0:
            raise SSZError(f"{self!r}: the last byte carries no delimiter bit")
        length = (len(data) - 1) * 8 + last.bit_length() - 1
        if length > self.limit:
            raise SSZError(f"{length} bits exceed {self!r}")
        number = int.from_bytes(data, "little") ^ (1 << length)
        return Bitlist(length, number.to_bytes((length + 7) // 8, "little"))

    def hash_tree_root(self, value: Bitlist) -> bytes:
        if value.length > self.limit:
            raise SSZError(f"{value.length} bits exceed {self!r}")
        limit_chunks = (self.limit + 255) // 256
        return mix_in_length(merkleize(value.data, limit_chunks), value.length)


# -- composite sequences ---------------------------------------------------------------


def _decode_variable_elements(element: SSZType[Any], data: bytes, limit: int) -> list[Any]:
    """Elements of a variable-size element type, each found through its offset."""
    if not data:
        return []
    if len(data) < OFFSET_BYTES:
        raise SSZError("input too short for the first offset")
    first = _OFFSET.unpack_from(data, 0)[0]
    if first % OFFSET_BYTES or first == 0:
        raise SSZError(f"first offset {first} is not a positive multiple of {OFFSET_BYTES}")
    count = first // OFFSET_BYTES
    if count > limit:
        raise SSZError(f"{count} elements exceed the limit of {limit}")
    if first > len(data):
        raise SSZError(f"first offset {first} is past the end ({len(data)} bytes)")
    offsets = [_OFFSET.unpack_from(data, OFFSET_BYTES * i)[0] for i in range(count)]
    offsets.append(len(data))
    values = []
    for index in range(count):
        start, end = offsets[index], offsets[index + 1]
        if not start <= end <= len(data):
            raise SSZError(f"offsets {start}..{end} are decreasing or out of range")
        values.append(element.decode(data[start:end]))
    return values


def _encode_elements(element: SSZType[Any], values: Sequence[Any]) -> bytes:
    if element.is_fixed():
        return b"".join(element.encode(value) for value in values)
    parts = [element.encode(value) for value in values]
    offset = OFFSET_BYTES * len(parts)
    header = bytearray()
    for part in parts:
        header += _OFFSET.pack(offset)
        offset += len(part)
    return bytes(header) + b"".join(parts)


def _element_roots(element: SSZType[Any], values: Sequence[Any]) -> list[bytes]:
    return [element.hash_tree_root(value) for value in values]


class VectorType(SSZType[tuple[Any, ...]]):
    """``Vector[element, length]``: value a tuple of exactly ``length`` elements."""

    def __init__(self, element: SSZType[Any], length: int) -> None:
        if length < 1:
            raise ValueError("a vector holds at least one element")
        self.element = element
        self.length = length

    def __repr__(self) -> str:
        return f"Vector[{self.element!r}, {self.length}]"

    def is_fixed(self) -> bool:
        return self.element.is_fixed()

    def fixed_size(self) -> int:
        return self.element.fixed_size() * self.length

    def encode(self, value: tuple[Any, ...]) -> bytes:
        if len(value) != self.length:
            raise SSZError(f"{self!r} needs {self.length} elements, got {len(value)}")
        return _encode_elements(self.element, value)

    def decode(self, data: bytes) -> tuple[Any, ...]:
        if not self.element.is_fixed():
            values = _decode_variable_elements(self.element, data, self.length)
            if len(values) != self.length:
                raise SSZError(f"{self!r} needs {self.length} elements, got {len(values)}")
            return tuple(values)
        self._expect_size(data)
        size = self.element.fixed_size()
        decode = self.element.decode
        return tuple(decode(data[i : i + size]) for i in range(0, len(data), size))

    def hash_tree_root(self, value: tuple[Any, ...]) -> bytes:
        if self.element.is_basic:
            size = self.element.fixed_size() * self.length
            return merkleize(self.encode(value), (size + BYTES_PER_CHUNK - 1) // BYTES_PER_CHUNK)
        return merkleize_chunks(_element_roots(self.element, value), self.length)


class ListType(SSZType[tuple[Any, ...]]):
    """``List[element, limit]``: value a tuple of at most ``limit`` elements."""

    def __init__(self, element: SSZType[Any], limit: int) -> None:
        self.element = element
        self.limit = limit

    def __repr__(self) -> str:
        return f"List[{self.element!r}, {self.limit}]"

    def is_fixed(self) -> bool:
        return False

    def encode(self, value: tuple[Any, ...]) -> bytes:
        if len(value) > self.limit:
            raise SSZError(f"{len(value)} elements exceed {self!r}")
        return _encode_elements(self.element, value)

    def decode(self, data: bytes) -> tuple[Any, ...]:
        if not self.element.is_fixed():
            return tuple(_decode_variable_elements(self.element, data, self.limit))
        size = self.element.fixed_size()
        if len(data) % size:
            raise SSZError(f"{len(data)} bytes are not a whole number of {size}-byte elements")
        if len(data) // size > self.limit:
            raise SSZError(f"{len(data) // size} elements exceed {self!r}")
        decode = self.element.decode
        return tuple(decode(data[i : i + size]) for i in range(0, len(data), size))

    def hash_tree_root(self, value: tuple[Any, ...]) -> bytes:
        if len(value) > self.limit:
            raise SSZError(f"{len(value)} elements exceed {self!r}")
        if self.element.is_basic:
            size = self.element.fixed_size()
            limit_chunks = (size * self.limit + BYTES_PER_CHUNK - 1) // BYTES_PER_CHUNK
            root = merkleize(self.encode(value), limit_chunks)
        else:
            root = merkleize_chunks(_element_roots(self.element, value), self.limit)
        return mix_in_length(root, len(value))


# -- containers ------------------------------------------------------------------------


_UINT_FORMATS: Final = {1: "B", 2: "H", 4: "I", 8: "Q"}

# How the fast path turns one struct field (or a run of them) back into a value:
# ``None`` takes the unpacked value as is; a type decodes the raw bytes it was given;
# a nested plan builds a sub-container from the following values.
_Step = None | SSZType[Any] | tuple[Callable[..., Any], list[Any]]


def _fast_plan(types: Sequence[SSZType[Any]]) -> tuple[str, list[_Step]]:
    """One struct format for a fixed-size container, flattening nested fixed containers."""
    layout = ""
    steps: list[_Step] = []
    for field_type in types:
        if type(field_type) is UintType and field_type.byte_length in _UINT_FORMATS:
            layout += _UINT_FORMATS[field_type.byte_length]
            steps.append(None)
        elif type(field_type) is ByteVectorType:
            layout += f"{field_type.length}s"
            steps.append(None)
        elif isinstance(field_type, ContainerType):
            nested_layout, nested_steps = _fast_plan(field_type._types)
            layout += nested_layout
            steps.append((field_type.cls, nested_steps))
        else:
            layout += f"{field_type.fixed_size()}s"
            steps.append(field_type)
    return layout, steps


def _build(cls: Callable[..., Any], steps: list[_Step], values: Iterator[Any]) -> Any:
    arguments = []
    for step in steps:
        if step is None:
            arguments.append(next(values))
        elif isinstance(step, tuple):
            arguments.append(_build(step[0], step[1], values))
        else:
            arguments.append(step.decode(next(values)))
    return cls(*arguments)


class _Layout:
    """A container's byte layout, cached until the signature scheme changes.

    Fixed-size containers also get a fast path, chosen by measurement (see
    docs/bench-wire.md): one ``struct`` unpack of every field, nested containers
    included, decodes a SignedAttestation about 3x faster than field-by-field slicing.
    """

    __slots__ = ("fixed_part", "fixed_sizes", "generation", "is_fixed", "steps", "struct")

    def __init__(self, types: Sequence[SSZType[Any]]) -> None:
        self.generation = scheme_generation()
        self.fixed_sizes = [t.fixed_size() if t.is_fixed() else None for t in types]
        self.fixed_part = sum(OFFSET_BYTES if s is None else s for s in self.fixed_sizes)
        self.is_fixed = all(s is not None for s in self.fixed_sizes)
        self.struct: struct.Struct | None = None
        self.steps: list[_Step] = []
        if self.is_fixed:
            layout, self.steps = _fast_plan(types)
            self.struct = struct.Struct("<" + layout)
            assert self.struct.size == self.fixed_part


class ContainerType(SSZType[T]):
    """An SSZ container whose values are instances of the frozen dataclass ``cls``."""

    def __init__(
        self,
        cls: Callable[..., T],
        fields: Sequence[tuple[str, SSZType[Any]]],
        name: str | None = None,
    ) -> None:
        self.cls = cls
        self.fields = tuple(fields)
        self.name: str = name or str(getattr(cls, "__name__", "Container"))
        self._types = [field_type for _, field_type in self.fields]
        self._get_fields = attrgetter(*(name for name, _ in self.fields))
        self._single_field = len(self.fields) == 1
        self._cached: _Layout | None = None
        self._depth = max(len(self.fields) - 1, 0).bit_length()

    def __repr__(self) -> str:
        return self.name

    def _layout(self) -> _Layout:
        cached = self._cached
        if cached is None or cached.generation != scheme_generation():
            cached = self._cached = _Layout(self._types)
        return cached

    def _values(self, value: T) -> tuple[Any, ...]:
        values = self._get_fields(value)
        return (values,) if self._single_field else values

    def is_fixed(self) -> bool:
        return self._layout().is_fixed

    def fixed_size(self) -> int:
        layout = self._layout()
        if not layout.is_fixed:
            raise TypeError(f"{self!r} is variable-size")
        return layout.fixed_part

    def encode(self, value: T) -> bytes:
        layout = self._layout()
        fixed_parts: list[bytes] = []
        variable_parts: list[bytes] = []
        offset = layout.fixed_part
        for field_type, size, field_value in zip(
            self._types, layout.fixed_sizes, self._values(value), strict=True
        ):
            encoded = field_type.encode(field_value)
            if size is None:
                fixed_parts.append(_OFFSET.pack(offset))
                variable_parts.append(encoded)
                offset += len(encoded)
            else:
                fixed_parts.append(encoded)
        return b"".join(fixed_parts) + b"".join(variable_parts)

    def decode(self, data: bytes) -> T:
        layout = self._layout()
        if layout.struct is not None:
            if len(data) != layout.fixed_part:
                raise SSZError(f"{self!r} needs exactly {layout.fixed_part} bytes, got {len(data)}")
            try:
                value: T = _build(self.cls, layout.steps, iter(layout.struct.unpack(data)))
            except (ValueError, TypeError) as error:
                raise SSZError(f"{self!r}: {error}") from error
            return value
        if layout.is_fixed:
            if len(data) != layout.fixed_part:
                raise SSZError(f"{self!r} needs exactly {layout.fixed_part} bytes, got {len(data)}")
        elif len(data) < layout.fixed_part:
            raise SSZError(f"{len(data)} bytes are shorter than {self!r}'s fixed part")
        # First pass: fixed fields and the offsets of the variable ones.
        position = 0
        slots: list[Any] = []
        offsets: list[int] = []
        for size in layout.fixed_sizes:
            if size is None:
                offset = _OFFSET.unpack_from(data, position)[0]
                if not offsets and offset != layout.fixed_part:
                    raise SSZError(
                        f"{self!r}: first offset {offset} must equal the fixed part "
                        f"{layout.fixed_part}"
                    )
                if offsets and offset < offsets[-1]:
                    raise SSZError(f"{self!r}: offsets decrease ({offsets[-1]} > {offset})")
                if offset > len(data):
                    raise SSZError(f"{self!r}: offset {offset} is past the end ({len(data)})")
                offsets.append(offset)
                slots.append(None)
                position += OFFSET_BYTES
            else:
                slots.append(data[position : position + size])
                position += size
        offsets.append(len(data))
        # Second pass: decode every field from its own slice.
        values = []
        variable_index = 0
        for field_type, size, fixed_slice in zip(
            self._types, layout.fixed_sizes, slots, strict=True
        ):
            if size is None:
                start, end = offsets[variable_index], offsets[variable_index + 1]
                variable_index += 1
                values.append(field_type.decode(data[start:end]))
            else:
                values.append(field_type.decode(fixed_slice))
        try:
            return self.cls(*values)
        except (ValueError, TypeError) as error:
            raise SSZError(f"{self!r}: {error}") from error

    def hash_tree_root(self, value: T) -> bytes:
        roots = [
            field_type.hash_tree_root(field_value)
            for field_type, field_value in zip(self._types, self._values(value), strict=True)
        ]
        return hash_up(roots, 0, self._depth)


UINT8: Final = UintType(1)
UINT16: Final = UintType(2)
UINT32: Final = UintType(4)
UINT64: Final = UintType(8)
BOOLEAN: Final = BooleanType()
BYTES4: Final = ByteVectorType(4)
BYTES32: Final = ByteVectorType(32)
BYTES52: Final = ByteVectorType(52)
BYTES64: Final = ByteVectorType(64)

"""The immutable ``Bitlist`` value. Any thread.

Bits are kept packed, little-endian within each byte (bit ``i`` is bit ``i % 8`` of
byte ``i // 8``), exactly as SSZ lays them out minus the length delimiter; every
update returns a new value.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

__all__ = ["Bitlist"]


@dataclass(frozen=True, slots=True)
class Bitlist:
    """A sequence of ``length`` bits; ``data`` holds them packed (unused bits zero)."""

    length: int
    data: bytes

    def __post_init__(self) -> None:
        if self.length < 0:
            raise ValueError("a bitlist length is never negative")
        if len(self.data) != (self.length + 7) // 8:
            raise ValueError(f"{len(self.data)} bytes cannot hold exactly {self.length} bits")
        spare = len(self.data) * 8 - self.length
        if spare and self.data[-1] >> (8 - spare):
            raise ValueError("bits beyond the bitlist length must be zero")

    @classmethod
    def from_bools(cls, bits: Iterable[bool]) -> Bitlist:
        values = list(bits)
        number = 0
        for index, bit in enumerate(values):
            if bit:
                number |= 1 << index
        return cls._from_int(number, len(values))

    @classmethod
    def zeros(cls, length: int) -> Bitlist:
        return cls(length, bytes((length + 7) // 8))

    @classmethod
    def from_indices(cls, length: int, indices: Iterable[int]) -> Bitlist:
        """``length`` bits with exactly the bits at ``indices`` set."""
        number = 0
        for index in indices:
            if not 0 <= index < length:
                raise IndexError(f"bit {index} is outside a bitlist of {length}")
            number |= 1 << index
        return cls._from_int(number, length)

    @classmethod
    def _from_int(cls, number: int, length: int) -> Bitlist:
        return cls(length, number.to_bytes((length + 7) // 8, "little"))

    def _as_int(self) -> int:
        return int.from_bytes(self.data, "little")

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> bool:
        if index < 0:
            index += self.length
        if not 0 <= index < self.length:
            raise IndexError(f"bit {index} is outside a bitlist of {self.length}")
        return bool(self.data[index >> 3] >> (index & 7) & 1)

    def __iter__(self) -> Iterator[bool]:
        data = self.data
        return (bool(data[i >> 3] >> (i & 7) & 1) for i in range(self.length))

    def __repr__(self) -> str:
        bits = "".join("1" if bit else "0" for bit in self)
        return f"Bitlist({self.length}, '{bits}')"

    def count(self) -> int:
        """How many bits are set."""
        return self._as_int().bit_count()

    def indices(self) -> list[int]:
        """The positions of the set bits, ascending."""
        number = self._as_int()
        return [index for index in range(self.length) if number >> index & 1]

    def with_bit(self, index: int, value: bool = True) -> Bitlist:
        if not 0 <= index < self.length:
            raise IndexError(f"bit {index} is outside a bitlist of {self.length}")
        number = self._as_int()
        number = number | (1 << index) if value else number & ~(1 << index)
        return self._from_int(number, self.length)

    def extended(self, length: int) -> Bitlist:
        """This bitlist grown with zero bits to ``length`` (never shrinks)."""
        if length < self.length:
            raise ValueError(f"cannot shrink a bitlist from {self.length} to {length}")
        return Bitlist(length, self.data + bytes((length + 7) // 8 - len(self.data)))

    def union(self, other: Bitlist) -> Bitlist:
        """Bitwise OR of two bitlists of the same length."""
        if other.length != self.length:
            raise ValueError(f"lengths differ: {self.length} and {other.length}")
        return self._from_int(self._as_int() | other._as_int(), self.length)

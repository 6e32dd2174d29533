"""The immutable Bitlist value."""

from __future__ import annotations

import pytest

from lean_p2p.containers import Bitlist


def test_from_bools_round_trips() -> None:
    bits = [True, False, True, True, False, False, False, False, True]
    bitlist = Bitlist.from_bools(bits)
    assert list(bitlist) == bits
    assert len(bitlist) == 9
    assert bitlist.data == bytes([0b00001101, 0b00000001])
    assert bitlist.count() == 4
    assert bitlist.indices() == [0, 2, 3, 8]


def test_updates_return_new_values() -> None:
    empty = Bitlist.zeros(10)
    one = empty.with_bit(7)
    assert not empty[7]
    assert one[7]
    assert one.with_bit(7, False) == empty
    assert one.extended(20)[7]
    assert len(one.extended(20)) == 20
    assert one.union(Bitlist.from_indices(10, [1])).indices() == [1, 7]


def test_negative_index_reads_from_the_end() -> None:
    assert Bitlist.from_indices(5, [4])[-1]


@pytest.mark.parametrize(
    ("length", "data"),
    [(-1, b""), (3, b""), (3, b"\x00\x00"), (3, b"\x08")],
    ids=["negative", "too-short", "too-long", "bit-past-length"],
)
def test_inconsistent_values_are_refused(length: int, data: bytes) -> None:
    with pytest.raises(ValueError):
        Bitlist(length, data)


def test_out_of_range_bits_raise_index_error() -> None:
    bitlist = Bitlist.zeros(4)
    with pytest.raises(IndexError):
        bitlist[4]
    with pytest.raises(IndexError):
        bitlist.with_bit(4)
    with pytest.raises(IndexError):
        Bitlist.from_indices(4, [9])
    with pytest.raises(ValueError):
        bitlist.extended(2)
    with pytest.raises(ValueError):
        bitlist.union(Bitlist.zeros(5))

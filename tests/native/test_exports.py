"""The public names of lean_p2p.native: each exists and comes from its module."""

from __future__ import annotations

from lean_p2p import native
from lean_p2p.native import callback, library, records, ring


def test_every_exported_name_exists_and_all_is_sorted() -> None:
    for name in native.__all__:
        assert getattr(native, name) is not None, name
    assert native.__all__ == sorted(native.__all__, key=lambda name: (not name.isupper(), name))


def test_the_names_come_from_their_modules() -> None:
    assert native.NativeRing is ring.NativeRing
    assert native.mailbox_sink is ring.mailbox_sink
    assert native.RouteTable is records.RouteTable
    assert native.record_decoder is records.record_decoder
    assert native.CallbackBridge is callback.CallbackBridge
    assert native.availability is library.availability


def test_every_native_module_lists_its_public_names() -> None:
    for module in (callback, library, records, ring):
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.{name}"

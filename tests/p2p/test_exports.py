"""The p2p package's public API: every exported name exists and is the real object."""

from __future__ import annotations

from lean_p2p import p2p
from lean_p2p.p2p import (
    backoff,
    chain,
    core,
    deadlines,
    fetch,
    logs,
    peers,
    serve,
    shell,
    sync,
)


def test_every_exported_name_exists_and_all_is_sorted() -> None:
    for name in p2p.__all__:
        assert getattr(p2p, name) is not None, name
    assert p2p.__all__ == sorted(p2p.__all__, key=lambda name: (not name[0].isupper(), name))


def test_the_contract_names_come_from_their_modules() -> None:
    assert p2p.P2PCore is core.P2PCore
    assert p2p.P2PActor is shell.P2PActor
    assert p2p.ChainReader is chain.ChainReader
    assert p2p.FetchRoots is chain.FetchRoots


def test_every_module_lists_its_public_names() -> None:
    modules = (
        backoff,
        chain,
        core,
        deadlines,
        fetch,
        logs,
        peers,
        serve,
        shell,
        sync,
    )
    for module in modules:
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.{name}"

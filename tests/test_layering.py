"""Folders are thread boundaries: check the import graph keeps them apart.

The loop-thread packages (runtime, consensus, p2p) and the any-thread packages (wire,
containers, net) must not import the trio/py-libp2p world: only the driver (its own
thread) and the node (the composition) do. That is also why an embedder who brings a
native networking stack pays nothing at run time for py-libp2p.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

INDEPENDENT_OF_THE_NETWORK_STACK = [
    "lean_p2p.runtime",
    "lean_p2p.wire",
    "lean_p2p.containers",
    "lean_p2p.net",
    "lean_p2p.consensus",
    "lean_p2p.p2p",
]
NETWORK_STACK_MODULES = ("libp2p", "trio", "aioquic")


@pytest.mark.parametrize("package", INDEPENDENT_OF_THE_NETWORK_STACK)
def test_package_does_not_import_the_network_stack(package: str) -> None:
    probe = (
        "import importlib, json, pkgutil, sys\n"
        f"package = importlib.import_module({package!r})\n"
        "for info in pkgutil.walk_packages(package.__path__, package.__name__ + '.'):\n"
        "    importlib.import_module(info.name)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        f"{NETWORK_STACK_MODULES!r})))\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    assert json.loads(completed.stdout) == []

"""The node's curated public API, and the embedding example the docs point to."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import lean_p2p.node
import lean_p2p.node.testing

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "embed_node.py"


def test_every_exported_name_exists() -> None:
    for module in (lean_p2p.node, lean_p2p.node.testing):
        for name in module.__all__:
            assert getattr(module, name) is not None, f"{module.__name__}.{name}"


def test_importing_the_node_does_not_start_the_network_stack() -> None:
    probe = (
        "import sys, lean_p2p.node, lean_p2p.node.testing\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('libp2p', 'trio')))\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    assert completed.stdout.strip() == "[]"


def test_embedding_example_runs() -> None:
    completed = subprocess.run(
        [sys.executable, str(EXAMPLE)], capture_output=True, text=True, timeout=120, check=True
    )
    match = re.search(r"head slot (\d+), justified (\d+), finalized (\d+)", completed.stdout)
    assert match is not None, completed.stdout
    head, justified, finalized = map(int, match.groups())
    assert head == 8
    assert 0 < finalized < justified < head
    assert "lost 0" in completed.stdout

"""Compiling C test drivers at test time (gcc, into a temporary directory).

Runs on the test's main thread.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[2]
BINDINGS = REPOSITORY / "bindings"
HEADER = BINDINGS / "lean_p2p.h"
RING_SOURCE = BINDINGS / "lean_p2p_ring.c"
PRODUCERS_SOURCE = BINDINGS / "testing" / "lean_p2p_producers.c"

WARNINGS = ["-Wall", "-Wextra", "-Werror"]


def running_in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require_compiler() -> str:
    """The C compiler, or skip (fail under CI, where one must be present)."""
    compiler = os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc")
    if compiler is None:
        message = "no C compiler (gcc) found: the native tests compile C drivers"
        if running_in_ci():
            pytest.fail(message)
        pytest.skip(message)
    return compiler


def compile_c(
    sources: Sequence[Path],
    output: Path,
    *,
    shared: bool,
    extra: Sequence[str] = (),
) -> Path:
    """Compile ``sources`` against lean_p2p.h into ``output``; fails the test loudly."""
    command = [
        require_compiler(),
        "-std=c11",
        "-O2",
        "-pthread",
        *WARNINGS,
        f"-I{BINDINGS}",
        *(["-shared", "-fPIC"] if shared else []),
        *(str(source) for source in sources),
        "-o",
        str(output),
        *extra,
    ]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    if completed.returncode != 0:
        pytest.fail(f"compiling {output.name} failed:\n{' '.join(command)}\n{completed.stderr}")
    return output

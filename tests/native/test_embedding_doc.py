"""docs/embedding-native.md's minimal C stack and Python wiring, compiled and run as
written: the embedder page cannot drift from what works.

Runs on the test's main thread; the example runs in a child process.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.native.cbuild import REPOSITORY, compile_c

DOC = REPOSITORY / "docs" / "embedding-native.md"


def _block(language: str, index: int = 0) -> str:
    blocks = re.findall(rf"```{language}\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
    return str(blocks[index])


def test_the_documented_example_compiles_runs_and_prints_what_the_page_says(
    tmp_path: Path,
) -> None:
    source = tmp_path / "example_stack.c"
    source.write_text(_block("c"))
    compile_c([source], tmp_path / "libexample_stack.so", shared=True)
    script = tmp_path / "wire.py"
    script.write_text(_block("python"))
    completed = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=os.environ.copy(),
    )
    assert completed.returncode == 0, completed.stderr
    documented_output = re.search(r"It prints:\n\n```\n(.*?)```", DOC.read_text(), re.DOTALL)
    assert documented_output is not None
    assert completed.stdout == documented_output.group(1)

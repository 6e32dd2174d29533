"""scripts/setup.sh as a newcomer meets it: its help, and a wrong option."""

from __future__ import annotations

import subprocess
from pathlib import Path

SETUP = Path(__file__).resolve().parents[2] / "scripts" / "setup.sh"


def test_help_prints_the_usage_and_nothing_of_the_script() -> None:
    done = subprocess.run(
        ["bash", str(SETUP), "--help"], capture_output=True, text=True, timeout=30, check=True
    )
    lines = done.stdout.splitlines()
    assert lines[0].startswith("Sets up a virtual environment")
    assert "bash scripts/setup.sh --setup-only  # set up only (CI uses this)" in done.stdout
    assert not any(line.startswith(("#", "set ")) for line in lines)


def test_an_unknown_option_is_a_usage_error() -> None:
    done = subprocess.run(
        ["bash", str(SETUP), "--no-such-option"],
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert "unknown option --no-such-option" in done.stderr

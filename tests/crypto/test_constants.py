"""The Poseidon parameters compiled into the XMSS library are leanSpec's: the committed
header is what scripts/gen_xmss_constants.py writes from leanSpec's source."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LEANSPEC = ROOT.parent / "shared" / "peers" / "leanspec"


def test_the_header_is_what_the_generator_writes_from_leanspec() -> None:
    if not (LEANSPEC / "src" / "lean_spec").is_dir():
        pytest.skip(f"no leanSpec tree at {LEANSPEC} to regenerate the constants from")
    written = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_xmss_constants.py"), str(LEANSPEC)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert written == (ROOT / "bindings" / "lean_p2p_xmss_constants.h").read_text()

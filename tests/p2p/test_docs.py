"""docs/p2p.md quotes the backoff constants: the page must say what the code does."""

from __future__ import annotations

import re
from pathlib import Path

from lean_p2p.p2p import backoff

PAGE = Path(__file__).resolve().parents[2] / "docs" / "p2p.md"
ROW = re.compile(r"^\| `([A-Z_]+)` \| ([0-9.]+) \|", re.MULTILINE)


def test_every_constant_in_the_docs_table_matches_the_code() -> None:
    documented = dict(ROW.findall(PAGE.read_text()))
    constants = {name for name in backoff.__all__ if name.isupper()}
    assert set(documented) == constants
    for name, value in documented.items():
        assert float(value) == getattr(backoff, name), name


def test_documented_retry_schedule_matches_the_code() -> None:
    schedule = ", ".join(
        f"{backoff.retry_delay(a):g}" for a in range(1, backoff.FETCH_MAX_ATTEMPTS)
    )
    assert f"Retry waits are therefore {schedule} s" in PAGE.read_text()

"""bench verify: the loop's wait while signatures are verified, per case, in one table."""

from __future__ import annotations

import json
from pathlib import Path

from lean_p2p.cli import main
from lean_p2p.containers.scheme import TEST_SCHEME
from lean_p2p.tools.bench.verify import measure_case


def test_each_case_verifies_what_it_says_and_measures_the_wait() -> None:
    none = measure_case("none", TEST_SCHEME, rate=500, seconds=0.3)
    workers = measure_case("workers", TEST_SCHEME, rate=500, workers=1, seconds=0.3)
    on_loop = measure_case("loop", TEST_SCHEME, rate=500, seconds=0.3)
    assert none.verified == 0
    assert workers.verified > 0 and on_loop.verified > 0
    for result in (none, workers, on_loop):
        assert result.lags and min(result.lags) >= 0


def test_the_command_writes_a_row_per_case(tmp_path: Path) -> None:
    out = tmp_path / "verify.json"
    arguments = ["bench", "verify", "--quick", "--scheme", "test", "--rate", "300"]
    assert main([*arguments, "--workers", "1", "--priorities", "nice", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())
    assert [row["case"] for row in rows] == ["none", "loop", "workers (1, nice)"]
    assert all(row["lag_p99_us"] > 0 and row["probes"] > 0 for row in rows)
    assert "p99_rise_us" not in rows[0] and "p99_rise_us" in rows[2]

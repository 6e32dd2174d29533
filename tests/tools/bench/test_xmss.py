"""bench xmss measures full verifications of valid signatures, in both schemes."""

from __future__ import annotations

import json
from pathlib import Path

from lean_p2p.cli import main
from lean_p2p.containers.scheme import TEST_SCHEME
from lean_p2p.tools.bench.xmss import measure_ours


def test_workers_report_a_positive_rate() -> None:
    assert measure_ours(TEST_SCHEME, workers=2, seconds=0.05) > 0


def test_the_command_writes_a_row_per_scheme_and_worker_count(tmp_path: Path) -> None:
    out = tmp_path / "rows" / "xmss.json"
    assert main(["bench", "xmss", "--quick", "--workers", "1", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())
    assert [(row["config"], row["workers"]) for row in rows] == [("test", 1), ("production", 1)]
    assert all(row["operation"] == "verify" and row["verify_per_s"] > 0 for row in rows)

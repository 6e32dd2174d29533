"""The catch-up report: its rows compare range sync with the parent walk it replaces."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lean_p2p.cli import main as cli_main
from lean_p2p.tools.bench.p2p import SCENARIOS, run_scenario


def test_parent_walk_needs_one_request_per_block_range_sync_one_per_1024() -> None:
    behind = 40
    walk = run_scenario("parent walk (baseline), clean", range(2), behind)
    ranged = run_scenario("range + batched by-root, clean", range(2), behind)
    assert walk["converged"] == ranged["converged"] == 2
    # The gossiped head arrives first; each parent is learned from its child.
    assert walk["block_requests_max"] == behind
    assert ranged["block_requests_max"] == 1
    assert ranged["catch_up_s_median"] < walk["catch_up_s_median"]


def test_main_prints_every_scenario_and_writes_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "catchup.json"
    assert cli_main(["bench", "p2p", "--seeds", "1", "--behind", "20", "--json", str(output)]) == 0
    printed = capsys.readouterr().out
    for name in SCENARIOS:
        assert name in printed
    rows = json.loads(output.read_text())
    assert [row["scenario"] for row in rows] == list(SCENARIOS)
    assert rows[0]["requests_vs_baseline"] == 1

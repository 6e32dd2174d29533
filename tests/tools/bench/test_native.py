"""``lean-p2p bench native`` end to end at a tiny size: every case carries all its
events through each path, and the JSON holds the cases and the side-by-side ratios.

Runs the benchmark on the test's main thread (it makes its own loops).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lean_p2p.cli import main
from lean_p2p.native import availability
from lean_p2p.native.records import record_decoder


@pytest.mark.skipif(not availability().startswith("available"), reason=availability())
def test_bench_native_runs_every_case_and_writes_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "native.json"
    exit_code = main(
        [
            "bench",
            "native",
            "--quick",
            "--events",
            "2000",
            "--producers",
            "2",
            "--paths",
            "ring,callback",
            "--rate",
            "2000",
            "--loop-states",
            "idle,busy",
            "--drain-events",
            "3000",
            "--max-seconds",
            "2",
            "--json",
            str(output),
        ]
    )
    assert exit_code == 0
    rows = json.loads(output.read_text())
    cases = [row for row in rows if row["table"] == "cases"]
    comparisons = [row for row in rows if row["table"] == "comparison"]
    assert {(row["path"], row["loop_state"]) for row in cases} == {
        ("ring", "idle"),
        ("callback", "idle"),
        ("ring", "busy"),
        ("callback", "busy"),
    }
    for row in cases:
        # The callback path can collapse while the loop is busy (its producers queue
        # for the GIL: tens of events/s on a loaded 2-core box), and the bench then
        # stops the case at --max-seconds and flags it. The ring never may.
        may_stop = row["path"] != "ring"
        assert row["handled"] == 2000 or (may_stop and row["stopped_early"])
        # 2000 events/s for the quick 0.5 s
        assert row["paced_handled"] == 1000 or (may_stop and row["paced_stopped_early"])
        assert row["push_p50_ns"] > 0
        assert row["latency_p99_us"] >= row["latency_p50_us"] > 0
        assert "environment" in row
    assert {(row["loop_state"], row["versus"]) for row in comparisons} == {
        ("idle", "callback"),
        ("busy", "callback"),
    }
    drains = [row for row in rows if row["table"] == "drain"]
    assert [row["handler"] for row in drains] == ["per_event", "batch"]
    for drain in drains:
        assert (drain["events"], drain["producers"], drain["repeats"]) == (3000, 8, 3)
        assert drain["decoder"] == record_decoder()
        assert drain["drain_ns_per_event_min"] <= drain["drain_ns_per_event"]
        assert drain["drain_events_per_s"] == pytest.approx(1e9 / drain["drain_ns_per_event"])
    output_text = capsys.readouterr().out
    assert "ring vs callback" in output_text
    assert "drain: loop-thread cost per ring event" in output_text


@pytest.mark.skipif(not availability().startswith("available"), reason=availability())
def test_bench_native_drain_table_can_be_skipped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "native.json"
    arguments = ["bench", "native", "--quick", "--events", "200", "--producers", "1"]
    arguments += ["--paths", "ring", "--loop-states", "idle", "--rate", "400"]
    assert main([*arguments, "--drain-events", "0", "--json", str(output)]) == 0
    assert not [row for row in json.loads(output.read_text()) if row["table"] == "drain"]
    assert "drain:" not in capsys.readouterr().out


def test_bench_native_rejects_unknown_paths_and_loop_states(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["bench", "native", "--paths", "ring,carrier-pigeon"]) == 2
    assert "unknown paths" in capsys.readouterr().out
    assert main(["bench", "native", "--loop-states", "idle,asleep"]) == 2
    assert "unknown loop states" in capsys.readouterr().out

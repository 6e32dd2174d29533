"""``lean-p2p stress`` end to end: exit code, table, JSON keys."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lean_p2p.cli import main


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_stress_command_reports_a_clean_run(
    loop: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "stress.json"
    arguments = ["stress", "--events", "20000", "--producers", "2", "--loop", loop]
    assert main([*arguments, "--json", str(output)]) == 0
    printed = capsys.readouterr().out
    assert "verdict OK" in printed
    (row,) = json.loads(output.read_text())
    for key in ("events", "lost", "duplicated", "reordered", "wrong_thread", "events_per_s"):
        assert key in row
    assert (row["events"], row["lost"], row["duplicated"], row["reordered"]) == (20_000, 0, 0, 0)
    assert row["loop"] == loop
    assert row["mailbox"]["lanes"]


def test_stress_command_races_close(tmp_path: Path) -> None:
    output = tmp_path / "stress.json"
    arguments = ["stress", "--events", "200000", "--producers", "4", "--close-after", "1000"]
    assert main([*arguments, "--loop", "asyncio", "--json", str(output)]) == 0
    (row,) = json.loads(output.read_text())
    assert 1_000 <= row["events"] < 200_000
    assert row["lost"] == 0


def test_stress_command_rejects_an_empty_run(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["stress", "--events", "0", "--producers", "1"]) == 2
    assert "at least one producer" in capsys.readouterr().out


def test_overload_mode_reports_bounded_accounted_lanes(tmp_path: Path) -> None:
    output = tmp_path / "overload.json"
    assert main(["stress", "--overload", "--loop", "asyncio", "--json", str(output)]) == 0
    (row,) = json.loads(output.read_text())
    assert row["ok"] and row["accounted"] and row["blocks_dropped"] == 0
    assert row["attestations_high_water"] <= row["attestations_capacity"] + 1

"""bench latency: every event's delay split into its wait for the loop and its queueing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lean_p2p.cli import main
from lean_p2p.tools.bench.latency import NATIVE_BURST, Case, measure_case
from lean_p2p.tools.stress import loop_factory


@pytest.mark.parametrize(
    ("kind", "burst", "handoff"),
    [
        ("python", 1, "mailbox"),
        ("python", 1, "call_soon"),
        ("native", 1, "mailbox"),
        ("native", 4, "mailbox"),
    ],
)
def test_each_events_delay_is_its_wait_plus_its_queueing(
    kind: str, burst: int, handoff: str
) -> None:
    case = Case("asyncio", kind, 2, 5_000, 1_000, burst=burst, handoff=handoff)
    result = measure_case(case, loop_factory("asyncio"))
    assert len(result.totals_ns) == 1_000
    for total, wait, queue in zip(result.totals_ns, result.waits_ns, result.queues_ns, strict=True):
        assert wait >= 0 and queue >= 0
        assert wait + queue == total
    row = result.row()
    assert row["producer_kind"] == kind and row["events"] == 1_000
    assert 0 < row["p50_us"] <= row["p99_us"] <= row["p999_us"] <= row["max_us"]
    assert 0 <= row["tail_gc_share"] <= 1


def test_a_lever_is_applied_for_its_case_only() -> None:
    import gc
    import sys

    interval = sys.getswitchinterval()
    measure_case(Case("asyncio", "python", 1, 5_000, 200, "switch-1ms"), loop_factory("asyncio"))
    measure_case(Case("asyncio", "python", 1, 5_000, 200, "gc-freeze"), loop_factory("asyncio"))
    assert sys.getswitchinterval() == interval
    assert gc.get_freeze_count() == 0


def test_the_command_writes_a_row_per_case(tmp_path: Path) -> None:
    out = tmp_path / "latency.json"
    arguments = ["bench", "latency", "--quick", "--loops", "asyncio", "--rates", "5000"]
    assert main([*arguments, "--events", "500", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())
    kinds = [(row["producer_kind"], row["producers"], row["burst"], row["handoff"]) for row in rows]
    assert kinds == [
        ("python", 1, 1, "mailbox"),
        ("python", 8, 1, "mailbox"),
        ("python", 8, 1, "call_soon"),
        ("native", 8, 1, "mailbox"),
        ("native", 8, NATIVE_BURST, "mailbox"),
    ]
    for row in rows:
        assert row["events"] == 500
        for key in ("variant", "loop", "rate", "p50_us", "p99_us", "p999_us", "tail_wait_us"):
            assert key in row


def test_without_the_native_build_the_native_cases_are_left_out_and_it_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LEAN_P2P_NATIVE_LIB", str(tmp_path / "missing.so"))
    output = tmp_path / "latency.json"
    arguments = ["bench", "latency", "--quick", "--loops", "asyncio", "--rates", "2000"]
    assert main([*arguments, "--events", "200", "--quiet", "--json", str(output)]) == 0
    assert "native producer cases are left out" in capsys.readouterr().out
    assert {row["producer_kind"] for row in json.loads(output.read_text())} == {"python"}

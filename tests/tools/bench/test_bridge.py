"""``lean-p2p bench bridge``: every variant runs, rows carry the contract keys."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from lean_p2p.cli import main
from lean_p2p.tools.bench.bridge import (
    DEFAULT_VARIANTS,
    VARIANTS,
    Case,
    Measurement,
    _row,
    interleaved,
    plan,
    ratios,
    run_case,
)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_each_variant_delivers_every_event(variant: str, loop: str) -> None:
    measurement = run_case(Case(variant, loop, producers=2, rate=None, events=5_000))
    assert not measurement.timed_out
    assert measurement.events == 5_000
    assert len(measurement.latencies_ns) == 5_000
    assert all(latency >= 0 for latency in measurement.latencies_ns)


def test_call_soon_counts_one_wakeup_per_event_and_the_mailbox_fewer() -> None:
    call_soon = run_case(Case("call_soon", "asyncio", 1, None, 2_000))
    mailbox = run_case(Case("mailbox", "asyncio", 1, None, 2_000))
    assert call_soon.wakeups == 2_000
    assert 1 <= mailbox.wakeups < 2_000


def test_a_paced_case_sends_every_event() -> None:
    measurement = run_case(Case("mailbox", "asyncio", 2, rate=20_000, events=2_000))
    assert measurement.events == 2_000


def test_quick_plan_covers_eight_producers_on_asyncio() -> None:
    args = argparse.Namespace(
        quick=True, producers=None, loops=["asyncio"], variants=["mailbox"], linger_us=None
    )
    cases = [case for case, _ in plan(args)]
    assert any(case.producers == 8 and case.loop == "asyncio" for case in cases)
    assert {case.rate for case in cases} == {None, 20_000, 100_000}


def test_ratios_compare_flat_out_rows_of_the_same_loop_and_producers() -> None:
    rows = [
        {
            "variant": "mailbox",
            "loop": "asyncio",
            "producers": 8,
            "rate": "max",
            "events_per_s": 10.0,
        },
        {"variant": "janus", "loop": "asyncio", "producers": 8, "rate": "max", "events_per_s": 2.0},
        {"variant": "janus", "loop": "asyncio", "producers": 8, "rate": "20k", "events_per_s": 1.0},
        {
            "variant": "mailbox-bracketed",
            "loop": "asyncio",
            "producers": 8,
            "rate": "max",
            "events_per_s": 4.0,
        },
    ]
    assert ratios(rows) == [
        {"loop": "asyncio", "producers": 8, "x_janus": 5.0, "x_mailbox_bracketed": 2.5}
    ]


def test_the_command_writes_rows_with_the_contract_keys(tmp_path: Path) -> None:
    output = tmp_path / "bridge.json"
    arguments = ["bench", "bridge", "--quick", "--loops", "asyncio", "--producers", "2"]
    assert main([*arguments, "--json", str(output)]) == 0
    everything = json.loads(output.read_text())
    rows = [row for row in everything if row.get("table") != "limit"]
    assert {row["variant"] for row in rows} == set(DEFAULT_VARIANTS)  # the default run
    for row in rows:
        for key in ("variant", "loop", "producers", "events_per_s", "p50_us", "p99_us"):
            assert key in row
        assert "wakeups_per_event" in row
    # The flat-out mailbox row beside one thread's limit, in the same run.
    (limit,) = [row for row in everything if row.get("table") == "limit"]
    flat_mailbox = next(row for row in rows if (row["variant"], row["rate"]) == ("mailbox", "max"))
    assert (limit["loop"], limit["producers"]) == ("asyncio", 2)
    assert limit["mailbox_events_per_s"] == flat_mailbox["events_per_s"]
    assert limit["mailbox_of_limit"] == pytest.approx(
        flat_mailbox["events_per_s"] / limit["limit_events_per_s"]
    )
    assert limit["put_drain_events_per_s"] > 0
    assert limit["put_drain_bracketed_events_per_s"] is None  # not asked for
    assert limit["limit_x_call_soon"] > 0


def test_the_bracketed_mailbox_runs_beside_the_default_one(tmp_path: Path) -> None:
    output = tmp_path / "bridge.json"
    arguments = ["bench", "bridge", "--quick", "--loops", "uvloop", "--producers", "2"]
    variants = ["--variants", "mailbox", "mailbox-bracketed"]
    assert main([*arguments, *variants, "--json", str(output)]) == 0
    everything = json.loads(output.read_text())
    flat = {row["variant"] for row in everything if row.get("rate") == "max"}
    assert flat == {"mailbox", "mailbox-bracketed"}
    (limit,) = [row for row in everything if row.get("table") == "limit"]
    assert limit["put_drain_bracketed_events_per_s"] > 0


def test_repeats_are_interleaved_across_variants() -> None:
    mailbox = Case("mailbox", "asyncio", 8, None, 10)
    janus = Case("janus", "asyncio", 8, None, 10)
    rate = Case("mailbox", "asyncio", 8, 20_000, 10)
    order = interleaved([(mailbox, 2), (janus, 2), (rate, 1)])
    assert order == [mailbox, janus, mailbox, janus, rate]


def test_the_linger_option_applies_to_mailbox_rows_only() -> None:
    args = argparse.Namespace(
        quick=True, producers=[8], loops=["asyncio"], variants=["mailbox", "janus"], linger_us=100.0
    )
    lingers = {(case.variant, case.linger_us) for case, _ in plan(args)}
    assert lingers == {("mailbox", 100.0), ("janus", None)}
    measurement = run_case(Case("mailbox", "asyncio", 2, 100_000, 5_000, linger_us=100.0))
    assert measurement.events == 5_000


def test_percentiles_are_taken_per_run_then_the_median() -> None:
    def measurement(latency_us: float) -> Measurement:
        latencies = tuple([int(latency_us * 1e3)] * 100)
        return Measurement(100, 1.0, latencies, 1, 0.0, 0.0, False)

    case = Case("mailbox", "asyncio", 1, 20_000, 100)
    row = _row(case, [measurement(10), measurement(20), measurement(5_000)])
    assert row["p99_us"] == 20  # the stalled run does not drag the median
    assert row["p99_us_worst_run"] == 5_000
    assert row["events_per_s"] == 100

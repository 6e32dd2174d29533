"""bench latency: every event's delay split into its wait for the loop and its queueing."""

from __future__ import annotations

import argparse
import json
import os
import threading
from pathlib import Path
from typing import Any

import pytest

from lean_p2p.cli import main
from lean_p2p.tools.bench.latency import (
    CLOCK_SAMPLE_EVERY,
    NATIVE_BURST,
    NATIVE_LINGER_S,
    PRODUCER_NICE,
    Case,
    LoopClock,
    Readings,
    measure_case,
    plan,
    split_wait,
)
from lean_p2p.tools.stress import loop_factory


@pytest.mark.parametrize(
    ("kind", "burst", "handoff", "phases"),
    [
        ("python", 1, "mailbox", "together"),
        ("python", 1, "call_soon", "together"),
        ("python", 2, "thread", "together"),
        ("native", 1, "mailbox", "together"),
        ("native", 4, "mailbox", "together"),
        ("native", 4, "mailbox", "staggered"),
        ("native", 4, "thread", "staggered"),
    ],
)
def test_each_events_delay_is_its_wait_plus_its_queueing(
    kind: str, burst: int, handoff: str, phases: str
) -> None:
    case = Case("asyncio", kind, 2, 5_000, 1_000, burst=burst, handoff=handoff, phases=phases)
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


def test_the_producers_nice_lever_lowers_the_producers_and_leaves_the_loop_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from lean_p2p.tools.native_producers import ProducerDriver

    nice_values: list[int] = []
    real_start = ProducerDriver.start

    def recording_start(self: ProducerDriver, *args: Any, **kwargs: Any) -> Any:
        nice_values.append(kwargs.get("nice", 0))
        return real_start(self, *args, **kwargs)

    monkeypatch.setattr(ProducerDriver, "start", recording_start)
    loop_thread = threading.get_native_id()  # measure_case runs the loop on this thread
    own = os.getpriority(os.PRIO_PROCESS, loop_thread)
    for lever in ("producers-nice", "default"):
        case = Case("asyncio", "native", 2, 5_000, 400, lever, burst=4)
        assert len(measure_case(case, loop_factory("asyncio")).totals_ns) == 400
    assert nice_values == [PRODUCER_NICE, 0]
    assert os.getpriority(os.PRIO_PROCESS, loop_thread) == own


def test_levers_add_the_native_cases_with_the_producers_below_the_loop() -> None:
    arguments = argparse.Namespace(
        quick=True, events=1_000, loops=["uvloop"], rates=[20_000], levers=True
    )
    levers = [(case.producer_kind, case.burst, case.phases, case.lever) for case in plan(arguments)]
    assert levers[-5:] == [
        ("python", 1, "together", "switch-1ms"),
        ("python", 1, "together", "gc-freeze"),
        ("native", 1, "together", "producers-nice"),
        ("native", NATIVE_BURST, "together", "producers-nice"),
        ("native", NATIVE_BURST, "staggered", "producers-nice"),
    ]


def test_the_linger_lever_keeps_the_mailbox_polling_for_its_case_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from lean_p2p.runtime import Mailbox

    lingers: list[float] = []
    real_init = Mailbox.__init__

    def recording_init(self: Mailbox, *args: object, **kwargs: object) -> None:
        lingers.append(kwargs.get("linger_s", 0.0))  # type: ignore[arg-type]
        real_init(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Mailbox, "__init__", recording_init)
    for lever in ("linger", "default"):
        case = Case("asyncio", "native", 2, 5_000, 400, lever, burst=4, phases="staggered")
        assert len(measure_case(case, loop_factory("asyncio")).totals_ns) == 400
    assert lingers == [NATIVE_LINGER_S, 0.0]


def test_the_command_writes_a_row_per_case(tmp_path: Path) -> None:
    out = tmp_path / "latency.json"
    arguments = ["bench", "latency", "--quick", "--loops", "asyncio", "--rates", "5000"]
    assert main([*arguments, "--events", "500", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())
    kinds = [
        (
            row["producer_kind"],
            row["producers"],
            row["burst"],
            row["phases"],
            row["handoff"],
            row["lever"],
        )
        for row in rows
    ]
    assert kinds == [
        ("python", 1, 1, "", "mailbox", "default"),
        ("python", 8, 1, "", "mailbox", "default"),
        ("python", 8, 1, "", "call_soon", "default"),
        ("python", 8, 1, "", "thread", "default"),
        ("native", 8, 1, "together", "mailbox", "default"),
        ("native", 8, NATIVE_BURST, "together", "mailbox", "default"),
        ("native", 8, NATIVE_BURST, "together", "mailbox", "linger"),
        ("native", 8, NATIVE_BURST, "together", "thread", "default"),
        ("native", 8, NATIVE_BURST, "staggered", "mailbox", "default"),
        ("native", 8, NATIVE_BURST, "staggered", "mailbox", "linger"),
        ("native", 8, NATIVE_BURST, "staggered", "thread", "default"),
    ]
    assert len({row["variant"] for row in rows}) == len(rows)  # the lever is in its name
    for row in rows:
        assert row["events"] == 500
        for key in ("variant", "loop", "rate", "p50_us", "p99_us", "p999_us", "tail_wait_us"):
            assert key in row
        # The loop thread's CPU share where the loop does the hand-off; none where a
        # thread of its own does (the floors), since the loop only waits there.
        if row["handoff"] == "thread":
            assert row["loop_cpu_pct"] is None
        else:
            assert 0 < row["loop_cpu_pct"] <= 100


def test_without_the_native_build_the_native_cases_are_left_out_and_it_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LEAN_P2P_NATIVE_LIB", str(tmp_path / "missing.so"))
    output = tmp_path / "latency.json"
    arguments = ["bench", "latency", "--quick", "--loops", "asyncio", "--rates", "2000"]
    assert main([*arguments, "--events", "200", "--quiet", "--json", str(output)]) == 0
    assert "native producer cases are left out" in capsys.readouterr().out
    assert {row["producer_kind"] for row in json.loads(output.read_text())} == {"python"}


def test_a_wait_is_split_into_running_waiting_for_a_core_and_waiting_for_the_gil() -> None:
    # 100 us of waiting: the loop thread ran 20 us and sat 30 us in the run queue;
    # the rest it slept, waiting for the GIL.
    assert split_wait(100_000, (1_000, 5_000), (21_000, 35_000)) == (20_000, 30_000, 50_000)
    # A run-queue wait counted from before the span is clipped to what is left of it.
    assert split_wait(100_000, (0, 0), (70_000, 90_000)) == (70_000, 30_000, 0)
    # Counters never go backwards; if they seem to, nothing is made up.
    assert split_wait(10_000, (5, 5), (0, 0)) == (0, 0, 10_000)


def test_the_loop_clock_reads_its_own_thread_from_another_thread() -> None:
    import threading
    import time

    clock = LoopClock.open()
    assert clock is not None  # Linux with schedstat: where this suite runs
    try:
        before = clock.read()
        spin_until = time.thread_time_ns() + 20_000_000
        while time.thread_time_ns() < spin_until:  # 20 ms of this thread's CPU time
            pass
        readings = Readings()
        reader = threading.Thread(target=readings.take, args=(1, clock))
        reader.start()
        reader.join()
        after = readings.get(1)
        assert after is not None and 1 in readings
        assert after[0] - before[0] >= 20_000_000  # this thread's clock, not the reader's
        assert after[1] >= before[1]
    finally:
        clock.close()


@pytest.mark.parametrize("handoff", ["mailbox", "call_soon", "thread"])
def test_producers_read_the_loops_clock_and_every_drain_that_ends_a_wait_has_its_reading(
    handoff: str,
) -> None:
    case = Case("asyncio", "python", 2, 5_000, 2_000, handoff=handoff)
    result = measure_case(case, loop_factory("asyncio"))
    # One event in CLOCK_SAMPLE_EVERY per producer, the first included. Two producers
    # may read the same nanosecond and share a key, hence "at most".
    sampled = 2 * -(-1_000 // CLOCK_SAMPLE_EVERY)
    assert sampled - 5 <= len(result.sent_readings.cpu_ns) <= sampled
    waited = [
        (stamp, wait)
        for stamp, wait in zip(result.stamps_ns, result.waits_ns, strict=True)
        if wait > 0 and (handoff != "call_soon" or stamp in result.sent_readings)
    ]
    assert waited
    for stamp, wait in waited:
        assert stamp + wait in result.drain_readings


def test_the_tail_split_uses_the_slowest_events_with_both_readings() -> None:
    from lean_p2p.tools.bench.latency import CaseResult

    result = CaseResult(Case("asyncio", "python", 1, 1_000, 1_000))
    for index in range(1_000):
        # The slowest 1 %, ten events, waited 500 us; the rest 10 us.
        stamp, wait = 1_000_000 * index, 10_000 + index if index < 990 else 500_000
        result.stamps_ns.append(stamp)
        result.waits_ns.append(wait)
        result.queues_ns.append(1_000)
        result.totals_ns.append(wait + 1_000)
        result.sent_readings.cpu_ns[stamp] = 0
        result.sent_readings.run_delay_ns[stamp] = 0
        result.drain_readings.cpu_ns[stamp + wait] = 100_000  # the loop ran 100 us
        result.drain_readings.run_delay_ns[stamp + wait] = 150_000  # queued 150 us
    row = result.row()
    # Each slow event waited 500 us: 100 running, 150 for a core, 250 for the GIL.
    assert (row["tail_busy_us"], row["tail_core_us"], row["tail_gil_us"]) == (100, 150, 250)
    result.sent_readings = Readings()  # no producer readings: no split, and none made up
    assert result.row()["tail_gil_us"] is None

"""The profiler's pieces and a short, unprofiled load run (time-bounded, no timing asserts)."""

from __future__ import annotations

from lean_p2p.tools.profile import ProfileOptions, hot_paths, run_profile

RAW = "\n".join(
    [
        "thread (0x10): MainThread;run (a.py:1);drain (m.py:5);handle (n.py:9) 6",
        "thread (0x10): MainThread;run (a.py:1);drain (m.py:7) 2",
        "thread (0x20): worker;spin (w.py:3) 50",
    ]
)


def test_hot_paths_reports_only_the_loop_thread_by_function() -> None:
    table = hot_paths(RAW, 0x10, expected_samples=16)
    assert "8 busy samples" in table
    assert "busy about 50%" in table
    assert "spin" not in table
    # Lines of one function merge into one row: drain has 2 own and 8 inclusive samples.
    assert "   25.0    100.0  drain (m.py)" in table
    assert "   75.0     75.0  handle (n.py)" in table


def test_hot_paths_without_samples() -> None:
    assert hot_paths(RAW, 0x99, expected_samples=10) == "no samples of the loop thread"


async def test_short_load_run_hands_every_event_to_the_node() -> None:
    options = ProfileOptions(rate=300.0, duration=2.0, validators=16, peers=2)
    result = await run_profile(options, profiled=False)
    assert result.lost_events == 0
    assert result.offered > 0
    assert result.handled >= result.offered - result.dropped
    lanes = {row["lane"]: row for row in result.lane_rows()}
    assert {"attestations", "peer_requests"} <= set(lanes)
    assert lanes["attestations"]["handoff_p50_us"] is not None
    assert result.summary_row()["events_per_s"] > 0


def test_mix_option_is_parsed_and_checked() -> None:
    import argparse

    import pytest

    from lean_p2p.cli.profile import _parse_mix

    assert _parse_mix("attestation=9,block=1") == {"attestation": 9, "block": 1}
    for bad in ("votes=3", "block=x", "block=0"):
        with pytest.raises(argparse.ArgumentTypeError):
            _parse_mix(bad)

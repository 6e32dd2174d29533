"""The gossip benchmark: like-for-like payloads, honest aggregation, and a real run."""

from __future__ import annotations

import argparse
import io
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from lean_p2p.cli.bench import gossip as gossip_command
from lean_p2p.containers import PRODUCTION_SCHEME, using_signature_scheme
from lean_p2p.driver import codec
from lean_p2p.tools.bench import gossip


@pytest.mark.parametrize("kind", ["attestation", "block", "block-500k", "block-2m"])
def test_stock_carries_the_lean_wire_size(kind: str) -> None:
    with using_signature_scheme(PRODUCTION_SCHEME):
        lean_size = len(codec.encode_gossip(gossip._LeanSender._message(kind, 3, 12345)))
        stock_size = len(gossip._stock_payload(kind, 3, 12345))
    # Snappy output varies by a few bytes with the stamped values; stock gets the
    # size of the first lean message.
    assert abs(stock_size - lean_size) <= lean_size // 100
    expected = {
        "attestation": (2_400, 2_800),
        "block": (99_000, 101_000),
        "block-500k": (495_000, 501_000),
        "block-2m": (1_750_000, 2_001_000),  # its votes' repeated checkpoints compress
    }[kind]
    assert expected[0] <= lean_size <= expected[1]


def test_lean_messages_are_distinct_and_stamped() -> None:
    with using_signature_scheme(PRODUCTION_SCHEME):
        first = gossip._LeanSender._message("attestation", 1, 111)
        second = gossip._LeanSender._message("attestation", 2, 222)
        block = gossip._LeanSender._message("block", 5, 333)
    assert first != second
    assert (first.validator_index, first.data.slot) == (1, 111)
    assert (block.block.slot, block.block.proposer_index) == (6, 333)


def _run_row(variant: str, rate: float, lost: int) -> dict[str, Any]:
    return {
        "variant": variant, "kind": "attestation", "phase": "throughput", "size_bytes": 2568,
        "messages": 100, "messages_per_s": rate, "p50_ms": rate / 100, "p99_ms": rate / 10,
        "lost": lost, "duplicates": 0,
    }  # fmt: skip


def test_medians_and_ratios_over_repetitions() -> None:
    runs = [_run_row("lean", r, 0) for r in (900.0, 1500.0, 1000.0)]
    runs += [_run_row("stock", r, lost) for r, lost in ((300.0, 1), (500.0, 0), (400.0, 2))]
    rows = {row["variant"]: row for row in gossip._medians(runs)}
    assert rows["lean"]["messages_per_s"] == 1000.0
    assert rows["stock"]["messages_per_s"] == 400.0
    assert rows["stock"]["lost"] == 3  # every lost message is counted, not averaged away
    assert rows["lean"]["runs"] == 3
    [ratio] = gossip._ratios(list(rows.values()))
    assert ratio["baseline"] == "stock"
    assert ratio["lean_over_baseline"] == 2.5


def test_a_hand_off_is_its_wait_plus_its_queueing_and_the_tail_says_which() -> None:
    recorder = gossip._Recorder(io.StringIO())
    now = time.monotonic_ns()
    # Emitted long before its drain began: waited; emitted during the drain: queued.
    recorder.handoff(now - 5_000_000, now - 1_000)
    recorder.handoff(now - 2_000, now - 3_000)
    for total, wait, queue in zip(
        recorder.handoffs_us, recorder.waits_us, recorder.queues_us, strict=True
    ):
        assert wait >= 0 and queue >= 0
        assert wait + queue == pytest.approx(total)
    assert recorder.waits_us[0] == pytest.approx(4_999, abs=1)
    assert recorder.waits_us[1] == 0
    result = recorder.result()
    assert result["handoff_tail_wait_us"] == pytest.approx(4_999, abs=1)
    assert result["gc_pauses"] == 0


def test_a_hand_off_with_the_loops_clock_splits_its_wait_into_busy_core_and_gil() -> None:
    recorder = gossip._Recorder(io.StringIO())
    now = time.monotonic_ns()
    # Waited 1 ms: the loop ran 100 us, sat 300 us in the run queue, slept 600 us.
    recorder.handoff(now - 1_000_000, now, (0, 0), (100_000, 300_000))
    recorder.handoff(now - 2_000, now - 3_000, (0, 0), (0, 0))  # queued, no wait to split
    recorder.handoff(now - 1_500, now - 1_000)  # no readings: no split
    assert recorder.wait_parts_us == [(100.0, 300.0, 600.0), None, None]
    result = recorder.result()
    assert result["handoff_tail_busy_us"] == 100.0
    assert result["handoff_tail_core_us"] == 300.0
    assert result["handoff_tail_gil_us"] == 600.0


@pytest.mark.slow
@pytest.mark.network
@pytest.mark.parametrize("dialer", ["sender", "receiver"])
def test_quick_run_delivers_everything_and_writes_json(tmp_path: Path, dialer: str) -> None:
    parser = argparse.ArgumentParser()
    gossip_command.configure(parser)
    output = tmp_path / "gossip.json"
    arguments = ["--quick", "--repeats", "1", "--variants", "lean", "--dialer", dialer]
    args = parser.parse_args([*arguments, "--json", str(output)])
    assert gossip_command.run(args) == 0
    rows = json.loads(output.read_text())
    assert {(row["kind"], row["phase"]) for row in rows} == {
        ("attestation", "throughput"), ("attestation", "latency"),
        ("attestation", "latency-1k"), ("block", "throughput"), ("block", "latency"),
        ("block-500k", "throughput"), ("block-500k", "latency"),
        ("block-2m", "throughput"), ("block-2m", "latency"), ("status", "round_trips"),
    }  # fmt: skip
    for row in rows:
        assert row["variant"] == "lean" and row["dialer"] == dialer
        assert row["lost"] == 0 and row["duplicates"] == 0
        assert row["messages_per_s"] > 0
        assert {"size_bytes", "p50_ms", "p99_ms"} <= row.keys()
        if row["kind"] != "status":  # gossip: the hand-off into the loop is measured
            assert 0 < row["handoff_p50_us"] <= row["handoff_p99_us"]


@pytest.mark.network
def test_the_signed_variant_counts_only_verified_attestations(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    gossip_command.configure(parser)
    output = tmp_path / "gossip.json"
    arguments = ["--quick", "--repeats", "1", "--variants", "lean-signed"]
    assert gossip_command.run(parser.parse_args([*arguments, "--json", str(output)])) == 0
    [row] = json.loads(output.read_text())
    assert (row["variant"], row["kind"], row["phase"]) == (
        "lean-signed",
        "attestation",
        "throughput",
    )
    assert row["lost"] == 0 and row["duplicates"] == 0 and row["messages_per_s"] > 0


def test_the_signed_pool_verifies_and_a_changed_vote_does_not() -> None:
    from dataclasses import replace

    from lean_p2p.consensus.hashing import attestation_data_root
    from lean_p2p.containers import PRODUCTION_SCHEME
    from lean_p2p.crypto import verify

    pool = gossip._signed_pool()
    assert len(pool) == gossip._SIGNED_POOL
    for key, vote in pool[:3]:
        data = vote.data
        root = attestation_data_root(data)
        assert verify(key, data.slot, root, vote.signature, PRODUCTION_SCHEME).valid
        other = attestation_data_root(replace(data, slot=data.slot + 1))
        assert not verify(key, data.slot, other, vote.signature, PRODUCTION_SCHEME).valid


def test_each_variant_run_reports_progress(capsys: pytest.CaptureFixture[str]) -> None:
    runs = [
        {"kind": "attestation", "phase": "throughput", "messages_per_s": 4408.2},
        {"kind": "attestation", "phase": "latency", "messages_per_s": 100.1},
        {"kind": "status", "phase": "round_trips", "messages_per_s": 267.4},
    ]
    gossip._progress(1, 3, "lean", runs, 41.6)
    assert capsys.readouterr().err == (
        "[2/3] lean: attestation throughput 4,408/s, status round_trips 267/s (42 s)\n"
    )


class _Replies:
    def __init__(self) -> None:
        self.documents: list[dict[str, object]] = []

    def reply(self, document: dict[str, object]) -> None:
        self.documents.append(document)


def test_a_receiver_dials_on_command_and_says_so() -> None:
    import trio

    dialed: list[str] = []
    replies = _Replies()
    address = "/ip4/127.0.0.1/udp/9000/quic-v1/p2p/16Uiu2HAm"
    keep_going = trio.run(
        gossip._receiver_command, f"dial {address}\n", replies, trio.sleep, dialed.append
    )
    assert keep_going and dialed == [address]
    assert replies.documents == [{"dialing": address}]


def test_a_receiver_that_cannot_dial_refuses_the_command() -> None:
    import trio

    with pytest.raises(RuntimeError, match="cannot dial"):
        trio.run(gossip._receiver_command, "dial /ip4/127.0.0.1\n", _Replies(), trio.sleep)


def test_sender_nice_lowers_the_sender_and_tells_receivers_what_to_restore(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[int] = []
    monkeypatch.setattr(os, "getpriority", lambda _which, _who: 0)
    monkeypatch.setattr(os, "setpriority", lambda _which, _who, value: calls.append(value))
    monkeypatch.delenv(gossip._RECEIVER_NICE_ENV, raising=False)
    assert gossip._lower_the_sender(10) is None
    assert calls == [-1, 0, 10]  # the right to raise checked first, then lowered
    assert os.environ[gossip._RECEIVER_NICE_ENV] == "0"


def test_sender_nice_without_the_right_to_raise_a_priority_says_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(_which: int, _who: int, _value: int) -> None:
        raise PermissionError("not permitted")

    monkeypatch.setattr(os, "getpriority", lambda _which, _who: 0)
    monkeypatch.setattr(os, "setpriority", refuse)
    monkeypatch.delenv(gossip._RECEIVER_NICE_ENV, raising=False)
    problem = gossip._lower_the_sender(10)
    assert problem is not None and "CAP_SYS_NICE" in problem
    assert gossip._RECEIVER_NICE_ENV not in os.environ


@pytest.mark.parametrize("value", ["-1", "20", "ten"])
def test_sender_nice_out_of_range_is_refused_by_the_parser(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = argparse.ArgumentParser()
    gossip_command.configure(parser)
    with pytest.raises(SystemExit):
        parser.parse_args(["--sender-nice", value])
    assert "--sender-nice" in capsys.readouterr().err

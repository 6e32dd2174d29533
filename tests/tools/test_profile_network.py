"""Profiling over real sockets: the saturation rule, the verdict, and whole runs.

The whole runs are real: a load generator process (a lean node on QUIC loopback), the
node under test in this process, py-spy, and the report opened in headless Chromium.
Their assertions are about structure and about a bottleneck built on purpose (a handler
that burns the loop), never about how fast this machine is.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from lean_p2p.node.config import GenesisSpec, NodeConfig
from lean_p2p.node.node import Node
from lean_p2p.node.sampling import LaneCounts, Window
from lean_p2p.runtime.lanes import ATTESTATIONS, BLOCKS
from lean_p2p.tools.flamegraph import parse_collapsed
from lean_p2p.tools.profile_network import (
    FrameRecorder,
    LoadGenerator,
    NetworkProfile,
    NetworkProfileOptions,
    bottleneck_and_verdict,
    deliberately_slow_handler,
    judge_step,
    profile_node,
    recorder,
    wait_until_flowing,
)
from lean_p2p.tools.profile_report import PLOTS, write_report
from lean_p2p.wire.keys import NodeKey

OPTIONS = NetworkProfileOptions()


def _window(
    *, accepted: int, handled: int, full: int = 0, delay_s: float = 0.001, seconds: float = 1.0
) -> Window:
    window = Window("test", seconds=seconds)
    window.lanes[ATTESTATIONS] = LaneCounts(accepted, handled, full, 0)
    window.delays[ATTESTATIONS] = [delay_s] * 100
    window.cpu_seconds = {"loop": 0.3 * seconds, "driver:x": 0.6 * seconds}
    return window


def _report(sent: int) -> dict[str, Any]:
    return {
        "sent": {"attestation": sent},
        "not_ready": 0,
        "publish_failed": 0,
        "answered": 0,
        "request_failed": 0,
        "disconnects": 0,
        "cpu_pct": 80.0,
    }


def _judge(rate: float, window: Window, sent: int) -> Any:
    return judge_step(
        OPTIONS,
        index=1,
        phase="ramp",
        rate=rate,
        window=window,
        before=_report(0),
        after=_report(sent),
    )


def test_a_step_that_keeps_up_is_not_saturated() -> None:
    step = _judge(1000, _window(accepted=1000, handled=1000), sent=1000)
    assert not step.saturated
    assert not step.generator_bound
    assert step.reasons == []
    assert step.handled_rate == 1000


@pytest.mark.parametrize(
    ("window", "reason"),
    [
        (_window(accepted=1000, handled=1000, delay_s=0.2), "delay p99 200 ms > 100 ms"),
        (_window(accepted=1000, handled=980, full=20), "dropped 2.0% of arrivals"),
        (_window(accepted=800, handled=800), "handled 80% of what was sent"),
    ],
)
def test_each_saturation_rule(window: Window, reason: str) -> None:
    step = _judge(1000, window, sent=1000)
    assert step.saturated
    assert step.reasons == [reason]


def test_a_generator_short_of_the_rate_is_named_and_is_not_a_saturation() -> None:
    step = _judge(1000, _window(accepted=500, handled=500), sent=500)
    assert step.generator_bound
    assert not step.saturated
    assert step.reasons == ["the generator sent 500/s of 1,000/s asked"]


def test_the_verdict_names_the_rate_the_reasons_and_the_busiest_thread() -> None:
    result = NetworkProfile(OPTIONS)
    good = _judge(1000, _window(accepted=1000, handled=1000), sent=1000)
    bad = _judge(2000, _window(accepted=1500, handled=1500, seconds=1.0), sent=2000)
    bad.index = 2
    result.steps = [good, bad]
    result.saturation_rate = 1000
    result.first_saturated_rate = 2000
    bottleneck_and_verdict(result)
    assert result.verdict.startswith("Saturates above 1,000 events/s offered")
    assert "at 2,000/s: handled 75% of what was sent" in result.verdict
    assert "The most it handled in a step: 1,500/s." in result.verdict
    assert result.capacity == 1500
    assert "Bottleneck: the driver:x thread (60% of a core at 2,000/s)" in result.verdict
    assert result.bottleneck["thread"] == "driver:x"


def test_an_unsaturated_run_says_so() -> None:
    result = NetworkProfile(OPTIONS)
    result.steps = [_judge(1000, _window(accepted=1000, handled=1000), sent=1000)]
    bottleneck_and_verdict(result)
    assert result.verdict.startswith("Not saturated up to 1,000 events/s")


async def test_a_generator_that_dies_is_reported_with_its_last_words(tmp_path: Path) -> None:
    log = tmp_path / "loadgen.log"
    with log.open("wb") as errors:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            "import sys; sys.stderr.write('no such genesis'); sys.exit(3)",
            stdout=asyncio.subprocess.PIPE,
            stderr=errors,
        )
    with pytest.raises(RuntimeError, match="exited with code 3:\nno such genesis"):
        await LoadGenerator._read(process, 30.0, log)


@pytest.mark.parametrize(
    "arguments",
    [
        ["--rate", "-5"],
        ["--step-seconds", "0"],
        ["--factor", "1"],
        ["--sampler", "perf"],
        ["--mix", "votes=3"],
    ],
)
def test_bad_profile_options_are_refused_in_one_line(
    arguments: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    from lean_p2p.cli import build_parser

    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["profile", "--network", *arguments])
    assert exit_info.value.code == 2
    assert "error: argument" in capsys.readouterr().err


def test_asking_for_py_spy_where_it_is_missing_is_refused_in_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from lean_p2p import cli
    from lean_p2p.tools import profile

    monkeypatch.setattr(profile, "py_spy_path", lambda: None)
    code = cli.main(["profile", "--network", "--sampler", "py-spy", "--out", str(tmp_path)])
    assert code == 2
    assert "py-spy is not installed" in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == []  # refused before any work


def _spin_until(stop: threading.Event) -> None:
    while not stop.is_set():
        sum(range(200))


async def test_the_frame_sampler_records_every_thread_as_py_spy_would(tmp_path: Path) -> None:
    sampler = FrameRecorder(200, 30.0, tmp_path)
    stop = threading.Event()
    worker = threading.Thread(target=_spin_until, args=(stop,), name="busy")
    worker.start()
    try:
        await sampler.start()
        while sampler.samples < 20:  # noqa: ASYNC110 - the sampler thread's progress
            await asyncio.sleep(0.01)
        raw, error = await sampler.finish()
    finally:
        stop.set()
        worker.join()
    assert error is None
    assert (tmp_path / "flame.raw.txt").read_text() == raw
    stacks = parse_collapsed(raw)
    busy = [stack for stack in stacks if stack.thread_name == "busy"]
    assert busy and busy[0].thread_id == worker.native_id
    assert any(stack.frames[-1].startswith("_spin_until (") for stack in busy)
    assert busy[0].frames[0].startswith("Thread._bootstrap (threading.py:")
    # paths as py-spy prints them: relative to where the module was imported from
    assert any(s.frames[-1].startswith("_spin_until (tests/tools/") for s in busy)
    assert not any(stack.thread_name == "frame-sampler" for stack in stacks)
    assert recorder("frames", 100, 1.0, tmp_path).name == "frames"
    assert recorder("py-spy", 100, 1.0, tmp_path).name == "py-spy"


def _browser() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _rendered_figures(page: Path, profile_dir: Path) -> dict[str, str]:
    """Open ``page`` in headless Chromium; each figure's rendered size, by name."""
    browser = _browser()
    if browser is None:
        if os.environ.get("CI"):
            pytest.fail("Chromium is missing: .ci/run installs it (Debian package chromium)")
        pytest.skip("no Chromium here (CI installs it): the page is not opened")
    dom = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile_dir}",
            "--virtual-time-budget=5000",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert 'data-checked="yes"' in dom, "the page's check script did not run"
    return dict(re.findall(r'data-plot="(\w+)" data-rendered="(\d+x\d+)"', dom))


async def test_an_embedded_node_with_a_slow_handler_is_found_out(tmp_path: Path) -> None:
    """An embedder's own node, a generator beside it, one step at a rate its deliberately
    slow attestation handling cannot take: the verdict must name the loop thread and
    the slow function, as the flame graph shows it; the report renders every plot."""
    options = NetworkProfileOptions(
        rate=800.0, step_seconds=3.0, validators=64, overhead=False, mix={"attestation": 1}
    )
    genesis_time = int(time.time()) + 3
    generator = await LoadGenerator.start(genesis_time, 64, tmp_path / "loadgen.log")
    try:
        config = NodeConfig(
            name="embedded",
            key=NodeKey.generate(),
            genesis=GenesisSpec.placeholder(genesis_time, 64),
            bootnodes=(generator.address,),
        )
        # 2 ms per attestation: at most 500 a second, below the 800 offered. Slow only
        # while profiled: the close then drains the backlog at the node's own pace.
        slowing = threading.Event()
        slowing.set()
        node = Node(config, serve_api=False, on_handled=deliberately_slow_handler(2000, slowing))
        async with node:
            await wait_until_flowing(node)
            result = await profile_node(node, generator, options, out=tmp_path)
            slowing.clear()
        assert node.report().lost_events == 0
    finally:
        await generator.stop()
    (step, flame) = result.steps
    assert step.phase == "fixed"
    assert step.saturated, step.reasons
    assert flame.phase == "flame"
    assert result.flame.get("error") is None, result.flame
    assert result.bottleneck["thread"] == "loop", result.verdict
    top = result.bottleneck["top_functions"][0]["function"]
    assert ".slow_attestation_handling (" in top, result.verdict
    assert "slow_attestation_handling" in result.verdict
    # The flame graph agrees: the loop thread's widest own frame is the slow handler.
    stacks = parse_collapsed((tmp_path / "flame.raw.txt").read_text())
    assert any(s.frames and "slow_attestation_handling" in s.frames[-1] for s in stacks)

    page = write_report(result, tmp_path, "test")
    for name in ("report.html", "profile.json", "flame.svg", "flame.speedscope.json"):
        assert (tmp_path / name).stat().st_size > 0, name
    document = json.loads((tmp_path / "profile.json").read_text())
    assert document["verdict"] == result.verdict
    assert [row["phase"] for row in document["steps"]] == ["fixed", "flame"]
    rendered = _rendered_figures(page, tmp_path / "browser")
    assert set(rendered) == set(PLOTS)
    for name, size in rendered.items():
        width, height = (int(v) for v in size.split("x"))
        assert width > 100 and height > 30, (name, size)


def test_the_command_runs_a_short_fixed_rate_profile(tmp_path: Path) -> None:
    out = tmp_path / "out"
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "lean_p2p.cli",
            "profile",
            "--network",
            "--rate",
            "300",
            "--step-seconds",
            "2",
            "--no-flame",
            "--out",
            str(out),
            "--json",
            str(tmp_path / "rows.json"),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "report: " in completed.stdout
    rows = json.loads((tmp_path / "rows.json").read_text())
    assert rows[0]["phase"] == "fixed"
    assert rows[-1]["summary"] is True
    assert rows[-1]["lost_events"] == 0
    assert (out / "report.html").exists()
    assert BLOCKS in json.loads((out / "profile.json").read_text())["steps"][0]["window"]["lanes"]

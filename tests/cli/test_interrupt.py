"""Ctrl-C on every long-running command, as a user presses it: a subprocess per command.

Each test starts the command in a session of its own, waits for a line that shows the
run is under way (a settled state, never a sleep), sends SIGINT to the command's
process alone, and expects: exit code 130, one line saying it was interrupted, the
partial summary where the command has one, no traceback, and no process of the
session left behind. The time bounds below only keep a hung command from hanging the
suite; the 5-second target is measured by hand, not asserted.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from lean_p2p.node.config import write_devnet
from lean_p2p.tools.devnet import free_ports

#: a bound for a hung command, far above what a healthy one takes
HANG_GUARD_S = 120.0


@dataclass
class Command:
    process: subprocess.Popen[str]
    stdout: list[str] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)
    lines: queue.Queue[tuple[str, str]] = field(default_factory=queue.Queue)
    ended_streams: int = 0

    def wait_for(self, stream: str, predicate: Callable[[str], bool]) -> str:
        """The first line on ``stream`` (stdout or stderr) that satisfies ``predicate``."""
        deadline = time.monotonic() + HANG_GUARD_S
        while True:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no such line; stdout={self.stdout} stderr={self.stderr}"
            try:
                name, line = self.lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if name == "eof":
                self.ended_streams += 1
                assert self.ended_streams < 2, (
                    f"the command ended first: code {self.process.wait()}, "
                    f"stdout={self.stdout} stderr={self.stderr}"
                )
            elif name == stream and predicate(line):
                return line

    def interrupt(self) -> None:
        self.process.send_signal(signal.SIGINT)

    def finish(self) -> int:
        code = self.process.wait(HANG_GUARD_S)
        self.close()
        return code

    def close(self) -> None:
        for reader in self._readers:
            reader.join(HANG_GUARD_S)
        for pipe in (self.process.stdout, self.process.stderr):
            if pipe is not None:
                pipe.close()

    _readers: list[threading.Thread] = field(default_factory=list)


def _read(command: Command, name: str, pipe: Sequence[str]) -> None:
    sink = command.stdout if name == "stdout" else command.stderr
    for line in pipe:
        sink.append(line.rstrip("\n"))
        command.lines.put((name, line.rstrip("\n")))
    command.lines.put(("eof", name))


def start(arguments: Sequence[str], cwd: Path) -> Command:
    env = {**os.environ, "LEAN_P2P_PROGRESS": "1", "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "lean_p2p.cli", *arguments],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=cwd,
        start_new_session=True,  # its own session: what it leaves behind is findable
    )
    command = Command(process)
    assert process.stdout is not None and process.stderr is not None
    for name, pipe in (("stdout", process.stdout), ("stderr", process.stderr)):
        reader = threading.Thread(target=_read, args=(command, name, pipe), daemon=True)
        reader.start()
        command._readers.append(reader)
    return command


def _session_members(session: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # it ended while we looked
        # after the command name: state, ppid, pgrp, session, ...
        if int(fields[3]) == session and fields[0] != "Z":
            members.append(int(entry.name))
    return members


def assert_nothing_left(command: Command) -> None:
    session = command.process.pid
    deadline = time.monotonic() + HANG_GUARD_S
    while (left := _session_members(session)) and time.monotonic() < deadline:
        time.sleep(0.1)  # children reaped by their parent's exit take a moment to go
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert left == [], "processes of the command's session outlived it"


def assert_clean_interrupt(command: Command, code: int) -> None:
    assert code == 130, (command.stdout, command.stderr)
    text = "\n".join(command.stdout + command.stderr)
    assert "Traceback" not in text, text
    assert command.stderr[-1].startswith("lean-p2p "), command.stderr
    assert "interrupted" in command.stderr[-1]
    assert_nothing_left(command)


def interrupt_cleanly(command: Command) -> None:
    """Ctrl-C the command, let it finish, and check that it ended as it should."""
    command.interrupt()
    assert_clean_interrupt(command, command.finish())


@pytest.fixture
def cleanup() -> Iterator[Callable[[Command], Command]]:
    started: list[Command] = []

    def track(command: Command) -> Command:
        started.append(command)
        return command

    yield track
    for command in started:
        if command.process.poll() is None:
            os.killpg(command.process.pid, signal.SIGKILL)
            command.process.wait()
        command.close()


@pytest.mark.network
def test_stress_stops_and_prints_the_partial_result(
    tmp_path: Path, cleanup: Callable[[Command], Command]
) -> None:
    command = cleanup(start(["stress", "--events", "100000000", "--producers", "4"], tmp_path))
    command.wait_for("stderr", lambda line: line.startswith("stress: "))
    interrupt_cleanly(command)
    out = "\n".join(command.stdout)
    assert "interrupted: the mailbox was closed under the producers" in out
    assert "verdict OK" in out  # what was accepted before the stop was handled once


@pytest.mark.network
def test_devnet_stops_its_nodes_and_prints_the_partial_summary(
    tmp_path: Path, cleanup: Callable[[Command], Command]
) -> None:
    arguments = ["devnet", "--nodes", "2", "--validators", "2", "--duration", "600"]
    command = cleanup(start([*arguments, "--genesis-delay", "4", "--dir", "net"], tmp_path))
    # every node answers its API: each has started and handles SIGTERM in order
    command.wait_for("stdout", lambda line: line.startswith("t=") and "  up=2  " in line)
    interrupt_cleanly(command)
    summary = [line for line in command.stdout if line.startswith("summary: ")]
    assert len(summary) == 1
    assert '"interrupted": true' in summary[0]
    # every node was stopped in order and wrote its final report
    assert len(list((tmp_path / "net").glob("*.report.json"))) == 2


@pytest.mark.network
def test_a_scenario_stops_its_nodes_and_its_relays_and_judges_what_ran(
    tmp_path: Path, cleanup: Callable[[Command], Command]
) -> None:
    scenario = tmp_path / "split.yaml"
    scenario.write_text(
        "description: a split that Ctrl-C ends\nnodes: 2\nslots: 150\nsignatures: mocked\n"
        "events: [{slot: 1, partition: [[0], [1]]}]\nexpect: {one_head: true}\n"
    )
    arguments = ["devnet", "--scenario", str(scenario), "--genesis-delay", "4", "--dir", "net"]
    command = cleanup(start([*arguments, "--json", "out/split.json"], tmp_path))
    # both nodes answer their API: each has started and handles SIGTERM in order
    command.wait_for("stdout", lambda line: line.startswith("t=") and "down" not in line)
    interrupt_cleanly(command)
    summary = json.loads((tmp_path / "out" / "split.json").read_text())
    assert summary["interrupted"] is True
    assert {check["check"] for check in summary["checks"]} >= {"no_crashes", "one_head"}
    assert len(list((tmp_path / "net").glob("*.report.json"))) == 2
    assert (tmp_path / "net" / "split.svg").exists()


def test_devnet_stops_its_key_generation_at_once(
    tmp_path: Path, cleanup: Callable[[Command], Command]
) -> None:
    # A production key is a minute of C: Ctrl-C must not wait for it.
    arguments = ["devnet", "--nodes", "1", "--validators", "1", "--scheme", "production"]
    command = cleanup(start([*arguments, "--dir", "net"], tmp_path))
    command.wait_for("stdout", lambda line: "generating 2 production XMSS keys" in line)
    interrupted_at = time.monotonic()
    interrupt_cleanly(command)
    assert time.monotonic() - interrupted_at < 30  # a key takes about 60 s here
    summary = [line for line in command.stdout if line.startswith("summary: ")]
    assert len(summary) == 1 and '"interrupted": true' in summary[0]
    assert not list((tmp_path / "net").glob("*.report.json"))  # no node was started


@pytest.mark.network
def test_a_second_ctrl_c_exits_at_once_and_kills_the_nodes(
    tmp_path: Path, cleanup: Callable[[Command], Command]
) -> None:
    arguments = ["devnet", "--nodes", "2", "--validators", "2", "--duration", "600"]
    command = cleanup(start([*arguments, "--genesis-delay", "4"], tmp_path))
    # every node answers its API: each has started and handles SIGTERM in order
    command.wait_for("stdout", lambda line: line.startswith("t=") and "  up=2  " in line)
    command.interrupt()
    command.wait_for("stderr", lambda line: line.startswith("interrupted: stopping"))
    command.interrupt()
    code = command.finish()
    assert code == 130
    text = "\n".join(command.stdout + command.stderr)
    assert "Traceback" not in text
    # The ordered stop may have finished before the second signal arrived; either way
    # the command ends with 130 and nothing of it is left running.
    assert "interrupted again: exiting now" in text or "interrupted" in command.stderr[-1]
    assert_nothing_left(command)


@pytest.mark.network
def test_node_stops_in_order_with_its_summary_line(
    tmp_path: Path, cleanup: Callable[[Command], Command]
) -> None:
    entries = write_devnet(
        tmp_path / "net",
        nodes=1,
        validators=1,
        genesis_time=int(time.time()) + 2,
        quic_ports=free_ports(1, socket.SOCK_DGRAM),
        api_ports=free_ports(1, socket.SOCK_STREAM),
    )
    command = cleanup(start(["node", "--devnet", "net", "--name", entries[0].name], tmp_path))
    command.wait_for("stdout", lambda line: line.startswith(f"node {entries[0].name} peer_id="))
    interrupt_cleanly(command)
    assert command.stdout[-1].startswith(f"node {entries[0].name} stopped: head=")


@pytest.mark.network
def test_profile_is_cancelled_cleanly(
    tmp_path: Path, cleanup: Callable[[Command], Command]
) -> None:
    # 600 s a run: the first is still under way whenever the signal lands
    arguments = ["profile", "--duration", "600", "--rate", "500", "--profiler", "pyinstrument"]
    arguments += ["--out", "out"]
    command = cleanup(start(arguments, tmp_path))
    command.wait_for("stderr", lambda line: line.startswith("profile: run 1 of 2"))
    interrupt_cleanly(command)


@pytest.mark.network
def test_profile_network_stops_its_generator_and_writes_the_partial_report(
    tmp_path: Path, cleanup: Callable[[Command], Command]
) -> None:
    arguments = ["profile", "--network", "--start-rate", "300", "--step-seconds", "30"]
    command = cleanup(start([*arguments, "--out", "out"], tmp_path))
    # a step's progress line: the generator is up and loading the node
    command.wait_for("stderr", lambda line: line.startswith("profile: step 1/"))
    interrupt_cleanly(command)
    out = "\n".join(command.stdout)
    assert "Interrupted: partial." in out
    assert (tmp_path / "out" / "report.html").exists()
    assert json.loads((tmp_path / "out" / "profile.json").read_text())["interrupted"] is True


@pytest.mark.network
def test_bench_gossip_stops_its_receiver_process(
    tmp_path: Path, cleanup: Callable[[Command], Command]
) -> None:
    # 50 repetitions: the run is far from its end when the first one reports
    arguments = ["bench", "gossip", "--quick", "--variants", "lean", "--repeats", "50"]
    command = cleanup(start(arguments, tmp_path))
    command.wait_for("stderr", lambda line: line.startswith("[1/"))
    interrupt_cleanly(command)


def test_bench_verify_stops_its_workers_and_probe(
    tmp_path: Path, cleanup: Callable[[Command], Command]
) -> None:
    # 100 s a case: far from its end when the first case reports progress
    arguments = ["bench", "verify", "--seconds", "100", "--repeats", "1", "--scheme", "test"]
    command = cleanup(start(arguments, tmp_path))
    command.wait_for("stderr", lambda line: "repeat 1/1" in line)
    interrupt_cleanly(command)


def test_spectest_is_interrupted_while_it_reads_a_vector_file(
    tmp_path: Path, cleanup: Callable[[Command], Command]
) -> None:
    # The first file holds one vector; the second is a FIFO that nobody writes, so the
    # run is certainly still reading it when the signal lands.
    directory = tmp_path / "fixtures" / "ssz" / "lstar"
    directory.mkdir(parents=True)
    vector = {
        "leanEnv": "test",
        "typeName": "Uint16",
        "value": "258",
        "serialized": "0x0201",
        "root": "0x" + "0201" + "00" * 30,
    }
    (directory / "a.json").write_text(json.dumps({"one": vector}))
    os.mkfifo(directory / "b.json")
    command = cleanup(start(["spectest", "fixtures", "--format", "ssz"], tmp_path))
    command.wait_for("stderr", lambda line: line == "spectest: ssz: 1 vectors")
    interrupt_cleanly(command)


@pytest.mark.slow
@pytest.mark.network
def test_soak_stops_its_nodes_and_prints_the_partial_verdict(
    tmp_path: Path, cleanup: Callable[[Command], Command]
) -> None:
    command = cleanup(start(["soak", "--duration", "600", "--dir", "net"], tmp_path))
    # its first sample: every node has started and serves its API
    command.wait_for("stdout", lambda line: " up=4 " in line)
    interrupt_cleanly(command)
    assert '"interrupted": true' in "\n".join(command.stdout)


def test_crashtest_ends_after_the_kill_in_hand_with_its_partial_table(
    tmp_path: Path, cleanup: Callable[[Command], Command]
) -> None:
    arguments = ["crashtest", "--kills", "1000", "--slots", "60", "--dir", str(tmp_path / "w")]
    command = cleanup(start(arguments, tmp_path))
    command.wait_for("stderr", lambda line: line.startswith("crashtest: kill 1/"))
    interrupt_cleanly(command)
    assert any(line.startswith("clean restarts") for line in command.stdout)


def test_bench_storage_stops_its_writer_and_probe(
    tmp_path: Path, cleanup: Callable[[Command], Command]
) -> None:
    arguments = ["bench", "storage", "--repeats", "50", "--slots", "100", "--dir", str(tmp_path)]
    command = cleanup(start(arguments, tmp_path))
    command.wait_for("stderr", lambda line: "repeat 1/50: loop" in line)
    interrupt_cleanly(command)


def test_bench_latency_stops_its_producers(
    tmp_path: Path, cleanup: Callable[[Command], Command]
) -> None:
    arguments = ["bench", "latency", "--repeats", "50", "--rates", "5000", "--loops", "asyncio"]
    arguments += ["--events", "3000"]
    command = cleanup(start(arguments, tmp_path))
    command.wait_for("stderr", lambda line: "case 2/" in line)
    interrupt_cleanly(command)


def test_bench_bridge_finishes_the_case_in_hand_and_prints_what_was_measured(
    tmp_path: Path, cleanup: Callable[[Command], Command]
) -> None:
    arguments = ["bench", "bridge", "--quick", "--loops", "asyncio", "--producers", "1"]
    command = cleanup(start(arguments, tmp_path))
    command.wait_for("stdout", lambda line: "events/s" in line)  # a case has finished
    interrupt_cleanly(command)
    assert any("bench bridge (all rows)" in line for line in command.stdout)


def test_bench_native_stops_in_a_busy_loop_case_without_a_traceback(
    tmp_path: Path, cleanup: Callable[[Command], Command]
) -> None:
    """The interrupt lands in the task that keeps the loop busy, which then holds it as
    its exception: when that task is freed, asyncio must not print it as an error."""
    arguments = ["bench", "native", "--paths", "ring", "--loop-states", "busy"]
    command = cleanup(
        start([*arguments, "--producers", "8", "--events", "100000000", "--repeat", "1"], tmp_path)
    )
    command.wait_for("stderr", lambda line: "case 1 of" in line)
    interrupt_cleanly(command)


@pytest.mark.stress
def test_stress_with_native_producers_stops_and_loses_nothing(
    tmp_path: Path, cleanup: Callable[[Command], Command]
) -> None:
    """The native producers' default path (the ring's one-call drain into a lane they
    share with Python producers): the ring closes before the mailbox, so every push
    it accepted is handled."""
    arguments = ["stress", "--events", "100000000", "--producers", "4", "--native", "4"]
    command = cleanup(start(arguments, tmp_path))
    command.wait_for("stderr", lambda line: line.startswith("stress: "))
    interrupt_cleanly(command)
    out = "\n".join(command.stdout)
    assert "interrupted: the mailbox was closed under the producers" in out
    assert "verdict OK" in out

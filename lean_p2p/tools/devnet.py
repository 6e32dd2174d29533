"""A local devnet: N node processes on loopback, live progress, a JSON summary.

Runs on the command's loop (main thread of the ``lean-p2p devnet`` process); the nodes
are separate processes (``lean-p2p node``), each with its own loop and driver thread, so
they share nothing but sockets. Progress comes from each node's HTTP API
(``/lean_p2p/v0/report``), polled once a second; the final numbers come from the report
each node writes after its ordered shutdown (so ``lost_events`` is measured after every
mailbox closed and drained).

Summary keys: ``finalized_slot`` and ``justified_slot`` (lowest over nodes at the end),
``head_agreement`` (every node reported, and their head slots differ by at most one),
``lost_events`` (events accepted by a mailbox and never handled, summed over nodes),
plus the finalization history sampled each second and per-node reports.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from lean_p2p.consensus.config import INTERVALS_PER_SLOT, MILLISECONDS_PER_INTERVAL
from lean_p2p.containers import PRODUCTION_SCHEME
from lean_p2p.containers.scheme import SCHEMES
from lean_p2p.crypto import KeyGenerationStopped
from lean_p2p.node.config import NodeEntry, write_devnet
from lean_p2p.node.keys import generate_validator_keys, write_keystore
from lean_p2p.tools.running import INTERRUPTS

__all__ = [
    "DevnetOptions",
    "DevnetProcess",
    "check_signing_options",
    "devnet_failures",
    "devnet_succeeded",
    "finality_cadence",
    "free_ports",
    "kill_all",
    "poll_report",
    "read_report",
    "run_devnet",
    "stop_all",
]

_STOP_TIMEOUT = 60.0


@dataclass(frozen=True, slots=True)
class DevnetOptions:
    nodes: int = 4
    validators: int = 4
    duration: float = 60.0  # seconds after genesis
    directory: Path | None = None
    genesis_delay: float = 12.0  # time for the processes to start before genesis
    record: bool = False
    log_level: str = "WARNING"
    extra_node_args: tuple[str, ...] = ()
    #: "real": every validator signs with XMSS keys generated for the devnet (and every
    #: node verifies); "mocked": placeholder signatures, as the test vectors have
    signatures: str = "real"
    scheme: str = "test"  # the XMSS parameter set of real signatures
    seed: bytes | None = None  # the validators' keys; None: a fresh one


@dataclass
class DevnetProcess:
    entry: NodeEntry
    directory: Path
    process: subprocess.Popen[bytes] | None = None
    reports: list[dict[str, Any]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.entry.name

    @property
    def report_path(self) -> Path:
        return self.directory / f"{self.name}.report.json"

    @property
    def log_path(self) -> Path:
        return self.directory / f"{self.name}.log"

    def command(self, options: DevnetOptions) -> list[str]:
        command = [
            sys.executable,
            "-m",
            "lean_p2p.cli",
            "node",
            "--devnet",
            str(self.directory),
            "--name",
            self.name,
            "--report-json",
            str(self.report_path),
            "--log-level",
            options.log_level,
            *options.extra_node_args,
        ]
        if options.record:
            command += ["--record", str(self.directory / f"{self.name}.rec")]
        return command

    def start(self, options: DevnetOptions) -> None:
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                self.command(options), stdout=log, stderr=subprocess.STDOUT
            )

    def signal(self, signum: int) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signum)


def devnet_slots(duration: float) -> int:
    """The slots a devnet of ``duration`` seconds after genesis reaches (and one more)."""
    return int(duration * 1000 // (MILLISECONDS_PER_INTERVAL * INTERVALS_PER_SLOT)) + 2


def check_signing_options(options: DevnetOptions) -> str | None:
    """Why the options cannot run, in one line; None if they can."""
    if options.signatures not in ("real", "mocked"):
        return f"signatures must be 'real' or 'mocked', not {options.signatures!r}"
    if options.scheme not in SCHEMES:
        return f"scheme must be one of {sorted(SCHEMES)}, not {options.scheme!r}"
    lifetime = 1 << SCHEMES[options.scheme].log_lifetime
    if options.signatures == "real" and devnet_slots(options.duration) > lifetime:
        return (
            f"a {options.scheme}-scheme key signs {lifetime} slots, fewer than "
            f"{options.duration:.0f}s of devnet reach: shorten it or use --scheme production"
        )
    return None


def _make_keystore(
    options: DevnetOptions,
    directory: Path,
    show: Callable[[str], None],
    halt: threading.Event,
) -> list[tuple[bytes, bytes]]:
    """Generate and write every validator's keys (a worker thread: key generation is
    CPU work, and a production key takes about a minute)."""
    scheme = SCHEMES[options.scheme]
    started = time.monotonic()

    def progress(done: int, total: int) -> None:
        if scheme is PRODUCTION_SCHEME or done == total:
            show(
                f"devnet: {done}/{total} {scheme.name} XMSS keys in "
                f"{time.monotonic() - started:.1f}s"
            )

    show(f"devnet: generating {2 * options.validators} {scheme.name} XMSS keys")
    keys = generate_validator_keys(
        options.validators,
        seed=options.seed if options.seed is not None else os.urandom(32),
        scheme=scheme,
        num_active_slots=devnet_slots(options.duration),
        progress=progress,
        should_stop=halt.is_set,
    )
    write_keystore(directory, keys)
    return [validator.public_keys for validator in keys]


async def _relay_stop(stop: asyncio.Event, halt: threading.Event) -> None:
    await stop.wait()
    halt.set()


def free_ports(count: int, kind: int) -> list[int]:
    """``count`` distinct ports the OS reports free now (``kind``: SOCK_DGRAM/STREAM)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, kind)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


async def poll_report(session: aiohttp.ClientSession, port: int | None) -> dict[str, Any] | None:
    if port is None:
        return None
    try:
        async with session.get(
            f"http://127.0.0.1:{port}/lean_p2p/v0/report", timeout=aiohttp.ClientTimeout(2)
        ) as response:
            if response.status != 200:
                return None
            report: dict[str, Any] = await response.json()
            return report
    except (aiohttp.ClientError, TimeoutError, json.JSONDecodeError):
        return None


def _progress_row(
    elapsed: float, reports: Sequence[dict[str, Any] | None], events_per_second: float
) -> dict[str, Any]:
    live = [report for report in reports if report is not None]
    if not live:
        return {"t": round(elapsed, 1), "up": 0}
    return {
        "t": round(elapsed, 1),
        "up": len(live),
        "slot": max(r["current_slot"] for r in live),
        "head": f"{min(r['head_slot'] for r in live)}-{max(r['head_slot'] for r in live)}",
        "justified": min(r["justified_slot"] for r in live),
        "finalized": min(r["finalized_slot"] for r in live),
        "peers": min(r["peers"] for r in live),
        "events/s": round(events_per_second),
        "drops": sum(r["dropped"] for r in live),
    }


_PROGRESS_COLUMNS = (
    "t",
    "up",
    "slot",
    "head",
    "justified",
    "finalized",
    "peers",
    "events/s",
    "drops",
)


def _format_progress(row: dict[str, Any]) -> str:
    return "  ".join(f"{column}={row.get(column, '-')}" for column in _PROGRESS_COLUMNS)


async def run_devnet(
    options: DevnetOptions,
    show: Callable[[str], None] = print,
    stop: asyncio.Event | None = None,
) -> dict[str, Any]:
    """Run the devnet to its end, or until ``stop`` is set (the summary then says
    ``interrupted``); either way every node is stopped in order and reports."""
    directory = options.directory or Path(tempfile.mkdtemp(prefix="lean-p2p-devnet-"))
    stop = stop if stop is not None else asyncio.Event()
    validator_keys = None
    if options.signatures == "real":
        # Key generation runs in a worker thread; Ctrl-C (``stop``) halts it within a
        # fraction of a second, and the run ends there.
        halt = threading.Event()
        relay = asyncio.ensure_future(_relay_stop(stop, halt))
        try:
            validator_keys = await asyncio.to_thread(_make_keystore, options, directory, show, halt)
        except KeyGenerationStopped:
            summary = _summary(
                options,
                processes=[],
                exit_codes=[],
                history=[],
                directory=directory,
                genesis_time=0,
            )
            summary["interrupted"] = True
            return summary
        finally:
            relay.cancel()
    genesis_time = int(time.time() + options.genesis_delay)
    entries = write_devnet(
        directory,
        nodes=options.nodes,
        validators=options.validators,
        genesis_time=genesis_time,
        quic_ports=free_ports(options.nodes, socket.SOCK_DGRAM),
        api_ports=free_ports(options.nodes, socket.SOCK_STREAM),
        validator_keys=validator_keys,
    )
    processes = [DevnetProcess(entry, directory) for entry in entries]
    signing = f"{options.scheme} XMSS keys" if options.signatures == "real" else "mocked signatures"
    show(
        f"devnet: {options.nodes} nodes, {options.validators} validators ({signing}), "
        f"genesis in {genesis_time - time.time():.0f}s, running {options.duration:.0f}s "
        f"after genesis, files in {directory}"
    )
    history: list[dict[str, Any]] = []
    # A second Ctrl-C exits at once: the node processes must not outlive us then.
    with INTERRUPTS.cleanup_on_exit(lambda: kill_all(processes)):
        for process in processes:
            process.start(options)
        try:
            history = await _watch(
                processes, genesis_time + options.duration, genesis_time, show, stop
            )
        finally:
            exit_codes = await stop_all(processes)
    summary = _summary(
        options,
        processes=processes,
        exit_codes=exit_codes,
        history=history,
        directory=directory,
        genesis_time=genesis_time,
    )
    summary["interrupted"] = stop.is_set()
    return summary


async def _watch(
    processes: Sequence[DevnetProcess],
    end_time: float,
    genesis_time: float,
    show: Callable[[str], None],
    stop: asyncio.Event,
) -> list[dict[str, Any]]:
    history: list[dict[str, Any]] = []
    previous_handled: int | None = None
    previous_time = time.monotonic()
    async with aiohttp.ClientSession() as session:
        while time.time() < end_time:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
            if stop.is_set():
                show("devnet: interrupted; stopping the nodes")
                break
            if any(p.process is not None and p.process.poll() is not None for p in processes):
                show("devnet: a node process exited early; stopping")
                break
            reports = await asyncio.gather(
                *(poll_report(session, process.entry.api_port) for process in processes)
            )
            now = time.monotonic()
            handled = sum(report["handled"] for report in reports if report is not None)
            rate = 0.0
            if previous_handled is not None and now > previous_time:
                rate = max(0, handled - previous_handled) / (now - previous_time)
            previous_handled, previous_time = handled, now
            row = _progress_row(time.time() - genesis_time, reports, rate)
            history.append(row)
            show(_format_progress(row))
    return history


async def stop_all(processes: Sequence[DevnetProcess]) -> list[int | None]:
    for process in processes:
        process.signal(signal.SIGTERM)
    deadline = time.monotonic() + _STOP_TIMEOUT
    codes: list[int | None] = []
    for process in processes:
        popen = process.process
        if popen is None:
            codes.append(None)
            continue
        # Wait in a worker thread: Popen.wait blocks, and the loop must not.
        with contextlib.suppress(subprocess.TimeoutExpired):
            await asyncio.to_thread(popen.wait, max(0.1, deadline - time.monotonic()))
        if popen.poll() is None:
            popen.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                popen.wait(timeout=10)
        codes.append(popen.returncode)
    return codes


def kill_all(processes: Sequence[DevnetProcess]) -> None:
    """SIGKILL every node process still running (the exit-at-once path)."""
    for process in processes:
        process.signal(signal.SIGKILL)


def read_report(path: Path) -> dict[str, Any] | None:
    try:
        report: dict[str, Any] = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return report


def _summary(
    options: DevnetOptions,
    *,
    processes: Sequence[DevnetProcess],
    exit_codes: Sequence[int | None],
    history: Sequence[dict[str, Any]],
    directory: Path,
    genesis_time: float,
) -> dict[str, Any]:
    reports = [read_report(process.report_path) for process in processes]
    complete = [report for report in reports if report is not None]
    all_reported = len(complete) == len(processes)
    heads = [report["head_slot"] for report in complete]
    finalized_over_time = [(row["t"], row["finalized"]) for row in history if "finalized" in row]
    advances, longest_gap = finality_cadence(finalized_over_time)
    return {
        "nodes": options.nodes,
        "validators": options.validators,
        "duration_s": options.duration,
        "genesis_time": genesis_time,
        "finalized_slot": min((r["finalized_slot"] for r in complete), default=0),
        "justified_slot": min((r["justified_slot"] for r in complete), default=0),
        "head_slot": max(heads, default=0),
        "head_agreement": all_reported and bool(heads) and max(heads) - min(heads) <= 1,
        "finalized_roots_agree": all_reported
        and len({(r["finalized_slot"], r["finalized_root"]) for r in complete}) == 1,
        "lost_events": sum(r["lost_events"] for r in complete),
        "dropped_events": sum(r["dropped"] for r in complete),
        "handled_events": sum(r["handled"] for r in complete),
        "handler_errors": sum(r["handler_errors"] for r in complete),
        "exit_codes": list(exit_codes),
        "finality_advances": advances,
        #: longest wait between two advances of the (lowest) finalized slot, after the
        #: first one: "finalization advances every few slots" is this staying small
        "longest_finality_gap_s": longest_gap,
        "finalized_history": finalized_over_time,
        "directory": str(directory),
        "node_reports": complete,
    }


def finality_cadence(history: Sequence[tuple[float, int]]) -> tuple[int, float | None]:
    """How often the finalized slot advanced, and the longest gap (s) after the first."""
    advances = 0
    longest: float | None = None
    previous_slot: int | None = None
    last_advance: float | None = None
    for elapsed, slot in history:
        if previous_slot is not None and slot > previous_slot:
            advances += 1
            if last_advance is not None:
                gap = elapsed - last_advance
                longest = gap if longest is None else max(longest, gap)
            last_advance = elapsed
        previous_slot = slot
    return advances, longest


def devnet_failures(summary: dict[str, Any]) -> list[str]:
    """Why a devnet run did not succeed, one reason a line; empty when it did."""
    reasons: list[str] = []
    reported = len(summary["node_reports"])
    if reported < summary["nodes"]:
        reasons.append(
            f"{summary['nodes'] - reported} of {summary['nodes']} nodes wrote no final report "
            f"(their logs are in {summary['directory']})"
        )
    if summary["finalized_slot"] <= 0:
        reasons.append(
            f"nothing was finalized (justified slot {summary['justified_slot']}, head slot "
            f"{summary['head_slot']}): run longer (--duration), or see the node logs"
        )
    if not summary["head_agreement"]:
        reasons.append("the nodes' heads differ by more than one slot")
    if summary["lost_events"]:
        reasons.append(f"{summary['lost_events']} accepted events were lost")
    failed = [f"{index} ({code})" for index, code in enumerate(summary["exit_codes"]) if code != 0]
    if failed:
        reasons.append("node processes exited uncleanly: " + ", ".join(failed))
    return reasons


def devnet_succeeded(summary: dict[str, Any]) -> bool:
    return not devnet_failures(summary)

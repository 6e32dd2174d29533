"""Soak test: a 4-node devnet under faults for minutes (``lean-p2p soak``, ``scripts/soak.sh``).

Main thread of the soak process drives the timeline; the nodes are separate processes
(as in :mod:`lean_p2p.tools.devnet`). A chaos peer — the py-libp2p driver on its own trio
thread, in this process — connects to every node and publishes malformed gossip.

Timeline (fractions of ``--duration``):

- 0.20: node 3 is killed (SIGKILL), restarted ``--restart-delay`` seconds (20) later
  from the same files; it must catch up from its peers (gossip, parked blocks fetched
  by root, range sync).
- 0.40: node 2 is partitioned (SIGSTOP) for 30 s, then healed (SIGCONT).
- 0.60 to 0.70: the chaos peer publishes malformed gossip (not snappy, oversized
  declared length, a payload of the wrong type) on every topic, several per second.

Pass: every node reports at the end; all agree on the finalized checkpoint; heads
within one slot; finality advanced during the last quarter; no node lost an event in
its final run; every process's resident memory stayed under ``--max-rss-mb`` and grew
by less than ``--max-growth-pct`` over the second half (sampled every 5 s).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from lean_p2p.node.config import NodeEntry, write_devnet
from lean_p2p.node.sampling import process_rss_bytes
from lean_p2p.tools.devnet import (
    DevnetOptions,
    DevnetProcess,
    free_ports,
    kill_all,
    poll_report,
    read_report,
    stop_all,
)
from lean_p2p.tools.running import INTERRUPTS

__all__ = ["run_soak"]

_SAMPLE_EVERY = 5.0


def _rss_mb(pid: int) -> float | None:
    rss = process_rss_bytes(pid)
    return None if rss is None else rss / 2**20


class ChaosPeer:
    """A libp2p peer that publishes malformed gossip (test tooling, soak only)."""

    def __init__(self) -> None:
        from lean_p2p.driver.config import DriverConfig
        from lean_p2p.driver.driver import NetworkDriver

        self.events = 0
        config = DriverConfig(listen_address="/ip4/127.0.0.1/udp/0/quic-v1", thread_name="chaos")
        self.driver = NetworkDriver(config, self._count)
        self.published = 0

    def _count(self, event: object) -> None:
        """Driver thread. Answer requests like a well-behaved peer, so nodes keep us."""
        from lean_p2p.containers import Status
        from lean_p2p.net.commands import SendResponseChunk, SendResponseEnd
        from lean_p2p.net.events import InboundRequest

        self.events += 1
        if isinstance(event, InboundRequest):
            if isinstance(event.request, Status):  # echo: always a compatible status
                self.driver.send(SendResponseChunk(event.request_id, event.request))
            self.driver.send(SendResponseEnd(event.request_id))

    def start(self, addresses: list[str]) -> None:
        from lean_p2p.net.commands import Dial

        self.driver.start()
        self.driver.wait_ready(30)  # called before the loop-side timeline starts
        for address in addresses:
            self.driver.send(Dial(address))

    def publish_malformed(self, sequence: int) -> None:
        from lean_p2p.net.protocol import GossipTopic
        from lean_p2p.wire.varint import encode_varint

        payloads = [
            b"\xff\xfe not snappy " + sequence.to_bytes(4, "big"),
            encode_varint(11 * 1024 * 1024) + sequence.to_bytes(4, "big") * 16,
            b"\x10\x00" + sequence.to_bytes(4, "big") * 4,  # snappy of a too-short payload
        ]
        token = self.driver._token  # raw bytes bypass the encoder: only a test does this
        if token is None:
            return
        for topic in GossipTopic:
            for payload in payloads:
                token.run_sync_soon(self.driver._gossip.publish, topic.topic_string(), payload)
                self.published += 1

    def stop(self) -> None:
        self.driver.stop("soak over")
        self.driver.join(30)


async def run_soak(args: argparse.Namespace, stop: asyncio.Event | None = None) -> dict[str, Any]:
    """Run the timeline to its end, or until ``stop`` is set (the verdict then says
    ``interrupted``); either way every node is stopped in order and judged."""
    stop = stop if stop is not None else asyncio.Event()
    directory = args.dir or Path(tempfile.mkdtemp(prefix="lean-p2p-soak-"))
    genesis_time = int(time.time() + 12)
    entries = write_devnet(
        directory,
        nodes=4,
        validators=4,
        genesis_time=genesis_time,
        quic_ports=free_ports(4, socket.SOCK_DGRAM),
        api_ports=free_ports(4, socket.SOCK_STREAM),
    )
    options = DevnetOptions(nodes=4, validators=4, duration=args.duration, directory=directory)
    processes = [DevnetProcess(entry, directory) for entry in entries]
    with INTERRUPTS.cleanup_on_exit(lambda: kill_all(processes)):
        verdict = await _soak(
            args,
            stop=stop,
            processes=processes,
            options=options,
            entries=entries,
            genesis_time=genesis_time,
            directory=directory,
        )
    verdict["interrupted"] = stop.is_set()
    return verdict


async def _soak(
    args: argparse.Namespace,
    *,
    stop: asyncio.Event,
    processes: list[DevnetProcess],
    options: DevnetOptions,
    entries: list[NodeEntry],
    genesis_time: int,
    directory: Path,
) -> dict[str, Any]:
    for process in processes:
        process.start(options)
    chaos = ChaosPeer()
    await asyncio.to_thread(chaos.start, [entry.enr().dial_multiaddr() for entry in entries])
    log: list[str] = []
    rss: dict[str, list[tuple[float, float]]] = {p.name: [] for p in processes}
    history: list[dict[str, Any]] = []

    def note(text: str) -> None:
        line = f"t={time.time() - genesis_time:6.1f} {text}"
        log.append(line)
        print(line, flush=True)

    plan = [
        (0.20 * args.duration, "kill node 3"),
        (0.20 * args.duration + args.restart_delay, "restart node 3"),
        (0.40 * args.duration, "partition node 2"),
        (0.40 * args.duration + 30, "heal node 2"),
    ]
    plan.sort()  # by time: a long restart delay may come after the partition
    chaos_window = (0.60 * args.duration, 0.70 * args.duration)
    end = genesis_time + args.duration
    sequence = 0
    try:
        async with aiohttp.ClientSession() as session:
            next_sample = 0.0
            while time.time() < end:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 1.0)
                if stop.is_set():
                    note("interrupted")
                    break
                elapsed = time.time() - genesis_time
                while plan and elapsed >= plan[0][0]:
                    _, action = plan.pop(0)
                    note(action)
                    _act(action, processes, options)
                if chaos_window[0] <= elapsed < chaos_window[1]:
                    chaos.publish_malformed(sequence)
                    sequence += 1
                if elapsed >= next_sample:
                    next_sample = elapsed + _SAMPLE_EVERY
                    await _sample(
                        session, processes, rss=rss, history=history, elapsed=elapsed, note=note
                    )
    finally:
        note("stopping")
        for process in processes:  # a node left stopped must be able to stop
            process.signal(signal.SIGCONT)
        exit_codes = await stop_all(processes)
        await asyncio.to_thread(chaos.stop)
    return _verdict(
        args,
        processes=processes,
        exit_codes=exit_codes,
        rss=rss,
        history=history,
        log=log,
        chaos=chaos,
        directory=directory,
    )


def _act(action: str, processes: list[DevnetProcess], options: DevnetOptions) -> None:
    match action.split():
        case ["kill", "node", index]:
            processes[int(index)].signal(signal.SIGKILL)
        case ["restart", "node", index]:
            process = processes[int(index)]
            if process.process is not None:
                process.process.poll()  # reap the killed process (dead for 20 s)
            process.start(options)
        case ["partition", "node", index]:
            processes[int(index)].signal(signal.SIGSTOP)
        case ["heal", "node", index]:
            processes[int(index)].signal(signal.SIGCONT)


async def _sample(
    session: aiohttp.ClientSession,
    processes: list[DevnetProcess],
    *,
    rss: dict[str, list[tuple[float, float]]],
    history: list[dict[str, Any]],
    elapsed: float,
    note: Any,
) -> None:
    reports = await asyncio.gather(*(poll_report(session, p.entry.api_port) for p in processes))
    row: dict[str, Any] = {"t": round(elapsed, 1)}
    for process, report in zip(processes, reports, strict=True):
        pid = process.process.pid if process.process is not None else None
        memory = _rss_mb(pid) if pid is not None else None
        if memory is not None:
            rss[process.name].append((elapsed, memory))
        row[process.name] = (
            None
            if report is None
            else {
                "head": report["head_slot"],
                "finalized": report["finalized_slot"],
                "peers": report["peers"],
                "rss_mb": memory,
            }
        )
    history.append(row)
    live = [r for r in reports if r is not None]
    if live:
        note(
            f"up={len(live)} head={[r['head_slot'] for r in live]} "
            f"finalized={[r['finalized_slot'] for r in live]} "
            f"rss_mb={[round(m[-1][1]) for m in rss.values() if m]}"
        )


def _verdict(
    args: argparse.Namespace,
    *,
    processes: list[DevnetProcess],
    exit_codes: list[int | None],
    rss: dict[str, list[tuple[float, float]]],
    history: list[dict[str, Any]],
    log: list[str],
    chaos: ChaosPeer,
    directory: Path,
) -> dict[str, Any]:
    reports = [read_report(process.report_path) for process in processes]
    complete = [report for report in reports if report is not None]
    finalized = {(r["finalized_slot"], r["finalized_root"]) for r in complete}
    heads = [r["head_slot"] for r in complete]
    memory: dict[str, dict[str, float]] = {}
    memory_ok = True
    for name, samples in rss.items():
        if not samples:
            continue
        peak = max(value for _, value in samples)
        second_half = [v for t, v in samples if t >= args.duration / 2]
        growth = 100 * (second_half[-1] / second_half[0] - 1) if len(second_half) > 1 else 0.0
        memory[name] = {"peak_mb": peak, "second_half_growth_pct": growth}
        memory_ok &= peak <= args.max_rss_mb and growth <= args.max_growth_pct
    late = [row for row in history if row["t"] >= 0.75 * args.duration]
    finality_moved = False
    if len(late) >= 2:
        first = [v["finalized"] for v in late[0].values() if isinstance(v, dict)]
        last = [v["finalized"] for v in late[-1].values() if isinstance(v, dict)]
        finality_moved = bool(first and last) and min(last) > min(first)
    rejected_by_drivers = sum(
        r.get("driver", {}).get("driver", {}).get("gossip_decode_rejected", 0) for r in complete
    )
    verdict = {
        "duration_s": args.duration,
        "all_reported": len(complete) == len(processes),
        "finalized_agree": len(finalized) == 1,
        "finalized_slot": min((r["finalized_slot"] for r in complete), default=0),
        "head_agreement": bool(heads) and max(heads) - min(heads) <= 1,
        "finality_advanced_late": finality_moved,
        "lost_events": sum(r["lost_events"] for r in complete),
        "exit_codes": exit_codes,
        "memory": memory,
        "memory_ok": memory_ok,
        "malformed_published": chaos.published,
        "malformed_rejected_by_nodes": rejected_by_drivers,
        "log": log,
        "history": history,
        "directory": str(directory),
    }
    verdict["passed"] = all(
        (
            verdict["all_reported"],
            verdict["finalized_agree"],
            verdict["head_agreement"],
            verdict["finality_advanced_late"],
            verdict["lost_events"] == 0,
            memory_ok,
            all(code == 0 for code in exit_codes),
        )
    )
    return verdict

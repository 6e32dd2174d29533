"""Profiling a node under synthetic load: throughput, latency per lane, where time goes.

Threads. The node runs on the command's loop thread, on wall-clock time, with its own
validators (it proposes, attests and aggregates every slot). A load thread plays the
network driver: it takes the messages the node publishes (valid blocks, attestations,
aggregates), encodes them once as the wire carries them, and at the chosen rate decodes
them again (raw snappy + SSZ, the driver's own codec) and hands them to
:meth:`Node.emit_threadsafe` — the same hand-off, lanes, P2P core and store path real
gossip takes; peer requests (Status) go the same way into the ``peer_requests`` lane.
Only the sockets are missing (the driver has its own benchmark).

Each synthetic event carries its enqueue time (``perf_counter_ns``) in its message id
(request id for requests), so the node's ``on_handled`` hook measures per lane the
hand-off latency (enqueue -> handler start) and the handling time. The loop thread is
sampled with pyinstrument; running the same load once without and once with the
profiler gives its overhead (loop-thread CPU per handled event).
"""

from __future__ import annotations

import asyncio
import itertools
import math
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lean_p2p.containers import (
    Checkpoint,
    SignedAggregatedAttestation,
    SignedAttestation,
    SignedBlock,
    Status,
)
from lean_p2p.driver import codec
from lean_p2p.net.commands import Command, Publish
from lean_p2p.net.events import (
    Direction,
    Event,
    GossipAggregate,
    GossipAttestation,
    GossipBlock,
    InboundRequest,
    PeerConnected,
)
from lean_p2p.net.protocol import GossipTopic, ReqRespProtocol
from lean_p2p.node.config import GenesisSpec, NodeConfig
from lean_p2p.node.node import Node
from lean_p2p.tools.report import percentile
from lean_p2p.wire.keys import NodeKey

__all__ = [
    "DEFAULT_MIX",
    "LaneLatencies",
    "LoadDriver",
    "ProfileOptions",
    "ProfileRun",
    "run_profile",
]

#: Share of each kind of synthetic traffic (attestations dominate real lean gossip).
DEFAULT_MIX: Mapping[str, int] = {"attestation": 85, "aggregate": 5, "block": 5, "request": 5}
_STAMP = struct.Struct(">Q")
_STAMP_PADDING = b"\x00" * 12  # message ids are 20 bytes


@dataclass(frozen=True, slots=True)
class ProfileOptions:
    rate: float = 2000.0  # synthetic events per second
    duration: float = 20.0  # seconds of load per run
    validators: int = 256  # all run by the profiled node
    peers: int = 4  # synthetic peers the load comes from
    mix: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_MIX))
    #: "py-spy" samples from another process (no hook in ours); "pyinstrument" hooks
    #: every call in-process (finer attribution, far more overhead: docs/profiling.md)
    profiler: str = "py-spy"
    sample_interval: float = 0.005


class _Templates:
    """The latest messages the node published, encoded for the wire (immutable values).

    Written on the loop thread (``LoadDriver.send``), read on the load thread: each
    attribute is replaced whole, never mutated, so a reader sees an old or a new value.
    """

    def __init__(self) -> None:
        self.attestations: tuple[bytes, ...] = ()
        self.block: bytes | None = None
        self.aggregate: bytes | None = None
        self._pending: list[bytes] = []
        self._pending_slot = -1

    def capture(self, message: object) -> None:
        match message:
            case SignedAttestation():
                if message.data.slot != self._pending_slot:
                    self._pending, self._pending_slot = [], message.data.slot
                self._pending.append(codec.encode_gossip(message))
                self.attestations = tuple(self._pending)
            case SignedBlock():
                self.block = codec.encode_gossip(message)
            case SignedAggregatedAttestation():
                self.aggregate = codec.encode_gossip(message)


class LoadDriver:
    """A :class:`~lean_p2p.node.node.DriverPort` that generates load on its own thread."""

    def __init__(self, options: ProfileOptions) -> None:
        self._options = options
        self.templates = _Templates()
        self._emit: Callable[[Event], None] | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.commands = 0
        self.offered = 0  # events handed to the node
        self.not_ready = 0  # scheduled events skipped because no template existed yet
        self.refused = 0  # emit raised (the node was closing)

    def start(self, emit: Callable[[Event], None]) -> None:
        self._emit = emit

    def begin_load(self) -> None:
        self._thread = threading.Thread(target=self._generate, name="load", daemon=True)
        self._thread.start()

    def send(self, command: Command) -> None:
        self.commands += 1
        if isinstance(command, Publish):
            self.templates.capture(command.message)

    async def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 30.0)

    def _generate(self) -> None:
        emit = self._emit
        assert emit is not None
        options = self._options
        peers = [f"load-peer-{index}" for index in range(options.peers)]
        for peer in peers:
            emit(PeerConnected(peer, Direction.INBOUND, "/ip4/127.0.0.1/udp/1/quic-v1"))
        kinds = [kind for kind, share in options.mix.items() for _ in range(share)]
        schedule = itertools.cycle(kinds)
        status_payload = codec.encode_request(
            Status(
                finalized=Checkpoint(root=b"\x00" * 32, slot=0), head=Checkpoint(b"\x00" * 32, 0)
            )
        )
        interval = 1.0 / options.rate
        started = time.perf_counter()
        for sequence in itertools.count():
            if self._stop.is_set():
                return
            due = started + sequence * interval
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            peer = peers[sequence % len(peers)]
            event = self._event(next(schedule), sequence, peer, status_payload)
            if event is None:
                self.not_ready += 1
                continue
            try:
                emit(event)
            except RuntimeError:  # MailboxClosed: the node is stopping
                self.refused += 1
                return
            self.offered += 1

    def _event(self, kind: str, sequence: int, peer: str, status: bytes) -> Event | None:
        templates = self.templates
        stamp = time.perf_counter_ns()
        message_id = _STAMP.pack(stamp) + _STAMP_PADDING
        # Decoding here, on the producer thread, is the driver's share of the work: the
        # message id over the decompressed payload, then SSZ.
        match kind:
            case "attestation":
                attestations = templates.attestations
                if not attestations:
                    return None
                payload = attestations[sequence % len(attestations)]
                decoded = _decode(GossipTopic.ATTESTATION, payload)
                assert isinstance(decoded, SignedAttestation)
                return GossipAttestation(peer, message_id, decoded)
            case "aggregate":
                if templates.aggregate is None:
                    return None
                aggregate = _decode(GossipTopic.AGGREGATION, templates.aggregate)
                assert isinstance(aggregate, SignedAggregatedAttestation)
                return GossipAggregate(peer, message_id, aggregate)
            case "block":
                if templates.block is None:
                    return None
                block = _decode(GossipTopic.BLOCK, templates.block)
                assert isinstance(block, SignedBlock)
                return GossipBlock(peer, message_id, block)
            case _:
                request = codec.decode_request(ReqRespProtocol.STATUS, status)
                assert isinstance(request, Status)
                return InboundRequest(peer, stamp, ReqRespProtocol.STATUS, request)


def _decode(topic: GossipTopic, wire: bytes) -> object:
    _, payload = codec.gossip_message_id(topic.topic_string(), wire)
    assert payload is not None, "the node's own messages are valid snappy"
    return codec.decode_gossip(topic, payload)


def _enqueued_at(item: object) -> float | None:
    """The load thread's enqueue stamp (seconds, perf_counter clock), if the item has one."""
    match item:
        case GossipAttestation() | GossipBlock() | GossipAggregate():
            stamp: int = _STAMP.unpack_from(item.message_id)[0]
            return stamp / 1e9
        case InboundRequest():
            return item.request_id / 1e9
    return None


@dataclass
class LaneLatencies:
    """Per-lane samples, in seconds, collected on the loop thread."""

    handoff: dict[str, list[float]] = field(default_factory=dict)
    handling: dict[str, list[float]] = field(default_factory=dict)

    def observe(self, lane: str, item: object, started: float, finished: float) -> None:
        self.handling.setdefault(lane, []).append(finished - started)
        enqueued = _enqueued_at(item)
        if enqueued is not None:
            self.handoff.setdefault(lane, []).append(started - enqueued)


@dataclass(frozen=True, slots=True)
class ProfileRun:
    """One run's results."""

    profiled: bool
    rate: float
    duration: float
    offered: int
    handled: int
    dropped: int
    lost_events: int
    loop_cpu_seconds: float
    finalized_slot: int
    latencies: LaneLatencies
    lane_drops: Mapping[str, int]
    profile_text: str
    profile_html: str

    @property
    def throughput(self) -> float:
        return self.handled / self.duration if self.duration else 0.0

    @property
    def cpu_per_event_us(self) -> float:
        return 1e6 * self.loop_cpu_seconds / self.handled if self.handled else 0.0

    def lane_rows(self) -> list[dict[str, Any]]:
        rows = []
        for lane in sorted(self.latencies.handling):
            handling = sorted(self.latencies.handling[lane])
            handoff = sorted(self.latencies.handoff.get(lane, []))
            rows.append(
                {
                    "profiled": self.profiled,
                    "lane": lane,
                    "handled": len(handling),
                    "handoff_p50_us": 1e6 * percentile(handoff, 0.5) if handoff else None,
                    "handoff_p99_us": 1e6 * percentile(handoff, 0.99) if handoff else None,
                    "handling_p50_us": 1e6 * percentile(handling, 0.5),
                    "handling_p99_us": 1e6 * percentile(handling, 0.99),
                    "dropped": self.lane_drops.get(lane, 0),
                }
            )
        return rows

    def summary_row(self) -> dict[str, Any]:
        return {
            "profiled": self.profiled,
            "rate": self.rate,
            "offered": self.offered,
            "handled": self.handled,
            "events_per_s": self.throughput,
            "loop_cpu_pct": 100 * self.loop_cpu_seconds / self.duration,
            "cpu_per_event_us": self.cpu_per_event_us,
            "dropped": self.dropped,
            "lost_events": self.lost_events,
            "finalized_slot": self.finalized_slot,
        }


async def run_profile(options: ProfileOptions, *, profiled: bool) -> ProfileRun:
    """Run the node under load for ``options.duration`` seconds (loop thread)."""
    # Genesis a few seconds back: the node starts at the end of slot 0, so it proposes
    # (and the load has a block to replay) within about a second.
    genesis = GenesisSpec.placeholder(int(time.time()) - 3, options.validators)
    config = NodeConfig(
        name="profiled",
        key=NodeKey.generate(),
        genesis=genesis,
        validator_indices=tuple(range(options.validators)),
        is_aggregator=True,
    )
    latencies = LaneLatencies()
    driver = LoadDriver(options)
    node = Node(config, driver=driver, serve_api=False, on_handled=latencies.observe)
    await node.start()
    await _wait_for_templates(driver.templates, limit=15.0)
    sampler: PySpySampler | None = None
    profiler: Any = None
    if profiled and options.profiler == "py-spy":
        sampler = PySpySampler(options.sample_interval, options.duration)
        sampler.start()
        await asyncio.sleep(0.5)  # let it attach before the load starts
    elif profiled:
        profiler = _start_profiler(options.sample_interval)
    handled_before = node.report().handled
    cpu_started = time.thread_time()
    driver.begin_load()
    await asyncio.sleep(options.duration)
    await node.stop()
    loop_cpu = time.thread_time() - cpu_started
    profile_text = profile_html = ""
    if sampler is not None:
        profile_text = await sampler.finish()
    if profiler is not None:
        profiler.stop()
        profile_text = profiler.output_text(unicode=False, color=False, show_all=False)
        profile_html = profiler.output_html()
    report = node.report()
    stats = node.mailbox_statistics()
    lane_drops = {lane.name: lane.dropped for lane in stats.lanes} if stats else {}
    return ProfileRun(
        profiled=profiled,
        rate=options.rate,
        duration=options.duration,
        offered=driver.offered,
        handled=report.handled - handled_before,
        dropped=report.dropped,
        lost_events=report.lost_events,
        loop_cpu_seconds=loop_cpu,
        finalized_slot=report.chain.finalized_slot,
        latencies=latencies,
        lane_drops=lane_drops,
        profile_text=profile_text,
        profile_html=profile_html,
    )


async def _wait_for_templates(templates: _Templates, limit: float) -> None:
    """Until the node published a block, attestations and an aggregate to replay."""
    deadline = time.monotonic() + limit
    while not (templates.block and templates.attestations and templates.aggregate):
        if time.monotonic() > deadline:
            raise TimeoutError("the profiled node published nothing to replay as load")
        await asyncio.sleep(0.05)


def _start_profiler(interval: float) -> Any:
    from pyinstrument import Profiler

    # async_mode disabled: sample the loop thread as it is, whichever task runs. The
    # timing thread makes the per-call time check a memory read instead of a syscall.
    profiler = Profiler(interval=interval, async_mode="disabled", use_timing_thread=True)
    profiler.start()
    return profiler


def plot_latencies(runs: Sequence[ProfileRun], path: Path) -> None:
    """Histograms of hand-off and handling latency per lane (log scale), as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    run = next((r for r in runs if not r.profiled), runs[0])
    lanes = sorted(run.latencies.handling)
    figure, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for axis, kind, samples in (
        (axes[0], "hand-off (enqueue -> handler start)", run.latencies.handoff),
        (axes[1], "handling (handler start -> end)", run.latencies.handling),
    ):
        everything = [v for lane in lanes for v in samples.get(lane, []) if v > 0]
        if not everything:
            continue
        bins = np.logspace(np.log10(min(everything) * 1e6), np.log10(max(everything) * 1e6), 60)
        for lane in lanes:
            values = [v * 1e6 for v in samples.get(lane, []) if v > 0]
            if values:
                axis.hist(values, bins=bins, histtype="step", label=f"{lane} ({len(values)})")
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xlabel("microseconds")
        axis.set_ylabel("events")
        axis.set_title(kind)
        axis.legend(fontsize="small")
    figure.suptitle(f"lean-p2p node at {run.rate:.0f} events/s (profiler off)")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def py_spy_path() -> str | None:
    """The py-spy binary: beside this interpreter (a virtualenv) or on PATH."""
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


def py_spy_record(binary: str, rate: int, seconds: float, output: Path) -> list[str]:
    """py-spy recording this process's every thread for ``seconds``, as collapsed stacks
    in ``output``, without stopping it (``--nonblocking``)."""
    return [
        binary,
        "record",
        "--pid",
        str(os.getpid()),
        "--rate",
        str(rate),
        "--duration",
        str(math.ceil(seconds)),
        "--format",
        "raw",
        "--nonblocking",
        "--threads",
        "--output",
        str(output),
    ]


class PySpySampler:
    """py-spy sampling this process from outside; only the loop thread is reported.

    ``--nonblocking`` reads the interpreter's memory without pausing it, so the profiled
    process pays nothing per call (unlike an in-process hook); the sampler's own CPU is
    another process's (on a small machine it still competes for cores).
    """

    def __init__(self, interval: float, duration: float) -> None:
        self._rate = max(1, round(1 / interval))
        self._duration = duration
        self._loop_thread_id = threading.get_native_id()
        self._output = Path(tempfile.mkdtemp(prefix="lean-p2p-profile-")) / "stacks.txt"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = py_spy_path()
        if binary is None:
            raise RuntimeError("py-spy is not installed (pip install py-spy)")
        self._process = subprocess.Popen(
            py_spy_record(binary, self._rate, self._duration, self._output),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    async def finish(self) -> str:
        process = self._process
        if process is None:
            return ""
        _, errors = await asyncio.to_thread(process.communicate)
        if process.returncode != 0 or not self._output.exists():
            return f"py-spy failed ({process.returncode}): {errors.decode(errors='replace')}"
        expected = self._rate * self._duration  # samples if the loop were never idle
        return hot_paths(self._output.read_text(), self._loop_thread_id, expected)


def _function(frame: str) -> str:
    """``name (file:line)`` -> ``name (file)``: one row per function, not per line."""
    name, _, location = frame.partition(" (")
    return f"{name} ({location.rpartition(':')[0]})" if ":" in location else frame


def hot_paths(raw: str, thread_id: int, expected_samples: float, top: int = 25) -> str:
    """A table of the loop thread's functions by own and inclusive busy samples.

    py-spy records only samples where the thread was running (not waiting in the
    selector), so the sample count over the expected count is the loop's busy share.
    """
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    marker = f"thread ({thread_id:#x})"
    decimal_marker = f"thread ({thread_id})"
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not (stack.startswith(marker) or stack.startswith(decimal_marker)):
            continue
        count = int(count_text)
        frames = [_function(frame) for frame in stack.split(";")[1:]]  # drop the thread
        total += count
        if frames:
            own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    if not total:
        return "no samples of the loop thread"
    busy = 100 * total / expected_samples if expected_samples else float("nan")
    lines = [
        f"{total} busy samples of the loop thread (busy about {busy:.0f}% of the time);",
        "percentages are of busy samples",
        "",
        f"{'own %':>7} {'total %':>8}  function",
    ]
    for frame, count in own.most_common(top):
        lines.append(f"{100 * count / total:7.1f} {100 * inclusive[frame] / total:8.1f}  {frame}")
    lines += ["", "by inclusive time:", f"{'total %':>8}  function"]
    for frame, count in inclusive.most_common(top):
        lines.append(f"{100 * count / total:8.1f}  {frame}")
    return "\n".join(lines)

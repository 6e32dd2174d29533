"""Profiling a node over real sockets: a load generator in another process, a rate ramp
to saturation, and what saturates.

Threads. Everything here runs on the profiling process's loop thread, the node under
test's loop: the ramp awaits its steps, talks to the load generator over pipes
(asyncio subprocess), and reads the node through :class:`~lean_p2p.node.sampling.
NodeSampler`. py-spy samples this process from its own process (``--nonblocking``: it
reads memory without stopping the interpreter). Nothing here blocks the loop but the
sampler's edges (see its docstring) and py-spy's start.

The ramp. Each step offers one rate (events/s, in the mix asked for) for
``step_seconds``; its first third lets the pipeline fill, and the rest is measured. A
step **saturates** the node when, over its measured part, any of these holds:

- the network lanes' queueing delay p99 exceeds ``max_delay_ms`` (100 ms: a tenth of
  an interval of the slot);
- the lanes dropped more than ``max_drop_pct`` of what arrived;
- the node handled less than ``min_handled_pct`` of what the generator sent (events
  lost before the mailbox, or a backlog growing).

The ramp multiplies the rate by ``factor`` until a step saturates, then bisects between
the last good and the first saturated rate ``refine_steps`` times, emptying the queues
before each. The saturation rate is the highest rate that did not saturate. When the
generator cannot send what a step asks (less than 90 %), the ramp stops there and says
so: the node was not the limit.

Then, at the saturation rate, py-spy records every thread for one step (the flame
graph), and pairs of steps at 70 % of that rate measure the profiler's own cost: the CPU
a handled event costs with the sampler's stamps and probe and py-spy all off, and all
on (py-spy's process included).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import statistics
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from lean_p2p.net.events import GossipAttestation
from lean_p2p.node.sampling import NodeSampler, Window, cpu_seconds
from lean_p2p.runtime.lanes import AGGREGATES, ATTESTATIONS, BLOCKS, PEER_REQUESTS
from lean_p2p.tools import flamegraph
from lean_p2p.tools.running import INTERRUPTS, Progress

if TYPE_CHECKING:
    from lean_p2p.node.node import Node

__all__ = [
    "DEFAULT_MIX",
    "FrameRecorder",
    "LoadGenerator",
    "NetworkProfile",
    "NetworkProfileOptions",
    "Step",
    "default_sampler",
    "deliberately_slow_handler",
    "judge_step",
    "profile_network",
    "profile_node",
    "recorder",
]

#: what the generator offers by default (attestations dominate lean gossip)
DEFAULT_MIX: Mapping[str, int] = {"attestation": 85, "aggregate": 5, "block": 5, "request": 5}
NETWORK_LANES = (ATTESTATIONS, AGGREGATES, BLOCKS, PEER_REQUESTS)
_GENERATOR_BEHIND = 0.9  # sent below this share of the offered load: generator-bound
_SETTLE_LIMIT_S = 20.0
#: the overhead steps' rate, as a share of the saturation rate
_OVERHEAD_SHARE = 0.7
#: the share of a step that fills the pipeline before the measurement starts
_WARM_UP = 1 / 3
#: Python threads of one process together this busy (% of one core): GIL-bound
_GIL_BOUND_PCT = 75.0
#: both processes together this share of every core: the machine is saturated
_MACHINE_BOUND = 0.9
_SETTLE_QUIET_S = 0.3
_SETTLE_TRICKLE = 8


@dataclass(frozen=True, slots=True)
class NetworkProfileOptions:
    rate: float | None = None  # a fixed rate: one step, no ramp
    start_rate: float = 600.0
    factor: float = 1.4
    step_seconds: float = 5.0
    max_steps: int = 14
    refine_steps: int = 2
    #: the genesis registry (4,096: the most a state holds, so the most new votes)
    validators: int = 4096
    #: validators the generator's own node runs (it proposes the first this many slots)
    generator_validators: int = 64
    mix: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_MIX))
    max_delay_ms: float = 100.0
    max_drop_pct: float = 1.0
    min_handled_pct: float = 90.0
    flame: bool = True
    overhead: bool = True
    overhead_pairs: int = 2  # off/on step pairs (medians)
    sample_rate: int = 100  # stack samples per second
    #: "py-spy" (another process, reads memory without stopping us) or "frames" (a
    #: thread of this process; the stand-in where py-spy is not installed)
    sampler: str = "py-spy"
    #: the generator and this process on separate halves of the cores (profile_network)
    pin_cores: bool = True
    slow_handler_us: float = 0.0
    loop: str = "uvloop"

    @classmethod
    def quick(cls, **changes: Any) -> NetworkProfileOptions:
        """Under 30 seconds: short steps, a coarser ramp, one refinement."""
        base = cls(
            start_rate=2000.0,
            factor=2.0,
            step_seconds=2.0,
            max_steps=7,
            refine_steps=1,
            overhead_pairs=1,
        )
        return replace(base, **changes)


@dataclass
class Step:
    index: int
    phase: str  # ramp | refine | fixed | flame | overhead-off | overhead-on
    offered_rate: float
    seconds: float
    sent: dict[str, int]
    generator: dict[str, Any]
    window: dict[str, Any]
    saturated: bool = False
    reasons: list[str] = field(default_factory=list)
    generator_bound: bool = False
    #: py-spy's own CPU during the step (% of a core), when it recorded
    profiler_cpu_pct: float = 0.0

    @property
    def sent_total(self) -> int:
        return sum(self.sent.values())

    @property
    def handled_rate(self) -> float:
        lanes = self.window["lanes"]
        return float(sum(lanes[name]["handled_per_s"] for name in NETWORK_LANES if name in lanes))

    def delay_ms(self, which: str) -> float | None:
        values = [
            self.window["lanes"][name][f"delay_{which}_ms"]
            for name in NETWORK_LANES
            if name in self.window["lanes"]
            and self.window["lanes"][name][f"delay_{which}_ms"] is not None
        ]
        return max(values) if values else None

    def row(self) -> dict[str, Any]:
        drops = sum(
            sum(self.window["lanes"][name]["dropped"].values())
            for name in NETWORK_LANES
            if name in self.window["lanes"]
        )
        cpu = self.window["cpu_percent"]
        return {
            "step": self.index,
            "phase": self.phase,
            "offered_per_s": round(self.offered_rate),
            "sent_per_s": round(self.sent_total / self.seconds) if self.seconds else 0,
            "handled_per_s": round(self.handled_rate),
            "delay_p50_ms": _round(self.delay_ms("p50")),
            "delay_p99_ms": _round(self.delay_ms("p99")),
            "delay_max_ms": _round(self.delay_ms("max")),
            "dropped": drops,
            "loop_lag_p99_ms": _round(self.window["loop_lag_ms"]["p99"]),
            "gil_wait_p99_ms": _round(self.window["gil_wait_ms"]["p99"]),
            "loop_cpu_pct": round(cpu.get("loop", 0.0)),
            "driver_cpu_pct": round(sum(v for k, v in cpu.items() if k.startswith("driver"))),
            "rss_mb": round(self.window["rss_max_mb"]),
            "saturated": "yes" if self.saturated else ("gen" if self.generator_bound else ""),
        }


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


@dataclass
class NetworkProfile:
    """A whole run: its steps, the timeline, the verdict and the files it wrote."""

    options: NetworkProfileOptions
    steps: list[Step] = field(default_factory=list)
    timeline: list[dict[str, Any]] = field(default_factory=list)
    saturation_rate: float | None = None
    first_saturated_rate: float | None = None
    #: the most events a second the node handled in any measured step of the search
    capacity: float | None = None
    generator_bound_at: float | None = None
    bottleneck: dict[str, Any] = field(default_factory=dict)
    overhead: dict[str, Any] = field(default_factory=dict)
    flame: dict[str, Any] = field(default_factory=dict)
    flame_stacks: list[flamegraph.Stack] = field(default_factory=list)
    interrupted: bool = False
    #: gossip published by the generator against gossip the node took in, after settling
    totals: dict[str, Any] = field(default_factory=dict)
    verdict: str = ""
    lost_events: int = 0

    def summary_row(self) -> dict[str, Any]:
        """The run in one row (``--json`` adds it after the step rows)."""
        return {
            "summary": True,
            "saturation_rate": self.saturation_rate,
            "first_saturated_rate": self.first_saturated_rate,
            "capacity": self.capacity,
            "generator_bound_at": self.generator_bound_at,
            "bottleneck_thread": self.bottleneck.get("thread"),
            "top_functions": [f["function"] for f in self.bottleneck.get("top_functions", [])],
            "profiler_overhead_pct": self.overhead.get("cpu_cost_pct"),
            "lost_events": self.lost_events,
            "gossip_missing": self.totals.get("gossip_missing"),
            "interrupted": self.interrupted,
            "verdict": self.verdict,
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "options": {**_options_dict(self.options)},
            "saturation_rate": self.saturation_rate,
            "first_saturated_rate": self.first_saturated_rate,
            "capacity": self.capacity,
            "generator_bound_at": self.generator_bound_at,
            "verdict": self.verdict,
            "bottleneck": self.bottleneck,
            "overhead": self.overhead,
            "flame": self.flame,
            "interrupted": self.interrupted,
            "lost_events": self.lost_events,
            "totals": self.totals,
            "steps": [
                {
                    **step.row(),
                    "reasons": step.reasons,
                    "generator": step.generator,
                    "sent": step.sent,
                    "window": step.window,
                }
                for step in self.steps
            ],
            "timeline": self.timeline,
        }


def _options_dict(options: NetworkProfileOptions) -> dict[str, Any]:
    return {
        name: (dict(value) if isinstance(value, Mapping) else value)
        for name in options.__dataclass_fields__
        for value in (getattr(options, name),)
    }


def _tail(path: Path, characters: int = 2000) -> str:
    return path.read_text(errors="replace")[-characters:] if path.exists() else ""


class LoadGenerator:
    """The generator process (:mod:`lean_p2p.tools.loadgen`), from the loop thread."""

    def __init__(self, process: asyncio.subprocess.Process, address: str, log: Path) -> None:
        self._process = process
        self.address = address
        self.log = log

    @classmethod
    async def start(
        cls,
        genesis_time: int,
        validators: int,
        log: Path,
        *,
        own_validators: int = 64,
        loop: str = "uvloop",
    ) -> LoadGenerator:
        with log.open("wb") as errors:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "lean_p2p.tools.loadgen",
                "--genesis-time",
                str(genesis_time),
                "--validators",
                str(validators),
                "--own-validators",
                str(min(own_validators, validators)),
                "--loop",
                loop,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=errors,
            )
        try:
            reply = await cls._read(process, 60.0, log)
        except BaseException:
            process.kill()
            await process.wait()
            raise
        return cls(process, reply["ready"], log)

    @staticmethod
    async def _read(process: asyncio.subprocess.Process, limit: float, log: Path) -> Any:
        assert process.stdout is not None
        async with asyncio.timeout(limit):
            line = await process.stdout.readline()
        if not line:
            code = await process.wait()
            tail = await asyncio.to_thread(_tail, log)
            raise RuntimeError(f"the load generator exited with code {code}:\n{tail}")
        return json.loads(line)

    async def _ask(self, command: Mapping[str, Any]) -> Any:
        stdin = self._process.stdin
        assert stdin is not None
        stdin.write((json.dumps(command) + "\n").encode())
        await stdin.drain()
        return await self._read(self._process, 30.0, self.log)

    async def set_load(self, rate: float, mix: Mapping[str, int]) -> None:
        await self._ask({"rate": rate, "mix": dict(mix)})

    async def report(self) -> dict[str, Any]:
        reply: dict[str, Any] = await self._ask({"report": True})
        return reply

    @property
    def pid(self) -> int:
        return self._process.pid

    def cpu_seconds(self) -> float:
        """The generator process's CPU time so far (user + system; 0 once it ended)."""
        return process_cpu_seconds(self._process.pid)

    def kill(self) -> None:
        """Any thread (the exit-at-once cleanup): the child must not outlive us."""
        with contextlib.suppress(ProcessLookupError):
            self._process.kill()

    async def stop(self) -> None:
        if self._process.returncode is None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._ask({"stop": True}), 30.0)
            try:
                await asyncio.wait_for(self._process.wait(), 30.0)
            except TimeoutError:
                self.kill()
                await self._process.wait()


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (0 if it is gone)."""
    return cpu_seconds(f"/proc/{pid}/stat") or 0.0


def deliberately_slow_handler(
    microseconds: float, slowing: threading.Event | None = None
) -> Callable[[str, object, float, float], None]:
    """A node ``on_handled`` hook that burns ``microseconds`` of CPU on the loop thread
    after every gossip attestation: a known bottleneck, to check the verdict names it.

    Only while ``slowing`` is set, if given: clear it when the profile is taken, or the
    node's close drains the backlog the bottleneck built at the slow rate: up to a full
    attestation lane, 16,384 at 2 ms each, over half a minute."""
    seconds = microseconds / 1e6

    def slow_attestation_handling(lane: str, item: object, started: float, finished: float) -> None:
        if type(item) is GossipAttestation and (slowing is None or slowing.is_set()):
            until = time.perf_counter() + seconds
            while time.perf_counter() < until:
                pass

    return slow_attestation_handling


class _Ramp:
    """One profiling run against a started node (loop thread)."""

    def __init__(
        self,
        node: Node,
        generator: LoadGenerator,
        *,
        options: NetworkProfileOptions,
        out: Path,
        stop: asyncio.Event,
        progress: Progress,
    ) -> None:
        self.node = node
        self.generator = generator
        self.options = options
        self.out = out
        self.stop = stop
        self.progress = progress
        self.result = NetworkProfile(options)
        self.sampler = NodeSampler(node, interval=0.5)
        self._planned = 1

    async def run(self) -> NetworkProfile:
        options, result = self.options, self.result
        arrived_before = _gossip_arrivals(self.node)
        received_before = _received_gossip(self.node)
        chain_before = dict(self.node.report().chain_counters)
        before = await self.generator.report()
        with self.sampler:
            try:
                if options.rate is not None:
                    await self._fixed(options.rate)
                else:
                    await self._ramp()
                if not self.stop.is_set():
                    await self._settle()
            finally:
                result.timeline = [_sample_dict(s) for s in self.sampler.timeline]
        after = await self.generator.report()
        # Every gossip message the generator published (the flood's and its own node's)
        # against what the node under test took in, once everything on its way arrived.
        published = sum(
            after["sent"].get(kind, 0) - before["sent"].get(kind, 0)
            for kind in ("attestation", "aggregate", "block")
        ) + (after["own_published"] - before["own_published"])
        arrived = _gossip_arrivals(self.node) - arrived_before
        received = _received_gossip(self.node)
        result.totals = {
            "gossip_published": published,
            "gossip_arrived": arrived,
            "gossip_missing": published - arrived,
            "settled": not self.stop.is_set(),
            # stamps dropped unhandled after the sampler's TTL: events a full lane
            # refused, or (if any waited longer) handled ones whose delay is not counted
            "stamps_forgotten": self.sampler.forgotten_stamps,
            # The routers' own counts on each side, for where the missing ones went.
            "sender": {
                key: after[group][key] - before[group][key]
                for group in ("gossipsub", "reqresp")
                for key in after[group]
            },
            "receiver": {
                key: received.get(key, 0) - received_before.get(key, 0) for key in received
            },
            # What the chain made of it: imports, duplicate votes, rejections by reason.
            "chain": {
                key: value - chain_before.get(key, 0)
                for key, value in sorted(self.node.report().chain_counters.items())
                if value != chain_before.get(key, 0)
            },
        }
        return result

    async def _fixed(self, rate: float) -> None:
        """One step at ``rate`` (and the flame graph at it): no search."""
        self._planned = 1 + self.options.flame
        step = await self._step("fixed", rate)
        if step.saturated:
            self.result.first_saturated_rate = rate
        if self.options.flame and not self.stop.is_set():
            await self._flame(rate)
        await self.generator.set_load(0, self.options.mix)

    async def _ramp(self) -> None:
        options, result = self.options, self.result
        self._planned = options.max_steps + options.refine_steps + options.flame
        self._planned += 2 * options.overhead_pairs * options.overhead
        last_good: Step | None = None
        first_bad: Step | None = None
        rate = options.start_rate
        for _ in range(options.max_steps):
            if self.stop.is_set():
                return
            step = await self._step("ramp", rate)
            if step.saturated:
                first_bad = step
                break
            if step.generator_bound:
                result.generator_bound_at = step.offered_rate
                break
            last_good = step
            rate *= options.factor
        if first_bad is not None:
            # Bisect between the last good rate (or zero) and the first saturated one.
            low = last_good.offered_rate if last_good is not None else 0.0
            high = first_bad.offered_rate
            for _ in range(options.refine_steps):
                if self.stop.is_set():
                    break
                await self._settle()
                middle = math.sqrt(low * high) if low else high / 2
                step = await self._step("refine", middle)
                if step.saturated:
                    high, first_bad = middle, step
                else:
                    low, last_good = middle, step
            result.first_saturated_rate = high
        if last_good is not None:
            result.saturation_rate = last_good.offered_rate
        flame_rate = last_good.offered_rate if last_good is not None else options.start_rate
        if options.flame and not self.stop.is_set():
            await self._settle()
            await self._flame(flame_rate)
        if options.overhead and not self.stop.is_set():
            # Below the edge, where a step's CPU per event is steady: at the saturation
            # rate itself, scheduling on a full machine swings it more than the cost.
            await self._overhead(flame_rate * _OVERHEAD_SHARE)
        await self.generator.set_load(0, options.mix)

    async def _step(self, phase: str, rate: float) -> Step:
        """One step: the rate is set, the first third of the step lets the pipeline
        fill (from the generator's publish to the node's handler, events are in flight
        for a while, and a rate that just rose has not reached the node yet), and the
        rest is measured and judged."""
        options = self.options
        index = len(self.result.steps) + 1
        label = f"{index} {phase} {rate:,.0f}/s"
        self.sampler.begin(label)
        await self.generator.set_load(rate, options.mix)
        warm_up = options.step_seconds * _WARM_UP
        await self._wait_until(time.perf_counter() + warm_up, index, phase, rate)
        before = await self.generator.report()
        generator_cpu = self.generator.cpu_seconds()
        self.sampler.begin(label)
        # From here, not from the step's start: a busy generator may take a while to
        # answer the report, and the measured part keeps its length.
        measured = options.step_seconds - warm_up
        await self._wait_until(time.perf_counter() + measured, index, phase, rate)
        window = self.sampler.end()
        after = await self.generator.report()
        after["cpu_pct"] = 100 * (self.generator.cpu_seconds() - generator_cpu) / window.seconds
        step = judge_step(
            self.options,
            index=index,
            phase=phase,
            rate=rate,
            window=window,
            before=before,
            after=after,
        )
        self.result.steps.append(step)
        self._show(index, phase, rate, force=True)
        return step

    async def _wait_until(self, deadline: float, index: int, phase: str, rate: float) -> None:
        while (now := time.perf_counter()) < deadline and not self.stop.is_set():
            self._show(index, phase, rate)
            await asyncio.sleep(min(0.25, deadline - now))

    def _show(self, index: int, phase: str, rate: float, *, force: bool = False) -> None:
        recent = self.sampler.timeline[-1] if self.sampler.timeline else None
        if recent is None:
            text = "starting"
        else:
            handled = sum(recent.lanes.get(n, {}).get("handled", 0) for n in NETWORK_LANES)
            dropped = sum(recent.lanes.get(n, {}).get("dropped", 0) for n in NETWORK_LANES)
            delay = max(recent.lanes.get(n, {}).get("delay_p99_ms", 0.0) for n in NETWORK_LANES)
            shown = f"{delay:,.1f} ms" if self.sampler.observing else "off"
            text = (
                f"handled {handled / recent.seconds:,.0f}/s, delay p99 {shown}, dropped {dropped}"
            )
        self.progress.update(
            f"step {index}/{self._planned} {phase} {rate:,.0f}/s: {text}", force=force
        )

    async def _settle(self) -> None:
        """No load until the node has taken in what was on its way (the driver's and
        the kernel's backlog) and emptied its network lanes (arrivals stopped growing
        for a while and the lanes are empty), and the generator is connected to it with
        a gossip mesh. At most 20 s."""
        await self.generator.set_load(0, self.options.mix)
        deadline = time.monotonic() + _SETTLE_LIMIT_S
        last_arrived, quiet_since = -1, time.monotonic()
        while time.monotonic() < deadline and not self.stop.is_set():
            arrived, depth = _network_counts(self.node)
            now = time.monotonic()
            # The generator's own chain (a block, votes and aggregates each slot) keeps
            # a trickle coming: a few arrivals do not count as a backlog.
            if arrived - last_arrived > _SETTLE_TRICKLE:
                last_arrived, quiet_since = arrived, now
            elif depth == 0 and now - quiet_since >= _SETTLE_QUIET_S:
                break
            await asyncio.sleep(0.05)
        # An overload may have cost the connection: the next step needs it back, and the
        # gossip mesh formed again over it, or it would measure a network that is down.
        while time.monotonic() < deadline and not self.stop.is_set():
            state = await self.generator.report()
            if state["connected"] and state["mesh"] > 0:
                return
            await asyncio.sleep(0.1)

    async def _flame(self, rate: float) -> None:
        options = self.options
        stacks_recorder = recorder(
            options.sampler, options.sample_rate, options.step_seconds, self.out
        )
        if not stacks_recorder.available:
            self.result.flame = {"error": "py-spy is not installed: no flame graph"}
            return
        await stacks_recorder.start()
        try:
            step = await self._step("flame", rate)
        finally:
            raw, error = await stacks_recorder.finish()
        stacks = await asyncio.to_thread(flamegraph.parse_collapsed, raw)
        self.result.flame_stacks = stacks
        self.result.flame = {
            "step": step.index,
            "rate": rate,
            "samples": sum(s.count for s in stacks),
            "sample_rate": options.sample_rate,
            "sampler": stacks_recorder.name,
            "error": error,
            "threads": _thread_shares(stacks, options.sample_rate, step.seconds),
        }

    async def _overhead(self, rate: float) -> None:
        """Below the saturation rate, where the node handles what it is offered: the
        CPU a handled event costs with the profiler off (no stamps, no probe, no py-spy)
        and on (py-spy's own process included), in alternating steps from empty queues.
        """
        options = self.options
        pairs: list[tuple[Step, Step]] = []
        for _ in range(options.overhead_pairs):
            if self.stop.is_set():
                break
            await self._settle()
            self.sampler.set_observing(False)
            try:
                off = await self._step("overhead-off", rate)
            finally:
                self.sampler.set_observing(True)
            await self._settle()
            stacks_recorder = recorder(
                options.sampler, options.sample_rate, options.step_seconds, self.out
            )
            if stacks_recorder.available:
                await stacks_recorder.start()
            started, spent = time.perf_counter(), stacks_recorder.cpu_seconds()
            try:
                on = await self._step("overhead-on", rate)
                spent = stacks_recorder.cpu_seconds() - spent
                on.profiler_cpu_pct = 100 * spent / (time.perf_counter() - started)
            finally:
                if stacks_recorder.available:
                    await stacks_recorder.finish()
            pairs.append((off, on))
        if not pairs:
            return
        off_rate = statistics.median(off.handled_rate for off, _ in pairs)
        on_rate = statistics.median(on.handled_rate for _, on in pairs)
        off_cpu = statistics.median(_cpu_per_event(off) for off, _ in pairs)
        on_cpu = statistics.median(_cpu_per_event(on) for _, on in pairs)
        # The sampler alone: it runs through the whole ramp, py-spy only in the steps
        # that record (the flame graph's).
        sampler_cpu = statistics.median(_cpu_per_event(on, with_profiler=False) for _, on in pairs)
        self.result.overhead = {
            "rate": rate,
            "pairs": len(pairs),
            "handled_off_per_s": off_rate,
            "handled_on_per_s": on_rate,
            "throughput_cost_pct": 100 * (1 - on_rate / off_rate) if off_rate else None,
            "cpu_us_per_event_off": off_cpu,
            "cpu_us_per_event_on": on_cpu,
            "cpu_cost_pct": 100 * (on_cpu / off_cpu - 1) if off_cpu else None,
            "sampler_cpu_cost_pct": 100 * (sampler_cpu / off_cpu - 1) if off_cpu else None,
            "py_spy_cpu_pct": statistics.median(on.profiler_cpu_pct for _, on in pairs),
            "sampler": options.sampler,
        }


def _cpu_per_event(step: Step, *, with_profiler: bool = True) -> float:
    """CPU microseconds per handled network event in ``step``: this process's threads
    and, ``with_profiler``, py-spy's process when it recorded."""
    profiler = step.profiler_cpu_pct if with_profiler else 0.0
    busy = (float(sum(step.window["cpu_percent"].values())) + profiler) / 100
    return 1e6 * busy / max(step.handled_rate, 1e-9)


def judge_step(
    options: NetworkProfileOptions,
    *,
    index: int,
    phase: str,
    rate: float,
    window: Window,
    before: dict[str, Any],
    after: dict[str, Any],
) -> Step:
    """The step's figures, and whether it saturated the node (see the module
    docstring) or found the generator short of the rate asked."""
    sent = {
        kind: after["sent"].get(kind, 0) - before["sent"].get(kind, 0) for kind in after["sent"]
    }
    generator = {
        key: after[key] - before[key]
        for key in ("not_ready", "publish_failed", "answered", "request_failed", "disconnects")
    }
    generator["cpu_pct"] = after["cpu_pct"]
    step = Step(index, phase, rate, window.seconds, sent, generator, window.as_dict())
    arrived = sum(window.lanes[n].accepted for n in NETWORK_LANES if n in window.lanes)
    handled = sum(window.lanes[n].handled for n in NETWORK_LANES if n in window.lanes)
    dropped = sum(
        window.lanes[n].full + window.lanes[n].evicted for n in NETWORK_LANES if n in window.lanes
    )
    delay = step.delay_ms("p99")
    if delay is not None and delay > options.max_delay_ms:
        step.reasons.append(f"delay p99 {delay:,.0f} ms > {options.max_delay_ms:g} ms")
    if arrived and 100 * dropped / arrived > options.max_drop_pct:
        step.reasons.append(f"dropped {100 * dropped / arrived:.1f}% of arrivals")
    if generator["disconnects"]:
        step.reasons.append(f"the connection dropped ({generator['disconnects']}x)")
    if step.sent_total and 100 * handled / step.sent_total < options.min_handled_pct:
        step.reasons.append(f"handled {100 * handled / step.sent_total:.0f}% of what was sent")
    step.saturated = bool(step.reasons) and phase not in ("flame",)
    expected = rate * window.seconds
    if expected and step.sent_total < _GENERATOR_BEHIND * expected:
        step.generator_bound = True
        if not step.saturated:
            step.reasons.append(
                f"the generator sent {step.sent_total / window.seconds:,.0f}/s of "
                f"{rate:,.0f}/s asked"
            )
    return step


_RECEIVER_COUNTERS = (
    "received",
    "delivered",
    "duplicates",
    "rejected",
    "ignored",
    "malformed_rpc",
    "oversized_message",
    "queue_full_drops",
)


_INBOUND_REQUEST_COUNTERS = (
    "inbound_requests",
    "inbound_rejected_busy",
    "inbound_invalid",
    "inbound_read_timeouts",
)


def _received_gossip(node: Node) -> dict[str, int]:
    """The node's driver counters that say what became of received gossip and requests."""
    driver = node.report().driver
    gossip, requests = driver.get("gossipsub", {}), driver.get("reqresp", {})
    return {
        **{key: int(gossip.get(key, 0)) for key in _RECEIVER_COUNTERS},
        **{key: int(requests.get(key, 0)) for key in _INBOUND_REQUEST_COUNTERS},
    }


def _gossip_arrivals(node: Node) -> int:
    """Gossip accepted into the node's lanes so far."""
    stats = node.mailbox_statistics()
    if stats is None:
        return 0
    gossip = (ATTESTATIONS, AGGREGATES, BLOCKS)
    return sum(lane.accepted + lane.rejected_full for lane in stats.lanes if lane.name in gossip)


def _network_counts(node: Node) -> tuple[int, int]:
    """(accepted, depth) over the network lanes."""
    stats = node.mailbox_statistics()
    if stats is None:
        return 0, 0
    lanes = [lane for lane in stats.lanes if lane.name in NETWORK_LANES]
    return sum(lane.accepted for lane in lanes), sum(lane.depth for lane in lanes)


def _thread_shares(
    stacks: list[flamegraph.Stack], sample_rate: int, seconds: float
) -> list[dict[str, Any]]:
    """Per thread of the flame graph: samples and the share of the time it ran Python."""
    expected = sample_rate * seconds or 1.0
    names = {stack.thread_id: stack.thread_name for stack in stacks}
    return [
        {"thread": names[tid], "id": tid, "samples": count, "busy_pct": 100 * count / expected}
        for tid, count in flamegraph.thread_samples(stacks).most_common()
    ]


def _sample_dict(sample: Any) -> dict[str, Any]:
    return {
        "t": round(sample.t, 3),
        "seconds": sample.seconds,
        "label": sample.label,
        "lanes": sample.lanes,
        "loop_lag_max_ms": sample.loop_lag_max_ms,
        "gil_wait_p99_ms": sample.gil_wait_p99_ms,
        "gc_pause_max_ms": sample.gc_pause_max_ms,
        "cpu": sample.cpu,
        "rss_mb": sample.rss_mb,
    }


class PySpyRecorder:
    """py-spy recording this process's every thread for a while (loop thread)."""

    name = "py-spy"

    def __init__(self, sample_rate: int, seconds: float, directory: Path) -> None:
        from lean_p2p.tools.profile import py_spy_path

        self._binary = py_spy_path()
        self._rate = sample_rate
        self._seconds = seconds
        self._output = directory / "flame.raw.txt"
        self._process: asyncio.subprocess.Process | None = None

    @property
    def available(self) -> bool:
        return self._binary is not None

    async def start(self) -> None:
        assert self._binary is not None
        self._output.unlink(missing_ok=True)
        from lean_p2p.tools.profile import py_spy_record

        self._process = await asyncio.create_subprocess_exec(
            *py_spy_record(self._binary, self._rate, self._seconds + 1, self._output),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        # py-spy needs a moment to attach; the step's samples start once it has.
        await asyncio.sleep(0.3)

    def cpu_seconds(self) -> float:
        """py-spy's CPU time so far (0 when it is not running)."""
        process = self._process
        return process_cpu_seconds(process.pid) if process is not None else 0.0

    async def finish(self) -> tuple[str, str | None]:
        process = self._process
        if process is None:
            return "", "py-spy did not start"
        _, errors = await process.communicate()
        if process.returncode != 0 or not self._output.exists():
            return "", f"py-spy failed ({process.returncode}): {errors.decode(errors='replace')}"
        # py-spy's file may hold megabytes of stacks: read it off the loop.
        return await asyncio.to_thread(self._output.read_text), None


class FrameRecorder:
    """py-spy's stand-in where it is not installed: a thread of this process that reads
    every thread's Python stack (``sys._current_frames``) ``sample_rate`` times a
    second and writes py-spy's collapsed format, so the same flame graph follows.

    Its costs are this process's: each sample holds the GIL while it walks the stacks
    (tens of microseconds for a node's few threads), and its thread shows in the CPU
    table as ``frame-sampler``. Unlike py-spy it cannot tell a waiting thread from a
    running one, so waits show as wide frames (the verdict skips the known ones).
    """

    available = True
    name = "frames"

    def __init__(self, sample_rate: int, seconds: float, directory: Path) -> None:
        self._period = 1 / sample_rate
        self._seconds = seconds
        self._output = directory / "flame.raw.txt"
        self._counts: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._roots = _import_roots()

    async def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="frame-sampler", daemon=True)
        self._thread.start()

    def cpu_seconds(self) -> float:
        return 0.0  # in this process: already in its CPU per thread

    @property
    def samples(self) -> int:
        """Stacks taken so far (any thread; a few may be in flight)."""
        return sum(self._counts.copy().values())

    async def finish(self) -> tuple[str, str | None]:
        self._stop.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)
        raw = "".join(f"{stack} {count}\n" for stack, count in self._counts.items())
        await asyncio.to_thread(self._output.write_text, raw)
        return raw, None

    def _run(self) -> None:
        me = threading.get_ident()
        deadline = time.monotonic() + self._seconds
        while not self._stop.wait(self._period) and time.monotonic() < deadline:
            threads = {t.ident: t for t in threading.enumerate()}
            for ident, frame in sys._current_frames().items():
                thread = threads.get(ident)
                if ident == me or thread is None:
                    continue
                frames: list[str] = []
                walked: FrameType | None = frame
                while walked is not None:
                    code = walked.f_code
                    where = _short_path(code.co_filename, self._roots)
                    frames.append(f"{code.co_qualname} ({where}:{walked.f_lineno})")
                    walked = walked.f_back
                head = f"thread ({thread.native_id}): {thread.name}"
                self._counts[";".join([head, *reversed(frames)])] += 1


def _short_path(filename: str, roots: list[str]) -> str:
    """A source path as py-spy prints it: relative to the import root it lies under."""
    for root in roots:
        if filename.startswith(root):
            return filename[len(root) :]
    return filename


def _import_roots() -> list[str]:
    """Where modules are imported from: ``sys.path``, and the parent of every loaded
    top-level package (an editable install is found by a hook, not by ``sys.path``);
    longest first."""
    roots = {entry.rstrip("/") + "/" for entry in sys.path if entry}
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if "." not in name and path and path.endswith(f"/{name}/__init__.py"):
            roots.add(path[: -len(f"{name}/__init__.py")])
    return sorted(roots, key=len, reverse=True)


def recorder(
    kind: str, sample_rate: int, seconds: float, directory: Path
) -> PySpyRecorder | FrameRecorder:
    """The stack recorder ``kind`` names: "py-spy", or "frames" (:class:`FrameRecorder`)."""
    if kind == "frames":
        return FrameRecorder(sample_rate, seconds, directory)
    return PySpyRecorder(sample_rate, seconds, directory)


def default_sampler() -> str:
    """py-spy where it is installed, else the in-process frame sampler."""
    from lean_p2p.tools.profile import py_spy_path

    return "py-spy" if py_spy_path() is not None else "frames"


def bottleneck_and_verdict(result: NetworkProfile) -> None:
    """Fill in ``result.bottleneck`` and ``result.verdict`` from its steps."""
    steps = [s for s in result.steps if s.phase in ("ramp", "refine", "fixed")]
    if not steps:
        result.verdict = "No step ran: nothing to say."
        return
    saturated = [s for s in steps if s.saturated]
    judged = min(saturated, key=lambda s: s.offered_rate) if saturated else steps[-1]
    result.capacity = max(s.handled_rate for s in steps)
    cpu = judged.window["cpu_percent"]
    python_threads = {k: v for k, v in cpu.items() if k != "sampler"}
    thread, busy = max(python_threads.items(), key=lambda kv: kv[1], default=("loop", 0.0))
    tid = _thread_id(thread)
    functions = (
        flamegraph.top_functions(result.flame_stacks, tid, 3, skip_waiting=True) if tid else []
    )
    result.bottleneck = {
        "generator_cpu_pct": judged.generator.get("cpu_pct"),
        "cores": os.cpu_count(),
        "step": judged.index,
        "thread": thread,
        "cpu_pct": busy,
        "process_python_cpu_pct": sum(python_threads.values()),
        "top_functions": functions,
    }
    together = sum(python_threads.values())
    first = min(steps, key=lambda s: s.offered_rate)
    waits = (first.window["gil_wait_ms"]["p99"], judged.window["gil_wait_ms"]["p99"])
    shared = (
        f" The process's threads together used {together:.0f}% of one core; they share "
        "one GIL, and the time it takes to hand it over counts for neither"
        + (
            f" (a thread of the process waited p99 {waits[1]:.1f} ms to run again, against "
            f"{waits[0]:.1f} ms at {first.offered_rate:,.0f}/s)."
            if None not in waits
            else "."
        )
        if together >= _GIL_BOUND_PCT
        else ""
    )
    generator_cpu = judged.generator.get("cpu_pct", 0.0)
    machine = 100 * (os.cpu_count() or 1)
    used = sum(cpu.values()) + generator_cpu
    cores = (
        f" This process and the load generator together used {used:.0f}% of the "
        f"machine's {machine:.0f}%: the machine's cores are the limit too (a generator "
        "on another machine would leave the node more)."
        if used >= _MACHINE_BOUND * machine
        else ""
    )
    listed = "; ".join(f"{f['function']} {f['own_pct']:.0f}%" for f in functions)
    where = f"the {thread} thread ({busy:.0f}% of a core at {judged.offered_rate:,.0f}/s)"
    tops = f" Its top functions by own samples: {listed}." if listed else ""
    if saturated:
        if result.saturation_rate is not None:
            good = next(s for s in steps if s.offered_rate == result.saturation_rate)
            start = (
                f"Saturates above {result.saturation_rate:,.0f} events/s offered "
                f"({good.handled_rate:,.0f}/s handled there)"
            )
        else:
            start = f"Saturated already at the first rate, {judged.offered_rate:,.0f} events/s"
        result.verdict = (
            f"{start}; at {judged.offered_rate:,.0f}/s: {', '.join(judged.reasons)}. "
            f"The most it handled in a step: {result.capacity:,.0f}/s. "
            f"Bottleneck: {where}.{tops}{shared}{cores}"
        )
    elif result.generator_bound_at is not None:
        result.verdict = (
            f"Not saturated: the load generator could not send more than "
            f"{judged.sent_total / judged.seconds:,.0f}/s (asked {judged.offered_rate:,.0f}/s), "
            f"and the node kept up. Busiest: {where}.{tops}"
        )
    else:
        result.verdict = (
            f"Not saturated up to {judged.offered_rate:,.0f} events/s. Busiest: {where}.{tops}"
        )
    if result.interrupted:
        result.verdict = "Interrupted: partial. " + result.verdict


def _thread_id(name: str) -> int | None:
    if name == "loop":
        return threading.get_native_id()  # the profile runs on the node's loop thread
    for thread in threading.enumerate():
        if thread.name == name:
            return thread.native_id
    return None


async def profile_node(
    node: Node,
    generator: LoadGenerator,
    options: NetworkProfileOptions,
    *,
    out: Path,
    stop: asyncio.Event | None = None,
    progress: Progress | None = None,
) -> NetworkProfile:
    """Ramp ``generator``'s load on a started ``node`` already connected to it (the
    node's loop thread). An embedder's own node works as well as the command's."""
    ramp = _Ramp(
        node,
        generator,
        options=options,
        out=out,
        stop=stop or asyncio.Event(),
        progress=progress or Progress("profile"),
    )
    result = await ramp.run()
    result.interrupted = ramp.stop.is_set()
    bottleneck_and_verdict(result)
    return result


async def wait_until_flowing(node: Node, limit: float = 60.0) -> None:
    """Until the node has a peer and has handled gossip from it (loop thread)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        stats = node.mailbox_statistics()
        attestations = (
            next((lane.handled for lane in stats.lanes if lane.name == ATTESTATIONS), 0)
            if stats is not None
            else 0
        )
        if node.p2p.statistics().peers and attestations:
            return
        await asyncio.sleep(0.1)
    raise TimeoutError(f"no gossip reached the node within {limit:.0f} s")


async def profile_network(
    options: NetworkProfileOptions, out: Path, stop: asyncio.Event
) -> NetworkProfile:
    """The command's run: a generator process, a node under test here, the ramp."""
    from lean_p2p.node.config import GenesisSpec, NodeConfig
    from lean_p2p.node.node import Node
    from lean_p2p.wire.keys import NodeKey

    progress = Progress("profile")
    progress.update("starting the load generator and the node", force=True)
    # A genesis just ahead: both nodes start before it, as a fresh devnet does.
    genesis_time = int(time.time()) + 3
    generator = await LoadGenerator.start(
        genesis_time,
        options.validators,
        out / "loadgen.log",
        own_validators=options.generator_validators,
        loop=options.loop,
    )
    restore = _split_cores(generator.pid) if options.pin_cores else None
    with INTERRUPTS.cleanup_on_exit(generator.kill):
        try:
            config = NodeConfig(
                name="profiled",
                key=NodeKey.generate(),
                genesis=GenesisSpec.placeholder(genesis_time, options.validators),
                bootnodes=(generator.address,),
            )
            slowing = threading.Event()
            slowing.set()
            hook = (
                deliberately_slow_handler(options.slow_handler_us, slowing)
                if options.slow_handler_us
                else None
            )
            node = Node(config, serve_api=False, on_handled=hook)
            await node.start()
            try:
                progress.update("waiting for the first gossip", force=True)
                await wait_until_flowing(node)
                result = await profile_node(
                    node, generator, options, out=out, stop=stop, progress=progress
                )
            finally:
                slowing.clear()  # the stop drains the backlog at the node's own pace
                await node.stop()
            result.lost_events = node.report().lost_events
        finally:
            await generator.stop()
            if restore is not None:
                _pin_process(os.getpid(), restore)
    progress.done()
    return result


def _split_cores(generator_pid: int) -> set[int] | None:
    """Give the generator half the cores and this process the other half (on two cores:
    one each), as if the generator ran on another machine: two processes sharing cores
    swing each other's rates from run to run. Returns this process's cores before,
    or None where there is only one core."""
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        return None
    half = len(cores) // 2
    _pin_process(generator_pid, set(cores[half:]))
    _pin_process(os.getpid(), set(cores[:half]))
    return set(cores)


def _pin_process(pid: int, cores: set[int]) -> None:
    """Every thread of ``pid`` onto ``cores`` (threads started later inherit it)."""
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return
    for tid in tids:
        with contextlib.suppress(OSError):  # the thread ended
            os.sched_setaffinity(int(tid), cores)

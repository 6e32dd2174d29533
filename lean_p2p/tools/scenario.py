"""``lean-p2p devnet --scenario FILE``: a devnet run through faults on a timeline, checked.

Main thread: the command's loop runs the :class:`~lean_p2p.tools.faultnet.FaultNetwork`
(every datagram between two nodes passes through it), the timeline, and the polling of
each node's report; the nodes are ``lean-p2p node`` processes, as in ``lean-p2p
devnet``, each told to dial every other node through its relay (``--bootnode``) and to
keep its chain in a database, so that a killed node restarts from it.

A scenario is a small YAML file (``scenarios/`` holds the ones we ship)::

    description: a 2|2 split for 10 slots, then heal
    nodes: 4
    slots: 30            # how long the run lasts, in slots after genesis
    seed: 1              # the faults' random draws (a replay draws the same)
    signatures: real     # XMSS keys (test scheme), every node verifies; or mocked
    links: {}            # faults of every link from the start (LinkFaults fields)
    clock_skew: {0: 1.5} # node 0's clock runs 1.5 s ahead, from its start
    events:
      - {slot: 8, partition: [[0, 1], [2, 3]]}
      - {slot: 18, heal: true}
      - {slot: 10, link: {between: [0, 2], loss: 0.1, delay_ms: 50}}
      - {slot: 12, kill: 3}
      - {slot: 17, restart: 3}
    expect:
      finality_stalls_during_partition: true
      heads_converge_within: 2         # slots after the last heal: one head again
      justification_resumes_within: 4  # slots after the last heal
      finality_resumes_within: 10      # slots after the last heal
      one_head: true                   # at the end, and one finalized root
      back_at_head_within: 5           # slots after each restart
      max_finality_lag: 6              # head minus finalized, every node, every second
      finality_lag_beyond_clean: 2     # ... at most this much more than the clean twin's
      rss_beyond_clean: 1.5            # every node's peak RSS against the clean twin's

Nodes are named by index. Whatever the scenario expects, the run also checks what must
hold under every scenario: no node process ended badly but those it killed, no event
accepted by a node's mailbox was lost, and every node's resident memory is sampled
each second (its peak is reported). The end is a summary (printed, and JSON with
``--json``) and an SVG plot of each node's justified and finalized slot over time with
the faults marked.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import json
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from lean_p2p.consensus.config import MILLISECONDS_PER_SLOT
from lean_p2p.crypto import KeyGenerationStopped
from lean_p2p.node.config import write_devnet
from lean_p2p.node.sampling import cpu_seconds, process_rss_bytes
from lean_p2p.tools.devnet import (
    DevnetOptions,
    DevnetProcess,
    free_ports,
    kill_all,
    make_keystore,
    poll_report,
    read_report,
    relay_stop,
    stop_all,
)
from lean_p2p.tools.faultnet import CLEAR, FaultNetwork, LinkFaults
from lean_p2p.tools.running import INTERRUPTS

__all__ = [
    "EXPECTATIONS",
    "Scenario",
    "ScenarioError",
    "ScenarioEvent",
    "evaluate",
    "load_scenario",
    "parse_scenario",
    "plot_svg",
    "run_scenario",
]

SLOT_SECONDS = MILLISECONDS_PER_SLOT / 1000
#: what a scenario may expect, and the type of its value
EXPECTATIONS: dict[str, type] = {
    "finality_stalls_during_partition": bool,
    "finality_resumes_within": int,
    "heads_converge_within": int,
    "justification_resumes_within": int,
    "one_head": bool,
    "back_at_head_within": int,
    "max_finality_lag": int,
    # against the same nodes run first without any fault (the clean twin)
    "finality_lag_beyond_clean": int,
    "rss_beyond_clean": float,
}
_EVENT_KINDS = ("partition", "heal", "link", "kill", "restart")
_FAULT_FIELDS = {item.name for item in dataclasses.fields(LinkFaults)}
#: seconds the end waits for the nodes to agree on one head before judging
_SETTLE_S = 8.0


class ScenarioError(ValueError):
    """The scenario file is not valid; the message names the file and the field."""


@dataclass(frozen=True, slots=True)
class ScenarioEvent:
    slot: int
    kind: str  # one of _EVENT_KINDS
    #: partition: the groups; link: the two nodes (empty: every link); kill/restart: one
    nodes: tuple[tuple[int, ...], ...] = ()
    faults: LinkFaults = CLEAR

    def describe(self) -> str:
        if self.kind == "partition":
            return "partition " + " | ".join(",".join(map(str, g)) for g in self.nodes)
        if self.kind == "link":
            where = "-".join(map(str, self.nodes[0])) if self.nodes else "every link"
            changed = {
                name: value
                for name, value in self.faults.as_dict().items()
                if value != getattr(CLEAR, name)
            }
            return f"link {where}: {changed or 'clear'}"
        if self.kind in ("kill", "restart"):
            return f"{self.kind} {self.nodes[0][0]}"
        return self.kind


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    description: str
    nodes: int
    validators: int
    slots: int
    seed: int
    links: LinkFaults
    events: tuple[ScenarioEvent, ...]
    expect: Mapping[str, Any] = field(default_factory=dict)
    #: node index -> seconds its clock runs ahead (``lean-p2p node --clock-skew``)
    clock_skew: Mapping[int, float] = field(default_factory=dict)
    #: "real": every validator signs with XMSS keys (test scheme) made for the run, and
    #: every node verifies; "mocked": placeholder signatures, nothing verified
    signatures: str = "real"


def load_scenario(path: Path) -> Scenario:
    """Read and check a scenario file; :class:`ScenarioError` says what is wrong."""
    try:
        document = yaml.safe_load(path.read_text())
    except OSError as error:
        raise ScenarioError(f"{path}: cannot read it: {error.strerror}") from error
    except yaml.YAMLError as error:
        raise ScenarioError(f"{path}: not YAML: {error}") from error
    return parse_scenario(document, name=path.stem, where=str(path))


def parse_scenario(document: object, *, name: str, where: str) -> Scenario:
    if not isinstance(document, dict):
        raise ScenarioError(f"{where}: expected a mapping at the top")
    unknown = set(document) - {
        "description", "nodes", "validators", "slots", "seed", "links", "events", "expect",
        "clock_skew", "signatures",
    }  # fmt: skip
    if unknown:
        raise ScenarioError(f"{where}: unknown keys {sorted(unknown)}")
    nodes = _integer(document, "nodes", where, minimum=2)
    validators = _integer(document, "validators", where, minimum=1, default=nodes)
    slots = _integer(document, "slots", where, minimum=4)
    events = tuple(
        sorted(
            (
                _event(item, f"{where}: events[{index}]", nodes, slots)
                for index, item in enumerate(_list(document.get("events", []), "events", where))
            ),
            key=lambda event: event.slot,
        )
    )
    expect = document.get("expect", {}) or {}
    if not isinstance(expect, dict):
        raise ScenarioError(f"{where}: expect: expected a mapping")
    for key, given in list(expect.items()):
        kind = EXPECTATIONS.get(key)
        if kind is None:
            raise ScenarioError(f"{where}: expect: unknown {key!r}; known: {sorted(EXPECTATIONS)}")
        value = float(given) if kind is float and type(given) is int else given
        if type(value) is not kind:
            raise ScenarioError(f"{where}: expect.{key}: expected {kind.__name__}, got {value!r}")
        expect[key] = value
    wants_partition = expect.get("finality_stalls_during_partition") or any(
        key in expect
        for key in (
            "finality_resumes_within",
            "heads_converge_within",
            "justification_resumes_within",
        )
    )
    if wants_partition and not any(event.kind == "partition" for event in events):
        raise ScenarioError(f"{where}: expect: a partition expectation needs a partition")
    if "back_at_head_within" in expect and not any(e.kind == "restart" for e in events):
        raise ScenarioError(f"{where}: expect.back_at_head_within needs a restart event")
    return Scenario(
        name=name,
        description=str(document.get("description", "")),
        nodes=nodes,
        validators=validators,
        slots=slots,
        seed=_integer(document, "seed", where, minimum=0, default=0),
        links=_faults(document.get("links", {}) or {}, f"{where}: links"),
        events=events,
        expect=dict(expect),
        clock_skew=_clock_skew(document.get("clock_skew", {}) or {}, where, nodes),
        signatures=_signatures(document.get("signatures", "real"), where),
    )


def _signatures(value: object, where: str) -> str:
    if value not in ("real", "mocked"):
        raise ScenarioError(f"{where}: signatures: expected real or mocked, got {value!r}")
    return str(value)


def _clock_skew(value: object, where: str, nodes: int) -> dict[int, float]:
    if not isinstance(value, dict):
        raise ScenarioError(f"{where}: clock_skew: expected a mapping of node to seconds")
    skew: dict[int, float] = {}
    for node, seconds in value.items():
        index = _node(node, f"{where}: clock_skew", nodes)
        if type(seconds) not in (int, float) or abs(seconds) > 60:
            raise ScenarioError(
                f"{where}: clock_skew.{node}: expected seconds within ±60, got {seconds!r}"
            )
        skew[index] = float(seconds)
    return skew


def _integer(
    document: Mapping[str, Any], key: str, where: str, *, minimum: int, default: int | None = None
) -> int:
    value = document.get(key, default)
    if type(value) is not int or value < minimum:
        raise ScenarioError(f"{where}: {key}: expected an integer >= {minimum}, got {value!r}")
    return value


def _list(value: object, key: str, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise ScenarioError(f"{where}: {key}: expected a list")
    return value


def _node(value: object, where: str, nodes: int) -> int:
    if type(value) is not int or not 0 <= value < nodes:
        raise ScenarioError(f"{where}: expected a node index 0..{nodes - 1}, got {value!r}")
    return value


def _faults(value: object, where: str) -> LinkFaults:
    if not isinstance(value, dict):
        raise ScenarioError(f"{where}: expected a mapping of link faults")
    unknown = set(value) - _FAULT_FIELDS
    if unknown:
        raise ScenarioError(
            f"{where}: unknown fields {sorted(unknown)}; known {sorted(_FAULT_FIELDS)}"
        )
    try:
        return LinkFaults(**value)
    except (TypeError, ValueError) as error:
        raise ScenarioError(f"{where}: {error}") from error


def _event(item: object, where: str, nodes: int, slots: int) -> ScenarioEvent:
    if not isinstance(item, dict):
        raise ScenarioError(f"{where}: expected a mapping like {{slot: 8, heal: true}}")
    slot = item.get("slot")
    if type(slot) is not int or not 0 <= slot < slots:
        raise ScenarioError(f"{where}: slot: expected an integer 0..{slots - 1}, got {slot!r}")
    kinds = [kind for kind in _EVENT_KINDS if kind in item]
    if len(kinds) != 1 or set(item) - {"slot", *_EVENT_KINDS}:
        raise ScenarioError(f"{where}: expected slot and exactly one of {list(_EVENT_KINDS)}")
    kind = kinds[0]
    value = item[kind]
    if kind == "partition":
        groups = tuple(
            tuple(_node(node, f"{where}: partition", nodes) for node in _list(g, "group", where))
            for g in _list(value, "partition", where)
        )
        flat = [node for group in groups for node in group]
        if len(groups) < 2 or len(flat) != len(set(flat)):
            raise ScenarioError(f"{where}: partition: two or more groups, no node twice")
        return ScenarioEvent(slot, kind, groups)
    if kind == "heal":
        if value is not True:
            raise ScenarioError(f"{where}: heal: write 'heal: true'")
        return ScenarioEvent(slot, kind)
    if kind == "link":
        if not isinstance(value, dict):
            raise ScenarioError(f"{where}: link: expected a mapping of link faults")
        fields = dict(value)
        between = fields.pop("between", None)
        pair: tuple[tuple[int, ...], ...] = ()
        if between is not None:
            ends = tuple(
                _node(node, f"{where}: link.between", nodes)
                for node in _list(between, "between", where)
            )
            if len(ends) != 2 or ends[0] == ends[1]:
                raise ScenarioError(f"{where}: link.between: two different nodes")
            pair = (ends,)
        return ScenarioEvent(slot, kind, pair, _faults(fields, f"{where}: link"))
    return ScenarioEvent(slot, kind, ((_node(value, f"{where}: {kind}", nodes),),))


# -------------------------------------------------------------------- the run


@dataclass(slots=True)
class _Sample:
    """One second of the run: every node's (head, justified, finalized) or None."""

    elapsed: float  # seconds after genesis
    slot: float  # elapsed in slots
    nodes: list[dict[str, Any] | None]
    rss_bytes: list[int | None]
    #: each node process's CPU seconds so far (user + system; None: not running)
    cpu_seconds: list[float | None] = field(default_factory=list)


async def run_scenario(
    scenario: Scenario,
    *,
    directory: Path | None = None,
    genesis_delay: float = 10.0,
    log_level: str = "WARNING",
    show: Callable[[str], None] = print,
    stop: asyncio.Event | None = None,
) -> dict[str, Any]:
    """Run ``scenario`` to its end (or until ``stop``), every node stopped in order; the
    summary holds the samples, the checks and whether each passed. A scenario that
    compares with a clean run (``*_beyond_clean``) first runs its clean twin: the same
    nodes and length, no fault at all (in ``DIR/clean``)."""
    stop = stop if stop is not None else asyncio.Event()
    directory = (directory or Path(tempfile.mkdtemp(prefix=f"lean-p2p-{scenario.name}-"))).resolve()
    clean: dict[str, Any] | None = None
    if any(key.endswith("_beyond_clean") for key in scenario.expect):
        twin = dataclasses.replace(
            scenario,
            name=f"{scenario.name}-clean",
            links=CLEAR,
            events=(),
            clock_skew={},
            expect={},
        )
        show(f"scenario {scenario.name}: first its clean twin, for the comparison")
        ran = await _run_once(twin, directory / "clean", genesis_delay, log_level, show, stop)
        clean = {
            key: ran[key]
            for key in ("finality_lag", "rss_peak_bytes", "cpu_percent", "passed", "plot")
        }
        if stop.is_set():
            ran["clean"] = clean
            return ran
    return await _run_once(scenario, directory, genesis_delay, log_level, show, stop, clean=clean)


async def _run_once(  # noqa: PLR0917 (the options of run_scenario, passed on)
    scenario: Scenario,
    directory: Path,
    genesis_delay: float,
    log_level: str,
    show: Callable[[str], None],
    stop: asyncio.Event,
    *,
    clean: dict[str, Any] | None = None,
) -> dict[str, Any]:
    await asyncio.to_thread(directory.mkdir, parents=True, exist_ok=True)
    options = DevnetOptions(
        nodes=scenario.nodes,
        validators=scenario.validators,
        duration=scenario.slots * SLOT_SECONDS,
        directory=directory,
        log_level=log_level,
        signatures=scenario.signatures,
        seed=f"scenario-{scenario.seed}".encode(),  # the same keys in a replay
        data_dir=directory / "data",
    )
    validator_keys = None
    if scenario.signatures == "real":
        # CPU work: a worker thread (the test scheme's keys take seconds, not minutes),
        # which asks ``halt`` between keys: Ctrl-C (``stop``) sets it.
        halt = threading.Event()
        relay = asyncio.ensure_future(relay_stop(stop, halt))
        try:
            validator_keys = await asyncio.to_thread(make_keystore, options, directory, show, halt)
        except KeyGenerationStopped:
            return _not_started(scenario, directory)
        finally:
            relay.cancel()
    genesis_time = int(time.time() + genesis_delay)
    quic_ports = free_ports(scenario.nodes, socket.SOCK_DGRAM)
    api_ports = free_ports(scenario.nodes, socket.SOCK_STREAM)
    entries = write_devnet(
        directory,
        nodes=scenario.nodes,
        validators=scenario.validators,
        genesis_time=genesis_time,
        quic_ports=quic_ports,
        api_ports=api_ports,
        validator_keys=validator_keys,
    )
    processes = [DevnetProcess(entry, directory) for entry in entries]
    names = [entry.name for entry in entries]
    network = FaultNetwork(dict(zip(names, quic_ports, strict=True)), seed=scenario.seed)
    await network.start()
    network.set_all_links(scenario.links)

    def node_arguments(index: int) -> list[str]:
        """A node's own arguments: its relays as bootnodes, and its clock's skew."""
        arguments = []
        if index in scenario.clock_skew:
            arguments += ["--clock-skew", str(scenario.clock_skew[index])]
        for other, entry in enumerate(entries):
            if other != index:
                port = network.dial_port(names[index], entry.name)
                address = f"/ip4/127.0.0.1/udp/{port}/quic-v1/p2p/{entry.key.peer_id}"
                arguments += ["--bootnode", address]
        return arguments

    show(
        f"scenario {scenario.name}: {scenario.nodes} nodes, {scenario.validators} validators, "
        f"{scenario.slots} slots ({scenario.slots * SLOT_SECONDS:.0f} s), "
        f"{len(scenario.events)} events, seed {scenario.seed}, {scenario.signatures} "
        f"signatures; genesis in "
        f"{genesis_time - time.time():.0f} s; files in {directory}"
    )
    samples: list[_Sample] = []
    applied: list[dict[str, Any]] = []
    killed: set[int] = set()
    restarts: list[tuple[int, int]] = []  # (node, slot)
    with INTERRUPTS.cleanup_on_exit(lambda: kill_all(processes)):
        try:
            for index, process in enumerate(processes):
                process.start(options, node_arguments(index))
            pending = list(scenario.events)
            end = genesis_time + scenario.slots * SLOT_SECONDS
            async with aiohttp.ClientSession() as session:
                while time.time() < end and not stop.is_set():
                    elapsed = time.time() - genesis_time
                    while pending and elapsed >= pending[0].slot * SLOT_SECONDS:
                        event = pending.pop(0)
                        await _apply(
                            event, network, processes, options, node_arguments, killed, restarts
                        )
                        applied.append(
                            {"slot": event.slot, "at": round(elapsed, 2), "event": event.describe()}
                        )
                        show(f"t={elapsed:.1f}  slot {event.slot}: {event.describe()}")
                    samples.append(await _sample(session, processes, api_ports, genesis_time))
                    show(_progress(samples[-1], network))
                    # A sample a second, and each event on its time, not up to a second late.
                    wait = 1.0
                    if pending:
                        due = genesis_time + pending[0].slot * SLOT_SECONDS - time.time()
                        wait = min(wait, max(due, 0.0))
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), wait)
                views = await _settle(session, api_ports, stop)
        finally:
            exit_codes = await stop_all(processes)
            network.close()
    reports = [read_report(process.report_path) for process in processes]
    summary = _summary(
        scenario, samples, applied, views, reports, exit_codes, killed, restarts, network, clean
    )
    summary["directory"] = str(directory)
    summary["interrupted"] = stop.is_set()
    plot = directory / f"{scenario.name}.svg"
    plot.write_text(plot_svg(summary))
    summary["plot"] = str(plot)
    return summary


def _not_started(scenario: Scenario, directory: Path) -> dict[str, Any]:
    """The summary of a run stopped before any node started."""
    return {
        "scenario": scenario.name,
        "directory": str(directory),
        "interrupted": True,
        "checks": [],
        "passed": False,
        "plot": None,
        "clean": None,
    }


async def _apply(  # noqa: PLR0917 (one call site, every part of the run it touches)
    event: ScenarioEvent,
    network: FaultNetwork,
    processes: Sequence[DevnetProcess],
    options: DevnetOptions,
    node_arguments: Callable[[int], list[str]],
    killed: set[int],
    restarts: list[tuple[int, int]],
) -> None:
    names = [process.name for process in processes]
    if event.kind == "partition":
        network.partition([[names[node] for node in group] for group in event.nodes])
    elif event.kind == "heal":
        network.heal()
    elif event.kind == "link":
        if event.nodes:
            a, b = event.nodes[0]
            network.set_link(names[a], names[b], event.faults)
        else:
            network.set_all_links(event.faults)
    elif event.kind == "kill":
        node = event.nodes[0][0]
        processes[node].signal(signal.SIGKILL)
        killed.add(node)
    elif event.kind == "restart":
        node = event.nodes[0][0]
        process = processes[node].process
        if process is not None and process.poll() is None:  # still up: kill it first
            process.kill()
            killed.add(node)
        if process is not None:  # reaped off the loop: wait() blocks
            await asyncio.to_thread(process.wait, 10)
        processes[node].start(options, node_arguments(node))
        restarts.append((node, event.slot))


async def _sample(
    session: aiohttp.ClientSession,
    processes: Sequence[DevnetProcess],
    api_ports: Sequence[int],
    genesis_time: int,
) -> _Sample:
    views = await _views(session, api_ports)
    elapsed = time.time() - genesis_time
    # /proc reads off the loop: it is also the relays' loop, and every datagram waits.
    rss, cpu = await asyncio.to_thread(_process_figures, processes)
    return _Sample(elapsed, elapsed / SLOT_SECONDS, views, rss, cpu)


async def _views(
    session: aiohttp.ClientSession, api_ports: Sequence[int]
) -> list[dict[str, Any] | None]:
    """Every node's head, justified and finalized checkpoints (None: not answering)."""
    reports = await asyncio.gather(*(poll_report(session, port) for port in api_ports))
    return [
        None
        if report is None
        else {
            "head_slot": report["head_slot"],
            "head_root": report["head_root"],
            "justified_slot": report["justified_slot"],
            "finalized_slot": report["finalized_slot"],
            "finalized_root": report["finalized_root"],
            "lost_events": report.get("lost_events", 0),
        }
        for report in reports
    ]


def _process_figures(
    processes: Sequence[DevnetProcess],
) -> tuple[list[int | None], list[float | None]]:
    """Every node process's resident memory and CPU seconds so far (a worker thread)."""
    rss = [_rss_bytes(process) for process in processes]
    cpu = [
        cpu_seconds(f"/proc/{process.process.pid}/stat") if process.process is not None else None
        for process in processes
    ]
    return rss, cpu


def _cpu_percent(samples: Sequence[_Sample], node: int) -> float | None:
    """A node's mean CPU use after genesis, in % of one core: the sum of its increases
    from one sample to the next (a restart starts its count again, so a fall is left
    out), over the time they span."""
    used = spanned = 0.0
    for earlier, later in itertools.pairwise(samples):
        before, after = earlier.cpu_seconds[node], later.cpu_seconds[node]
        if earlier.elapsed >= 0 and before is not None and after is not None and after >= before:
            used += after - before
            spanned += later.elapsed - earlier.elapsed
    return round(100 * used / spanned, 1) if spanned else None


def _rss_bytes(process: DevnetProcess) -> int | None:
    popen = process.process
    if popen is None or popen.poll() is not None:
        return None
    return process_rss_bytes(popen.pid)


async def _settle(
    session: aiohttp.ClientSession, api_ports: Sequence[int], stop: asyncio.Event
) -> list[dict[str, Any] | None]:
    """The nodes' last views, once they agree on one head (or after _SETTLE_S)."""
    deadline = time.monotonic() + _SETTLE_S
    while True:
        views = await _views(session, api_ports)
        heads = {view["head_root"] for view in views if view is not None}
        if (len(heads) == 1 and None not in views) or time.monotonic() > deadline or stop.is_set():
            return views
        await asyncio.sleep(0.5)


def _progress(sample: _Sample, network: FaultNetwork) -> str:
    nodes = " ".join(
        f"{index}:{view['head_slot']}/{view['justified_slot']}/{view['finalized_slot']}"
        if view is not None
        else f"{index}:down"
        for index, view in enumerate(sample.nodes)
    )
    totals = network.totals()
    return (
        f"t={sample.elapsed:.1f}  slot={sample.slot:.1f}  nodes(head/justified/finalized)="
        f"{nodes}  datagrams: {totals.forwarded} through, {totals.lost} lost, "
        f"{totals.partitioned} cut"
    )


# -------------------------------------------------------------------- judging


def _summary(  # noqa: PLR0917 (one call site: the run's parts, gathered)
    scenario: Scenario,
    samples: Sequence[_Sample],
    applied: Sequence[dict[str, Any]],
    views: Sequence[dict[str, Any] | None],
    reports: Sequence[dict[str, Any] | None],
    exit_codes: Sequence[int | None],
    killed: set[int],
    restarts: Sequence[tuple[int, int]],
    network: FaultNetwork,
    clean: dict[str, Any] | None,
) -> dict[str, Any]:
    timeline = [
        {
            "elapsed": round(sample.elapsed, 2),
            "slot": round(sample.slot, 2),
            "nodes": sample.nodes,
            "rss_bytes": sample.rss_bytes,
        }
        for sample in samples
    ]
    summary: dict[str, Any] = {
        "scenario": scenario.name,
        "description": scenario.description,
        "nodes": scenario.nodes,
        "slots": scenario.slots,
        "seed": scenario.seed,
        "signatures": scenario.signatures,
        "events": list(applied),
        "timeline": timeline,
        "final_views": list(views),
        "exit_codes": list(exit_codes),
        "lost_events": sum((report or {}).get("lost_events", 0) for report in reports),
        "reports_missing": [i for i, report in enumerate(reports) if report is None],
        "rss_peak_bytes": [
            max((s.rss_bytes[i] or 0 for s in samples), default=0) for i in range(scenario.nodes)
        ],
        "cpu_percent": [_cpu_percent(samples, node) for node in range(scenario.nodes)],
        "finality_lag": finality_lag(timeline),
        "network": {
            f"{a}->{b}": dataclasses.asdict(stats) for (a, b), stats in network.statistics().items()
        },
        "killed": sorted(killed),
        "restarts": [{"node": node, "slot": slot} for node, slot in restarts],
        "clean": clean,
    }
    summary["checks"] = evaluate(scenario, summary)
    summary["passed"] = all(check["passed"] for check in summary["checks"])
    return summary


def evaluate(scenario: Scenario, summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every check of the run: those every scenario must pass, then its expectations.
    Each is ``{"check", "passed", "detail"}``."""
    checks: list[dict[str, Any]] = []

    def check(name: str, passed: bool, detail: str) -> None:
        checks.append({"check": name, "passed": bool(passed), "detail": detail})

    codes = summary["exit_codes"]
    # A node the scenario killed and did not restart ends killed, with no report.
    restarted = {restart["node"] for restart in summary["restarts"]}
    left_dead = {node for node in summary["killed"] if node not in restarted}
    bad = [
        i
        for i, code in enumerate(codes)
        if code not in (0, None) and not (i in left_dead and code == -signal.SIGKILL)
    ]
    missing = [i for i in summary["reports_missing"] if i not in left_dead]
    check("no_crashes", not bad and not missing,
          f"exit codes {codes}; reports missing from {missing}")  # fmt: skip
    check("no_lost_events", summary["lost_events"] == 0, f"{summary['lost_events']} lost")
    # Every datagram the relays took in is accounted for by its fate.
    unreconciled = [
        direction
        for direction, counts in summary["network"].items()
        if counts["received"]
        != counts["forwarded"] + counts["lost"] + counts["partitioned"]
        + counts["queue_dropped"] + counts["in_flight"]
    ]  # fmt: skip
    totals = {
        name: sum(counts[name] for counts in summary["network"].values())
        for name in ("received", "forwarded", "lost", "partitioned", "queue_dropped")
    }
    check("network_reconciles", not unreconciled,
          f"datagrams {totals}; unreconciled directions: {unreconciled}")  # fmt: skip
    timeline = summary["timeline"]
    expect = scenario.expect
    partitions = [e for e in scenario.events if e.kind == "partition"]
    heals = [e for e in scenario.events if e.kind == "heal"]
    if expect.get("finality_stalls_during_partition"):
        start = partitions[0].slot
        end = heals[0].slot if heals else scenario.slots
        at_start = _highest_finalized(timeline, until_slot=start + 2)
        during = _highest_finalized(timeline, until_slot=end)
        check("finality_stalls_during_partition", during <= at_start,
              f"highest finalized slot {at_start} two slots into the partition, "
              f"{during} at the heal (slot {end})")  # fmt: skip
    heal = heals[-1].slot if heals else partitions[-1].slot if partitions else 0
    for key, what in (
        ("finality_resumes_within", "finalized_slot"),
        ("justification_resumes_within", "justified_slot"),
    ):
        if key in expect:
            _resumes(check, key, what, timeline, heal=heal, within=expect[key])
    if "heads_converge_within" in expect:
        within = expect["heads_converge_within"]
        converged = next(
            (
                s["slot"]
                for s in timeline
                if s["slot"] >= heal
                and None not in s["nodes"]
                and len({view["head_root"] for view in s["nodes"]}) == 1
            ),
            None,
        )
        check("heads_converge_within", converged is not None and converged <= heal + within,
              f"one head at slot {'never' if converged is None else round(converged, 1)}; "
              f"heal at {heal}, expected by {heal + within}")  # fmt: skip
    if expect.get("one_head"):
        # One head, and one finalized checkpoint under it, on every node.
        views = summary["final_views"]
        heads = {view["head_root"] for view in views if view is not None}
        finalized = {view["finalized_root"] for view in views if view is not None}
        answering = sum(view is not None for view in views)
        check("one_head", len(heads) == len(finalized) == 1 and None not in views,
              f"{len(heads)} heads and {len(finalized)} finalized roots among {answering} "
              f"answering nodes")  # fmt: skip
    if "back_at_head_within" in expect:
        within = expect["back_at_head_within"]
        for restart in summary["restarts"]:
            node, slot = restart["node"], restart["slot"]
            caught = next(
                (
                    s["slot"]
                    for s in timeline
                    if s["slot"] >= slot
                    and s["nodes"][node] is not None
                    and s["nodes"][node]["head_slot"] >= int(s["slot"]) - 1
                ),
                None,
            )
            check(f"back_at_head_within[{node}]", caught is not None and caught <= slot + within,
                  f"node {node} restarted at slot {slot}, at the head at slot "
                  f"{'never' if caught is None else round(caught, 1)}")  # fmt: skip
    lag = summary["finality_lag"]
    seen = "no finality at all" if lag is None else f"head minus finalized at most {lag}"
    if "max_finality_lag" in expect:
        limit = expect["max_finality_lag"]
        check("max_finality_lag", lag is not None and lag <= limit, seen)
    clean = summary.get("clean")
    if "finality_lag_beyond_clean" in expect:
        beyond = expect["finality_lag_beyond_clean"]
        clean_lag = None if clean is None else clean["finality_lag"]
        check("finality_lag_beyond_clean",
              lag is not None and clean_lag is not None and lag <= clean_lag + beyond,
              f"{seen}; the clean run {clean_lag}, allowed {beyond} more")  # fmt: skip
    if "rss_beyond_clean" in expect:
        ratio = expect["rss_beyond_clean"]
        peaks = summary["rss_peak_bytes"]
        clean_peaks = [] if clean is None else clean["rss_peak_bytes"]
        over = [
            node
            for node, (peak, clean_peak) in enumerate(zip(peaks, clean_peaks, strict=False))
            if clean_peak and peak > ratio * clean_peak
        ]
        check("rss_beyond_clean", bool(clean_peaks) and not over,
              f"peak RSS {_megabytes(peaks)} MB against the clean run's "
              f"{_megabytes(clean_peaks)} MB, at most {ratio}x; over: {over}")  # fmt: skip
    return checks


def finality_lag(timeline: Sequence[Mapping[str, Any]]) -> int | None:
    """The most any node's head was ahead of its finalized slot, from the first second
    every node had finalized something (before, the lag is the chain's start, not a
    fault's effect); None if that never happened."""
    started = next((i for i, s in enumerate(timeline) if _lowest(s, "finalized_slot") > 0), None)
    if started is None:
        return None
    return max(
        (
            view["head_slot"] - view["finalized_slot"]
            for s in timeline[started:]
            for view in s["nodes"]
            if view is not None
        ),
        default=0,
    )


def _megabytes(values: Sequence[int]) -> list[int]:
    return [round(value / 1e6) for value in values]


def _resumes(
    check: Callable[[str, bool, str], None],
    name: str,
    key: str,
    timeline: Sequence[Mapping[str, Any]],
    *,
    heal: int,
    within: int,
) -> None:
    """Every node's ``key`` (finalized or justified slot) passed what it was at the
    heal, by ``within`` slots after it."""
    before = max((_lowest(s, key) for s in timeline if s["slot"] <= heal), default=0)
    resumed = next(
        (s["slot"] for s in timeline if s["slot"] >= heal and _lowest(s, key) > before), None
    )
    what = key.removesuffix("_slot")
    check(name, resumed is not None and resumed <= heal + within,
          f"every node {what} past slot {before} at slot "
          f"{'never' if resumed is None else round(resumed, 1)}; heal at {heal}, "
          f"expected by {heal + within}")  # fmt: skip


def _highest_finalized(timeline: Sequence[Mapping[str, Any]], *, until_slot: float) -> int:
    return max(
        (
            view["finalized_slot"]
            for s in timeline
            if s["slot"] <= until_slot
            for view in s["nodes"]
            if view is not None
        ),
        default=0,
    )


def _lowest(sample: Mapping[str, Any], key: str) -> int:
    values = [view[key] for view in sample["nodes"] if view is not None]
    return min(values) if len(values) == len(sample["nodes"]) else -1


# -------------------------------------------------------------------- the plot


_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")


def plot_svg(summary: Mapping[str, Any], width: int = 900, height: int = 420) -> str:
    """Each node's justified (dashed) and finalized (solid) slot over the run's slots,
    the scenario's events marked as vertical lines: a self-contained SVG."""
    timeline = summary["timeline"]
    slots = max(summary["slots"], 1)
    top = max(
        [view["justified_slot"] for s in timeline for view in s["nodes"] if view is not None] + [1]
    )
    left, right, upper, lower = 50, 20, 30, 40

    def x(slot: float) -> float:
        return float(left + (width - left - right) * slot / slots)

    def y(value: float) -> float:
        return float(height - lower - (height - upper - lower) * value / top)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="sans-serif" font-size="11">',
        f'<text x="{left}" y="16" font-size="13">{_escape(summary["scenario"])}: justified '
        f"(dashed) and finalized (solid) slot per node</text>",
        f'<line x1="{left}" y1="{y(0)}" x2="{x(slots)}" y2="{y(0)}" stroke="#333"/>',
        f'<line x1="{left}" y1="{y(0)}" x2="{left}" y2="{y(top)}" stroke="#333"/>',
        f'<text x="{x(slots) - 30}" y="{height - 10}">slot {slots}</text>',
        f'<text x="4" y="{y(top) + 4}">{top}</text>',
    ]
    for event in summary["events"]:
        position = x(event["slot"])
        parts.append(
            f'<line x1="{position:.1f}" y1="{upper}" x2="{position:.1f}" y2="{y(0)}" '
            f'stroke="#999" stroke-dasharray="2,3"/><text x="{position + 2:.1f}" y="{upper + 10}" '
            f'fill="#555">{_escape(event["event"])}</text>'
        )
    for node in range(summary["nodes"]):
        color = _COLORS[node % len(_COLORS)]
        for key, dash in (("finalized_slot", ""), ("justified_slot", ' stroke-dasharray="5,3"')):
            points = " ".join(
                f"{x(s['slot']):.1f},{y(s['nodes'][node][key]):.1f}"
                for s in timeline
                if s["slot"] >= 0 and s["nodes"][node] is not None
            )
            if points:
                parts.append(
                    f'<polyline fill="none" stroke="{color}" stroke-width="1.5"{dash} '
                    f'points="{points}"/>'
                )
        parts.append(
            f'<text x="{width - right - 60}" y="{upper + 14 * (node + 2)}" fill="{color}">'
            f"node {node}</text>"
        )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def checks_text(summary: Mapping[str, Any]) -> str:
    """One line per check: PASS or FAIL, its name and what was seen."""
    return "\n".join(
        f"{'PASS' if check['passed'] else 'FAIL'}  {check['check']}: {check['detail']}"
        for check in summary["checks"]
    )


def write_summary(path: Path, summary: Mapping[str, Any]) -> None:
    path.write_text(json.dumps(summary, indent=2, default=str) + "\n")

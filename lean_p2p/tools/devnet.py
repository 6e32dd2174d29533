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

With ``leanspec`` > 0 the devnet is mixed: that many leanSpec nodes
(:mod:`lean_p2p.tools.leanspec`) run beside ours on the same genesis, validators
assigned round-robin over every node of either kind, each signing with the devnet's
XMSS keys (leanSpec reads the same keystore). They dial our nodes; our nodes accept
the empty proofs of leanSpec's stand-in prover (``lean-p2p node --accept-empty-proofs``).
Every node's head, justified and finalized checkpoints are polled from its
``/lean/v0/fork_choice`` each second, and once more at the end until they settle;
``implementations_agree`` says every node of either kind then stood on the same
finalized root, and ``nodes_table`` holds that last view. leanSpec's log lines at
ERROR are failures, except the explained ones
(:data:`~lean_p2p.tools.leanspec.LEANSPEC_EXPLAINED_ERRORS`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
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
from lean_p2p.tools.leanspec import (
    NODE_PREFIX,
    LeanSpecNode,
    LeanSpecUnavailable,
    error_lines,
    leanspec_environment,
    leanspec_python,
    poll_fork_choice,
)
from lean_p2p.tools.report import format_table
from lean_p2p.tools.running import INTERRUPTS

__all__ = [
    "CrossImports",
    "DevnetOptions",
    "DevnetProcess",
    "Join",
    "check_signing_options",
    "devnet_failures",
    "devnet_succeeded",
    "finality_cadence",
    "free_ports",
    "joins_table_text",
    "kill_all",
    "make_keystore",
    "mark_caught_up",
    "nodes_table_text",
    "poll_report",
    "read_report",
    "relay_stop",
    "run_devnet",
    "stop_all",
]

_STOP_TIMEOUT = 60.0
#: leanSpec stops within seconds when it does: after this, it is killed (and says so)
_LEANSPEC_STOP_TIMEOUT = 20.0


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
    #: leanSpec nodes beside ours (a mixed devnet), and the interpreter that runs them
    #: (None: the one built earlier into ``leanspec_cache``, or build it there)
    leanspec: int = 0
    leanspec_python: Path | None = None
    leanspec_cache: Path | None = None
    #: seconds after genesis at which the last node of each kind starts (None: all start
    #: together). Ours then joins through leanSpec's nodes alone, leanSpec's through ours.
    #: run leanSpec unchanged: its known defects then show (docs/interop.md)
    leanspec_stock: bool = False
    late_join: float | None = None
    #: our late joiner starts from the finalized state of a running node (leanSpec's
    #: first in a mixed devnet, else our first) over its API: checkpoint sync
    late_checkpoint_sync: bool = False
    #: seconds after genesis at which one running node of each kind is restarted
    restart_at: float | None = None
    #: our nodes keep their chains in ``data_dir/<name>`` (``lean-p2p node --data-dir``)
    data_dir: Path | None = None
    #: seconds after genesis at which every node of ours is stopped, and started again
    #: ``restart_all_down`` seconds later from its database (``data_dir``, by default
    #: ``<directory>/data``)
    restart_all_at: float | None = None
    restart_all_down: float = 2.0


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
        if options.data_dir is not None:
            command += ["--data-dir", str(options.data_dir / self.name)]
        return command

    def start(self, options: DevnetOptions, extra: Sequence[str] = ()) -> None:
        """Start it; a restart appends to its log."""
        mode = "ab" if self.process is not None else "wb"
        with self.log_path.open(mode) as log:
            self.process = subprocess.Popen(
                [*self.command(options), *extra], stdout=log, stderr=subprocess.STDOUT
            )

    def signal(self, signum: int) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signum)


#: Slots past the run's last that the validators' keys must still sign: the nodes run on
#: through the settling polls (up to 6 s) and the ordered stop, leanSpec's nodes first
#: (up to 20 s). A key that ran out there once failed a node (its votes at slot 32 of a
#: devnet whose keys stopped at 31).
_END_MARGIN_SLOTS = 12


def devnet_slots(duration: float) -> int:
    """The slots a devnet of ``duration`` seconds after genesis reaches, with room for
    its end (:data:`_END_MARGIN_SLOTS`)."""
    slot_ms = MILLISECONDS_PER_INTERVAL * INTERVALS_PER_SLOT
    return int(duration * 1000 // slot_ms) + _END_MARGIN_SLOTS


def check_signing_options(options: DevnetOptions) -> str | None:
    """Why the options cannot run, in one line; None if they can."""
    if options.leanspec < 0:
        return f"--leanspec counts leanSpec nodes: {options.leanspec} is below zero"
    if options.leanspec and options.signatures != "real":
        return "leanSpec's nodes verify every vote's XMSS signature: drop --mocked-signatures"
    for name, value in (
        ("late-join", options.late_join),
        ("restart-at", options.restart_at),
        ("restart-all-at", options.restart_all_at),
    ):
        if value is not None and not 0 < value < options.duration:
            return f"--{name} {value:g} must fall inside the run (0 to {options.duration:g} s)"
    if options.late_join is not None and (options.nodes < 2 or options.leanspec == 1):
        return (
            "--late-join holds back the last node of each kind: run at least two nodes of "
            "each kind in use"
        )
    if options.late_checkpoint_sync and options.late_join is None:
        return "--late-checkpoint-sync needs --late-join: it is how the late node starts"
    if options.restart_at is not None and options.nodes < 2 + (options.late_join is not None):
        return "--restart-at restarts a node other than the aggregator: add a node"
    if options.restart_all_at is not None and options.leanspec:
        return "--restart-all-at restarts our nodes from their databases: drop --leanspec"
    if options.restart_all_at is not None and (
        options.late_join is not None or options.restart_at is not None
    ):
        return "--restart-all-at runs alone: drop --late-join and --restart-at"
    if options.leanspec and options.scheme != "test":
        return (
            "leanSpec's nodes sign and verify in pure Python: a mixed devnet runs the test "
            "scheme only"
        )
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


def make_keystore(
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


async def relay_stop(stop: asyncio.Event, halt: threading.Event) -> None:
    """Set ``halt`` (what a worker thread polls) once ``stop`` (Ctrl-C) is set."""
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


def _view_of_report(report: dict[str, Any] | None) -> dict[str, Any] | None:
    """Our node's report in the shape of :func:`~lean_p2p.tools.leanspec.fork_choice_view`."""
    if report is None:
        return None
    return {
        "head_slot": report["head_slot"],
        "head_root": str(report["head_root"]).removeprefix("0x"),
        "justified_slot": report["justified_slot"],
        "finalized_slot": report["finalized_slot"],
        "finalized_root": str(report["finalized_root"]).removeprefix("0x"),
    }


def _short_name(name: str) -> str:
    """``lean_p2p_3`` -> ``p3``, ``lean_spec_1`` -> ``s1``: one progress line fits."""
    for prefix, short in (("lean_p2p_", "p"), (NODE_PREFIX, "s")):
        if name.startswith(prefix):
            return short + name.removeprefix(prefix)
    return name


def _progress_row(
    elapsed: float,
    reports: Sequence[dict[str, Any] | None],
    events_per_second: float,
    views: Sequence[tuple[str, dict[str, Any] | None]] = (),
) -> dict[str, Any]:
    """One progress line: head range, justified and finalized (lowest) over every node
    that answered, of either kind; peers, events and drops from ours; and with
    ``views`` (name, view) each node's head/justified/finalized."""
    live = [report for report in reports if report is not None]
    answered = [view for _, view in views if view is not None] or [
        view for view in map(_view_of_report, live) if view is not None
    ]
    row: dict[str, Any] = {"t": round(elapsed, 1), "up": len(answered)}
    if answered:
        heads = [view["head_slot"] for view in answered if view["head_slot"] is not None]
        row.update(
            {
                "head": f"{min(heads)}-{max(heads)}" if heads else "-",
                "justified": min(view["justified_slot"] for view in answered),
                "finalized": min(view["finalized_slot"] for view in answered),
            }
        )
    if live:
        row.update(
            {
                "slot": max(r["current_slot"] for r in live),
                "peers": min(r["peers"] for r in live),
                "events/s": round(events_per_second),
                "drops": sum(r["dropped"] for r in live),
            }
        )
    if views:
        row["nodes"] = " ".join(
            f"{_short_name(name)}:"
            + (
                "down"
                if view is None
                else f"{view['head_slot']}/{view['justified_slot']}/{view['finalized_slot']}"
            )
            for name, view in views
        )
    return row


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
    "nodes",
)


def _format_progress(row: dict[str, Any]) -> str:
    return "  ".join(
        f"{column}={row.get(column, '-')}"
        for column in _PROGRESS_COLUMNS
        if column != "nodes" or column in row
    )


async def run_devnet(
    options: DevnetOptions,
    show: Callable[[str], None] = print,
    stop: asyncio.Event | None = None,
) -> dict[str, Any]:
    """Run the devnet to its end, or until ``stop`` is set (the summary then says
    ``interrupted``); either way every node is stopped in order and reports.

    Raises :class:`~lean_p2p.tools.leanspec.LeanSpecUnavailable` when a mixed devnet
    has no interpreter for leanSpec's node and cannot build one."""
    # Absolute: leanSpec's nodes run in it, and every path handed to a child must hold there.
    directory = (options.directory or Path(tempfile.mkdtemp(prefix="lean-p2p-devnet-"))).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    if options.restart_all_at is not None and options.data_dir is None:
        options = dataclasses.replace(options, data_dir=directory / "data")
    if options.data_dir is not None:
        options = dataclasses.replace(options, data_dir=options.data_dir.resolve())
    stop = stop if stop is not None else asyncio.Event()
    validator_keys = None
    # Worker threads (building leanSpec's venv, key generation) ask ``halt``; Ctrl-C
    # (``stop``) sets it, and they end within a fraction of a second.
    halt = threading.Event()
    relay = asyncio.ensure_future(relay_stop(stop, halt))
    python: Path | None = None
    try:
        if options.leanspec:
            try:
                python = await asyncio.to_thread(
                    leanspec_python,
                    options.leanspec_python,
                    cache=options.leanspec_cache,
                    show=show,
                    should_stop=halt.is_set,
                )
            except LeanSpecUnavailable:
                if not stop.is_set():
                    raise
                return _interrupted_summary(options, directory)
        if options.signatures == "real":
            try:
                validator_keys = await asyncio.to_thread(
                    make_keystore, options, directory, show, halt
                )
            except KeyGenerationStopped:
                return _interrupted_summary(options, directory)
    finally:
        relay.cancel()
    genesis_time = int(time.time() + options.genesis_delay)
    owners = options.nodes + options.leanspec
    quic_ports = free_ports(owners, socket.SOCK_DGRAM)
    api_ports = free_ports(owners, socket.SOCK_STREAM)
    leanspec_nodes = [
        LeanSpecNode(
            name=f"{NODE_PREFIX}{index}",
            directory=directory,
            listen_port=quic_ports[options.nodes + index],
            api_port=api_ports[options.nodes + index],
            # its first node aggregates too: aggregates then flow both ways
            is_aggregator=index == 0 and index < options.validators - options.nodes,
        )
        for index in range(options.leanspec)
    ]
    late = options.late_join is not None
    entries = write_devnet(
        directory,
        nodes=options.nodes,
        validators=options.validators,
        genesis_time=genesis_time,
        quic_ports=quic_ports[: options.nodes],
        api_ports=api_ports[: options.nodes],
        validator_keys=validator_keys,
        other_nodes=[node.name for node in leanspec_nodes],
        # our late joiner comes in through leanSpec's nodes alone: nobody dials it
        unlisted_nodes=1 if late and leanspec_nodes else 0,
    )
    processes = [DevnetProcess(entry, directory) for entry in entries]
    if leanspec_nodes:
        options = dataclasses.replace(
            options, extra_node_args=(*options.extra_node_args, "--accept-empty-proofs")
        )
    signing = f"{options.scheme} XMSS keys" if options.signatures == "real" else "mocked signatures"
    mixed = f" and {options.leanspec} leanSpec nodes" if leanspec_nodes else ""
    show(
        f"devnet: {options.nodes} nodes{mixed}, {options.validators} validators ({signing}), "
        f"genesis in {genesis_time - time.time():.0f}s, running {options.duration:.0f}s "
        f"after genesis, files in {directory}"
    )
    history: list[dict[str, Any]] = []
    views: list[tuple[str, dict[str, Any] | None]] = []
    cross = CrossImports()
    launch = _Launch(
        options,
        processes,
        leanspec_nodes=leanspec_nodes,
        python=python,
        directory=directory,
        show=show,
        genesis_time=genesis_time,
    )
    # A second Ctrl-C exits at once: the node processes must not outlive us then.
    with INTERRUPTS.cleanup_on_exit(lambda: kill_all(processes, leanspec_nodes)):
        try:
            launch.start_on_time()
            history, views = await _watch(
                processes,
                leanspec_nodes,
                end_time=genesis_time + options.duration,
                genesis_time=genesis_time,
                show=show,
                stop=stop,
                cross=cross,
                launch=launch,
            )
        finally:
            # leanSpec's nodes first, while ours still run: told to stop once its peers
            # are gone, leanSpec's node keeps running until killed (seen at every end
            # of a mixed devnet), while it stops within seconds beside live peers.
            for node in leanspec_nodes:
                node.signal(signal.SIGTERM)
            await asyncio.gather(
                *(asyncio.to_thread(node.wait, _LEANSPEC_STOP_TIMEOUT) for node in leanspec_nodes)
            )
            for node in leanspec_nodes:
                if node.exit_code == -signal.SIGKILL:
                    show(f"devnet: {node.name} ignored SIGTERM for {_LEANSPEC_STOP_TIMEOUT:.0f} s")
            exit_codes = await stop_all(processes)
    summary = _summary(
        options,
        processes=processes,
        exit_codes=exit_codes,
        history=history,
        directory=directory,
        genesis_time=genesis_time,
        leanspec_nodes=leanspec_nodes,
        views=views,
        cross=cross,
    )
    summary["joins"] = [join.as_dict() for join in launch.joins]
    summary["restart_exit_codes"] = launch.restart_exit_codes
    summary["whole_restart"] = (
        launch.whole_restart.as_dict() if launch.whole_restart is not None else None
    )
    summary["data_dir"] = str(options.data_dir) if options.data_dir is not None else None
    summary["interrupted"] = stop.is_set()
    return summary


def _interrupted_summary(options: DevnetOptions, directory: Path) -> dict[str, Any]:
    summary = _summary(
        options, processes=[], exit_codes=[], history=[], directory=directory, genesis_time=0
    )
    summary["interrupted"] = True
    return summary


#: Seconds per slot: a late or restarted node's catch-up is also given in slots.
_SLOT_SECONDS = MILLISECONDS_PER_INTERVAL * INTERVALS_PER_SLOT / 1000


@dataclass
class Join:
    """A node that started after the others (``late``) or again (``restart``)."""

    node: str
    implementation: str
    kind: str
    started_at: float  # seconds after genesis
    #: seconds after genesis when its head first reached the lowest head of the nodes
    #: that ran throughout (None: never, by the end)
    caught_up_at: float | None = None

    def as_dict(self) -> dict[str, Any]:
        after = None if self.caught_up_at is None else self.caught_up_at - self.started_at
        return {
            "node": self.node,
            "implementation": self.implementation,
            "kind": self.kind,
            "started_at_s": round(self.started_at, 1),
            "caught_up_after_s": None if after is None else round(after, 1),
            "caught_up_after_slots": None if after is None else round(after / _SLOT_SECONDS, 1),
        }


@dataclass
class WholeRestart:
    """The whole devnet stopped and started again from disk: what each node kept, and
    when they finalized on top of that.

    Each node is judged against its own checkpoint: the nodes do not stop at one
    instant, so one may finalize a slot from a block the others never received before
    their SIGTERM. The highest of them is the slot the devnet must finalize past."""

    stopped_at_s: float
    #: each node's finalized slot as it stopped: its report, or its last poll if higher
    finalized_at_stop: dict[str, int]
    restarted_at_s: float | None = None
    #: each node's finalized slot at the first poll that reached it after the restart
    finalized_on_return: dict[str, int] = field(default_factory=dict)
    finalized_on_top_at_s: float | None = None

    @property
    def finalized_before(self) -> int:
        return max(self.finalized_at_stop.values(), default=0)

    def returned(self, node: str, finalized: int) -> None:
        self.finalized_on_return.setdefault(node, finalized)

    def note(self, elapsed: float, lowest_finalized: int) -> None:
        if self.finalized_on_top_at_s is None and lowest_finalized > self.finalized_before:
            self.finalized_on_top_at_s = round(elapsed, 1)

    def lost(self) -> list[str]:
        """Each node that came back below its own checkpoint, or never came back."""
        reasons = []
        for node, before in sorted(self.finalized_at_stop.items()):
            after = self.finalized_on_return.get(node)
            if after is None:
                reasons.append(f"{node} never answered after the restart")
            elif after < before:
                reasons.append(f"{node} came back at finalized slot {after}, below its {before}")
        return reasons

    def as_dict(self) -> dict[str, Any]:
        on_top = self.finalized_on_top_at_s
        restarted = self.restarted_at_s
        returned = self.finalized_on_return.values()
        lost = self.lost()
        return {
            "stopped_at_s": self.stopped_at_s,
            "restarted_at_s": restarted,
            "finalized_before": self.finalized_before,
            "finalized_after_restart": min(returned) if returned else None,
            "finalized_at_stop": dict(sorted(self.finalized_at_stop.items())),
            "finalized_on_return": dict(sorted(self.finalized_on_return.items())),
            "lost": lost,
            "kept_finalized": not lost,
            "finalized_on_top_at_s": on_top,
            "finalized_on_top_after_slots": (
                None
                if on_top is None or restarted is None
                else round((on_top - restarted) / _SLOT_SECONDS, 1)
            ),
        }


class _Launch:
    """Starts every node, on time or on schedule (``--late-join``, ``--restart-at``),
    and records each late or restarted node's catch-up. The command's loop."""

    def __init__(
        self,
        options: DevnetOptions,
        processes: Sequence[DevnetProcess],
        *,
        leanspec_nodes: Sequence[LeanSpecNode],
        python: Path | None,
        directory: Path,
        show: Callable[[str], None],
        genesis_time: float,
    ) -> None:
        self._options = options
        self._genesis_time = genesis_time
        self._processes = processes
        self._leanspec = leanspec_nodes
        self._python = python
        self._show = show
        self._env: dict[str, str] = {}
        self._launcher: Path | None = None
        if leanspec_nodes:
            self._env, self._launcher = leanspec_environment(
                directory / "leanspec", stock=options.leanspec_stock
            )
        late = options.late_join is not None
        self.late_ours = processes[-1] if late else None
        self.late_theirs = leanspec_nodes[-1] if late and leanspec_nodes else None
        # Ours: not our aggregator (the first). leanSpec's: its first, which aggregates,
        # as the only one of its nodes sure to run from the start; our aggregator
        # goes on meanwhile.
        self.restart_ours = processes[1] if options.restart_at is not None else None
        self.restart_theirs = (
            leanspec_nodes[0] if options.restart_at is not None and leanspec_nodes else None
        )
        self.joins: list[Join] = []
        self.restart_exit_codes: list[int | None] = []
        self._waiting_shown = False
        #: names not expected to run now (late, or between stop and start of a restart)
        self.down: set[str] = set()
        self._actions: list[tuple[float, Callable[[], Awaitable[None]]]] = []
        if options.late_join is not None:
            self._actions.append((options.late_join, self._start_late))
            self.down |= {n.name for n in (self.late_ours, self.late_theirs) if n is not None}
        if options.restart_at is not None:
            self._actions.append((options.restart_at, self._restart))
        self.whole_restart: WholeRestart | None = None
        #: each running node's highest finalized slot polled so far (before a whole restart)
        self._finalized_seen: dict[str, int] = {}
        if options.restart_all_at is not None:
            self._actions.append((options.restart_all_at, self._restart_all))
        self._actions.sort(key=lambda action: action[0])

    def _our_api_port(self) -> int:
        port = self._processes[0].entry.api_port
        assert port is not None  # the devnet gives every node an API port
        return port

    def _our_bootnodes(self) -> list[str]:
        """Where leanSpec's nodes dial in: ours that run (our late joiner once started)."""
        return [
            p.entry.enr().dial_multiaddr()
            for p in self._processes
            if p is not self.late_ours or p.process is not None
        ]

    def _start_leanspec(self, node: LeanSpecNode) -> None:
        assert self._python is not None and self._launcher is not None
        node.start(self._python, self._launcher, self._our_bootnodes(), self._env)
        role = ", aggregator" if node.is_aggregator else ""
        changes = (
            "unchanged (--leanspec-stock)"
            if self._options.leanspec_stock
            else "its five known defects worked around"
        )
        self._show(
            f"devnet: started {node.name} (leanSpec{role}) on {node.listen_address}, "
            f"API port {node.api_port}, {changes} (docs/interop.md); log: {node.log_path}"
        )

    def start_on_time(self) -> None:
        for process in self._processes:
            if process is not self.late_ours:
                process.start(self._options)
        for node in self._leanspec:
            if node is not self.late_theirs:
                self._start_leanspec(node)

    async def run_due(self, elapsed: float) -> None:
        """Run the scheduled starts whose time (seconds after genesis) has come."""
        while self._actions and self._actions[0][0] <= elapsed:
            _, action = self._actions.pop(0)
            await action()

    def _checkpoint_source(self) -> str:
        """The API our late joiner checkpoint-syncs from: leanSpec's first node, else ours."""
        port = self._leanspec[0].api_port if self._leanspec else self._our_api_port()
        return f"http://127.0.0.1:{port}"

    async def _source_finalized(self) -> bool:
        """Whether the checkpoint source has finalized past genesis (starting from a
        genesis anchor would not be checkpoint sync)."""
        port = int(self._checkpoint_source().rsplit(":", 1)[1])
        async with aiohttp.ClientSession() as session:
            view = await poll_fork_choice(session, port)
        return view is not None and view["finalized_slot"] > 0

    async def _start_late(self) -> None:
        if self._options.late_checkpoint_sync and not await self._source_finalized():
            # Wait for a settled state, a second at a time, without holding up the
            # progress lines: the start is asked again next second.
            if not self._waiting_shown:
                self._waiting_shown = True
                self._show(
                    f"devnet: late join waits for {self._checkpoint_source()} to finalize "
                    "past genesis (checkpoint sync)"
                )
            again = time.time() - self._genesis_time + 1.0
            self._actions.append((again, self._start_late))
            self._actions.sort(key=lambda action: action[0])
            return
        if self.late_ours is not None:
            extra: list[str] = []
            for node in self._leanspec:
                peer_id = node.peer_id() if node is not self.late_theirs else None
                if peer_id is not None:
                    extra += ["--bootnode", f"{node.listen_address}/p2p/{peer_id}"]
            if self._leanspec and not extra:
                self._show("devnet: no leanSpec peer id in its log; the late node dials ours")
            via = "leanSpec's nodes" if extra else "our nodes"
            if self._options.late_checkpoint_sync:
                url = self._checkpoint_source()
                extra += ["--checkpoint-sync-url", url]
                via += f", from the finalized state at {url}"
            self.late_ours.start(self._options, extra)
            self._show(f"devnet: late join: started {self.late_ours.name} (through {via})")
            self._joined(self.late_ours.name, "lean_p2p", "late")
        if self.late_theirs is not None:
            self._start_leanspec(self.late_theirs)
            self._show(f"devnet: late join: started {self.late_theirs.name} (through ours)")
            self._joined(self.late_theirs.name, "leanSpec", "late")

    async def _restart(self) -> None:
        ours, theirs = self.restart_ours, self.restart_theirs
        self.down |= {n.name for n in (ours, theirs) if n is not None}
        self._show(
            "devnet: restarting " + " and ".join(n.name for n in (ours, theirs) if n is not None)
        )
        if ours is not None:
            ours.signal(signal.SIGTERM)
        if theirs is not None:
            theirs.signal(signal.SIGTERM)
        if ours is not None and ours.process is not None:
            await self._end_first_life(ours)
            ours.start(self._options)
            self._joined(ours.name, "lean_p2p", "restart")
        if theirs is not None:
            await asyncio.to_thread(theirs.wait, _LEANSPEC_STOP_TIMEOUT)
            self._start_leanspec(theirs)
            self._joined(theirs.name, "leanSpec", "restart")

    async def _end_first_life(self, process: DevnetProcess) -> dict[str, Any] | None:
        """Wait for a node told to stop (killed after ``_STOP_TIMEOUT``: never two lives
        at once), count its exit code, and keep its first life's report (its lost events
        count too); that report, if it wrote one."""
        if process.process is None:
            return None
        with contextlib.suppress(subprocess.TimeoutExpired):
            await asyncio.to_thread(process.process.wait, _STOP_TIMEOUT)
        if process.process.poll() is None:
            process.process.kill()
            await asyncio.to_thread(process.process.wait)
        self.restart_exit_codes.append(process.process.poll())
        first_life = process.report_path.with_suffix(".1.json")
        with contextlib.suppress(OSError):
            process.report_path.rename(first_life)
        report = read_report(first_life)
        if report is not None:
            process.reports.append(report)
        return report

    async def _restart_all(self) -> None:
        """Stop every node of ours, then start them all again from their databases."""
        processes = self._processes
        self.down |= {p.name for p in processes}
        stopped_at = time.time() - self._genesis_time
        whole = WholeRestart(
            stopped_at_s=round(stopped_at, 1),
            finalized_at_stop={p.name: self._finalized_seen.get(p.name, 0) for p in processes},
        )
        self.whole_restart = whole
        self._show(
            f"devnet: stopping all {len(processes)} nodes at finalized slot "
            f"{whole.finalized_before}; they restart from {self._options.data_dir} in "
            f"{self._options.restart_all_down:g} s"
        )
        for process in processes:
            process.signal(signal.SIGTERM)
        for process in processes:
            report = await self._end_first_life(process)
            if report is not None:
                # What each node had finalized when it stopped, not at the last poll.
                whole.finalized_at_stop[process.name] = max(
                    whole.finalized_at_stop[process.name], report["finalized_slot"]
                )
        await asyncio.sleep(self._options.restart_all_down)
        for process in processes:
            process.start(self._options)
        self.whole_restart.restarted_at_s = round(time.time() - self._genesis_time, 1)
        self.down -= {p.name for p in processes}
        self._show(f"devnet: started all {len(processes)} nodes again")

    def _joined(self, name: str, implementation: str, kind: str) -> None:
        """``name`` has just started (again): its catch-up is timed from now."""
        self.down.discard(name)
        started = time.time() - self._genesis_time
        self.joins.append(Join(name, implementation, kind, started))

    def note_heads(
        self, elapsed: float, views: Sequence[tuple[str, dict[str, Any] | None]]
    ) -> None:
        mark_caught_up(self.joins, elapsed, views)
        finalized = {
            name: view["finalized_slot"]
            for name, view in views
            if view is not None and view["finalized_slot"] is not None and name not in self.down
        }
        whole = self.whole_restart
        if whole is None:
            for name, slot in finalized.items():
                self._finalized_seen[name] = max(self._finalized_seen.get(name, 0), slot)
        elif whole.restarted_at_s is not None:
            for name, slot in finalized.items():
                whole.returned(name, slot)
            if len(finalized) == len(self._processes):
                whole.note(elapsed, min(finalized.values()))


def mark_caught_up(
    joins: Sequence[Join], elapsed: float, views: Sequence[tuple[str, dict[str, Any] | None]]
) -> None:
    """Mark each joined node caught up once its head reaches the lowest head of the
    nodes that ran throughout (``elapsed``: seconds after genesis of these views)."""
    waiting = [join for join in joins if join.caught_up_at is None]
    if not waiting:
        return
    joined = {join.node for join in joins}
    steady = [
        view["head_slot"]
        for name, view in views
        if name not in joined and view is not None and view["head_slot"] is not None
    ]
    if not steady:
        return
    heads = dict(views)
    for join in waiting:
        view = heads.get(join.node)
        head = None if view is None else view["head_slot"]
        if head is not None and head >= min(steady):
            join.caught_up_at = elapsed


async def _watch(
    processes: Sequence[DevnetProcess],
    leanspec_nodes: Sequence[LeanSpecNode],
    *,
    end_time: float,
    genesis_time: float,
    show: Callable[[str], None],
    stop: asyncio.Event,
    cross: CrossImports,
    launch: _Launch | None = None,
) -> tuple[list[dict[str, Any]], list[tuple[str, dict[str, Any] | None]]]:
    """Poll every node once a second until ``end_time``; the history of progress rows
    and, for a mixed devnet, every node's last (settled) view (each poll also goes
    into ``cross``)."""
    history: list[dict[str, Any]] = []
    views: list[tuple[str, dict[str, Any] | None]] = []
    previous_handled: int | None = None
    previous_time = time.monotonic()
    async with aiohttp.ClientSession() as session:
        while time.time() < end_time:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
            if stop.is_set():
                show("devnet: interrupted; stopping the nodes")
                break
            if launch is not None:
                await launch.run_due(time.time() - genesis_time)
            down = launch.down if launch is not None else set()
            exited = [
                p.name
                for p in processes
                if p.process is not None and p.process.poll() is not None and p.name not in down
            ]
            exited += [
                n.name
                for n in leanspec_nodes
                if n.process is not None and not n.running() and n.name not in down
            ]
            if exited:
                show(f"devnet: {', '.join(exited)} exited early; stopping")
                break
            reports, views = await _poll_all(session, processes, leanspec_nodes)
            cross.add(views)
            if launch is not None:
                launch.note_heads(
                    time.time() - genesis_time,
                    views
                    or [
                        (p.name, _view_of_report(r))
                        for p, r in zip(processes, reports, strict=True)
                    ],
                )
            now = time.monotonic()
            handled = sum(report["handled"] for report in reports if report is not None)
            rate = 0.0
            if previous_handled is not None and now > previous_time:
                rate = max(0, handled - previous_handled) / (now - previous_time)
            previous_handled, previous_time = handled, now
            row = _progress_row(time.time() - genesis_time, reports, rate, views)
            history.append(row)
            show(_format_progress(row))
        if leanspec_nodes and not stop.is_set():
            views = await _settled_views(session, processes, leanspec_nodes, views)
            cross.add(views)
    return history, views


async def _poll_all(
    session: aiohttp.ClientSession,
    processes: Sequence[DevnetProcess],
    leanspec_nodes: Sequence[LeanSpecNode],
) -> tuple[list[dict[str, Any] | None], list[tuple[str, dict[str, Any] | None]]]:
    """Our nodes' reports, and (mixed devnet only) every node's fork-choice view, asked
    of both kinds the same way (``/lean/v0/fork_choice``)."""
    reports = await asyncio.gather(
        *(poll_report(session, process.entry.api_port) for process in processes)
    )
    if not leanspec_nodes:
        return list(reports), []
    ports = [(p.name, p.entry.api_port) for p in processes]
    ports += [(n.name, n.api_port) for n in leanspec_nodes]
    answers = await asyncio.gather(*(_fork_choice_of(session, port) for _, port in ports))
    return list(reports), [(name, view) for (name, _), view in zip(ports, answers, strict=True)]


async def _fork_choice_of(
    session: aiohttp.ClientSession, port: int | None
) -> dict[str, Any] | None:
    return None if port is None else await poll_fork_choice(session, port)


@dataclass
class CrossImports:
    """What each node of a mixed devnet held over the run: blocks of which proposers,
    and the most votes it counted for one block."""

    proposers: dict[str, set[int]] = field(default_factory=dict)
    max_weight: dict[str, int] = field(default_factory=dict)

    def add(self, views: Sequence[tuple[str, dict[str, Any] | None]]) -> None:
        for name, view in views:
            if view is None:
                continue
            self.proposers.setdefault(name, set()).update(view["proposers"])
            self.max_weight[name] = max(self.max_weight.get(name, 0), view["max_weight"])


#: Polls, a second apart, for one view where every node stands on the same finalized
#: root: finality moves at slot boundaries, so polls of different nodes can straddle one.
_SETTLE_POLLS = 6


async def _settled_views(
    session: aiohttp.ClientSession,
    processes: Sequence[DevnetProcess],
    leanspec_nodes: Sequence[LeanSpecNode],
    last: list[tuple[str, dict[str, Any] | None]],
) -> list[tuple[str, dict[str, Any] | None]]:
    views = last
    for attempt in range(_SETTLE_POLLS):
        if attempt:
            await asyncio.sleep(1.0)
        _, views = await _poll_all(session, processes, leanspec_nodes)
        if _finalized_roots(views) is not None:
            break
    return views


def _finalized_roots(views: Sequence[tuple[str, dict[str, Any] | None]]) -> str | None:
    """The one finalized root every node reports, or None (a node silent, or two roots)."""
    roots = {view["finalized_root"] if view is not None else None for _, view in views}
    if len(roots) != 1 or None in roots:
        return None
    return roots.pop()


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


def kill_all(
    processes: Sequence[DevnetProcess], leanspec_nodes: Sequence[LeanSpecNode] = ()
) -> None:
    """SIGKILL every node process still running (the exit-at-once path)."""
    for process in processes:
        process.signal(signal.SIGKILL)
    for node in leanspec_nodes:
        node.signal(signal.SIGKILL)


def read_report(path: Path) -> dict[str, Any] | None:
    try:
        report: dict[str, Any] = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return report


def _our_error_lines(processes: Sequence[DevnetProcess]) -> list[str]:
    return [f"{p.name}: {line}" for p in processes for _, line, _ in error_lines(p.log_path)]


def _summary(
    options: DevnetOptions,
    *,
    processes: Sequence[DevnetProcess],
    exit_codes: Sequence[int | None],
    history: Sequence[dict[str, Any]],
    directory: Path,
    genesis_time: float,
    leanspec_nodes: Sequence[LeanSpecNode] = (),
    views: Sequence[tuple[str, dict[str, Any] | None]] = (),
    cross: CrossImports | None = None,
) -> dict[str, Any]:
    reports = [read_report(process.report_path) for process in processes]
    complete = [report for report in reports if report is not None]
    all_reported = len(complete) == len(processes)
    heads = [report["head_slot"] for report in complete]
    finalized_over_time = [(row["t"], row["finalized"]) for row in history if "finalized" in row]
    advances, longest_gap = finality_cadence(finalized_over_time)
    summary: dict[str, Any] = {
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
        # a restarted node's earlier lives count too
        "lost_events": sum(r["lost_events"] for r in complete)
        + sum(r["lost_events"] for p in processes for r in p.reports),
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
        "error_lines": _our_error_lines(processes),
        "leanspec_nodes": options.leanspec,
    }
    if options.leanspec:
        owners = options.nodes + options.leanspec
        theirs = {i for i in range(options.validators) if i % owners >= options.nodes}
        summary.update(
            _mixed_summary(
                leanspec_nodes,
                views,
                summary,
                cross=cross or CrossImports(),
                leanspec_validators=theirs,
                validators=options.validators,
            )
        )
    return summary


def _mixed_summary(
    leanspec_nodes: Sequence[LeanSpecNode],
    views: Sequence[tuple[str, dict[str, Any] | None]],
    ours: dict[str, Any],
    *,
    cross: CrossImports,
    leanspec_validators: set[int],
    validators: int,
) -> dict[str, Any]:
    """A mixed devnet's view over both kinds, from the last settled poll of every node,
    and what each node held over the run (``cross``)."""
    theirs = {node.name for node in leanspec_nodes}
    table = []
    for name, view in views:
        proposers = cross.proposers.get(name, set())
        table.append(
            {
                "node": name,
                "implementation": "leanSpec" if name in theirs else "lean_p2p",
                **(
                    {key: view[key] for key in _TABLE_KEYS}
                    if view is not None
                    else dict.fromkeys(_TABLE_KEYS)
                ),
                # distinct proposers of the blocks it held, by their implementation
                "proposers_lean_p2p": len(proposers - leanspec_validators),
                "proposers_leanSpec": len(proposers & leanspec_validators),
                "most_votes": cross.max_weight.get(name, 0),
            }
        )
    answered = [view for _, view in views if view is not None]
    everyone = bool(views) and len(answered) == len(views)
    heads = [view["head_slot"] for view in answered if view["head_slot"] is not None]
    ours_count = validators - len(leanspec_validators)
    unexplained: list[str] = []
    explained: list[str] = []
    for node in leanspec_nodes:
        bad, known = node.errors()
        unexplained += [f"{node.name}: {line}" for line in bad]
        explained += [f"{node.name}: {line}" for line in known]
    finalized = [view["finalized_slot"] for view in answered]
    return {
        "nodes_table": table,
        # the lowest over every node of either kind (ours from their final reports too)
        "finalized_slot": min([*finalized, ours["finalized_slot"]]) if everyone else 0,
        "justified_slot": min(
            [*(view["justified_slot"] for view in answered), ours["justified_slot"]]
        )
        if everyone
        else 0,
        # From the settled view taken while every node ran, not from our final reports:
        # leanSpec's nodes stop first, and ours run on meanwhile (a node of ours that
        # joined through leanSpec's alone is cut off then), so those differ by design.
        "head_agreement": everyone and len(heads) == len(views) and max(heads) - min(heads) <= 1,
        "finalized_roots_agree": everyone and _finalized_roots(views) is not None,
        "implementations_agree": everyone and _finalized_roots(views) is not None,
        # every node held blocks proposed on both sides, and counted votes of the other
        # side's validators (see _counted_the_other_side)
        "proposals_imported_both_ways": bool(table)
        and all(row["proposers_lean_p2p"] and row["proposers_leanSpec"] for row in table),
        "votes_counted_both_ways": bool(table)
        and all(
            _counted_the_other_side(
                row,
                own=len(leanspec_validators) if row["implementation"] == "leanSpec" else ours_count,
                validators=validators,
            )
            for row in table
        ),
        "leanspec_exit_codes": [node.exit_code for node in leanspec_nodes],
        "leanspec_error_lines": unexplained,
        "leanspec_explained_error_lines": explained,
    }


def _counted_the_other_side(row: dict[str, Any], *, own: int, validators: int) -> bool:
    """Whether a node counted votes of the other implementation's validators: it once
    counted more votes for one block than its own side can cast, or it justified a
    checkpoint, which its own side's votes alone (under two thirds) cannot do.

    The second is needed for leanSpec's nodes that do not aggregate: they subscribe to
    no aggregate topic, so their fork choice weighs only the votes blocks carry, and in
    one five-minute run such a node never weighed more than its own side's two.
    """
    if row["most_votes"] > own:
        return True
    justified = row["justified_slot"]
    return 3 * own < 2 * validators and justified is not None and justified > 0


_TABLE_KEYS = ("head_slot", "justified_slot", "finalized_slot", "finalized_root")


def joins_table_text(summary: dict[str, Any]) -> str:
    """Each late or restarted node: when it started and how long it took to catch up."""
    columns = (
        "node",
        "implementation",
        "kind",
        "started_at_s",
        "caught_up_after_s",
        "caught_up_after_slots",
    )
    return format_table(summary.get("joins", ()), columns)


def nodes_table_text(summary: dict[str, Any]) -> str:
    """A mixed devnet's last view of every node, as a table (empty for a plain devnet)."""
    rows = [
        {**row, "finalized_root": (row["finalized_root"] or "")[:16]}
        for row in summary.get("nodes_table", ())
    ]
    if not rows:
        return ""
    columns = ("proposers_lean_p2p", "proposers_leanSpec", "most_votes")
    return format_table(rows, ("node", "implementation", *_TABLE_KEYS, *columns))


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
    for join in summary.get("joins", ()):
        if join["caught_up_after_s"] is None:
            reasons.append(
                f"{join['node']} ({join['implementation']}, {join['kind']} at "
                f"{join['started_at_s']} s) never reached the head of the others"
            )
    whole = summary.get("whole_restart")
    if whole is not None:
        if not whole["kept_finalized"]:
            reasons.append(
                "the devnet restarted from disk lost finalized checkpoints: "
                + "; ".join(whole["lost"])
            )
        if whole["finalized_on_top_after_slots"] is None:
            reasons.append("the devnet restarted from disk never finalized past its checkpoint")
    unclean = [code for code in summary.get("restart_exit_codes", ()) if code != 0]
    if unclean:
        reasons.append(f"a restarted node's first life exited uncleanly: {unclean}")
    if summary.get("error_lines"):
        lines = summary["error_lines"]
        reasons.append(f"our nodes logged {len(lines)} error line(s); first: {lines[0]}")
    if summary.get("leanspec_nodes"):
        if not summary["implementations_agree"]:
            reasons.append(
                "the implementations do not agree: not every node stands on one finalized "
                "root (see nodes_table)"
            )
        if not summary["proposals_imported_both_ways"]:
            reasons.append(
                "not every node held blocks proposed by both implementations (see nodes_table)"
            )
        if not summary["votes_counted_both_ways"]:
            reasons.append(
                "not every node counted votes of the other implementation's validators "
                "(most_votes in nodes_table)"
            )
        if summary["leanspec_error_lines"]:
            lines = summary["leanspec_error_lines"]
            reasons.append(f"leanSpec logged {len(lines)} error line(s); first: {lines[0]}")
    return reasons


def devnet_succeeded(summary: dict[str, Any]) -> bool:
    return not devnet_failures(summary)

"""``lean-p2p bench gossip``: the lean driver against a stock py-libp2p pair, two processes.

Runs on the benchmark's main thread (the sender side) plus one receiver child process
per variant (this same module with ``--role``). Both variants carry the same payload
sizes over loopback between two processes:

- ``lean``: :class:`~lean_p2p.driver.NetworkDriver` on both sides (QUIC-v1, anonymous
  gossip, lean message ids); the receiver's events go through a real
  :class:`~lean_p2p.runtime.Mailbox` into an asyncio loop, where latency is measured.
- ``stock``: py-libp2p set up from its documentation (``new_host`` defaults,
  ``Pubsub`` + ``GossipSub``), with spam protection off and its message size limits
  raised from 1 MiB to lean's 10 MiB (for the 2 MB blocks); the receiver's latency is
  taken where its subscription hands the message to the application.
- ``lean-signed``: ``lean`` with real signatures, attestations only: every attestation
  carries a valid production XMSS signature of its data (a pool of 64, made by one-leaf
  keys, that both processes build from the same seeds), and the receiver counts it only
  once its :class:`~lean_p2p.node.verification.VerificationService` (a node's; one
  worker fewer than the cores) has verified it, results back through the mailbox. The
  signed data carries no send time, so this variant has no latency figures.
- ``lean-switch-1ms``, ``lean-switch-100us``: ``lean`` with the receiver's switch
  interval at 1 ms or 100 us instead of CPython's 5 ms: how long the loop thread waits
  for the GIL while the driver's thread runs Python, measured on and off in the same run.
- ``lean-no-yield``: ``lean`` without the GIL hand-over a node makes by default (its
  driver's puts through yielding senders, :meth:`~lean_p2p.runtime.Mailbox.sender`):
  the driver thread goes on without waiting for the drain its event woke.
- ``lean-no-pmtud``: ``lean`` without path-MTU discovery on either side
  (:mod:`lean_p2p.driver.pmtu`): every datagram stays at ``--datagram-size``.

The lean receiver also stamps each event as its driver emits it (on the driver's trio
thread) and measures, in its handler, the hand-off into the loop: ``handoff_p50_us``
and ``handoff_p99_us``, the mailbox's wakeup and queueing delay for real gossip from
another process, the figure a node's consensus code feels; for the slowest 1 %, the
median time spent waiting for the drain to begin (``handoff_tail_wait_us``: the
wakeup and the GIL) and queueing in it (``handoff_tail_queue_us``), and the longest
garbage collection of the phase (``gc_max_us``). The wait is split further by the loop
thread's own clocks (:class:`~lean_p2p.tools.bench.latency.LoopClock`, read by the
driver's thread at the emit and by the loop when the drain begins): the loop thread
running other work (``handoff_tail_busy_us``), waiting in the run queue for a core
(``handoff_tail_core_us``), and asleep waiting for the GIL (``handoff_tail_gil_us``).
The ``latency-1k`` phase paces attestations at 1,000/s for it.

``--sender-nice N`` runs the sending process at nice N and the receivers at the priority
the command started with: on a small machine the two processes otherwise compete for
the same cores, and the receiver's loop thread waits for a core, which a sender on
another machine would not cause.

Gossip throughput is closed-loop: the sender keeps at most ``WINDOW`` messages beyond
what the receiver has reported (below stock's 32-entry queues, so stock never drops).
Latency is measured at a fixed paced rate, the same for both variants. Clocks:
``time.monotonic_ns`` (CLOCK_MONOTONIC, shared by processes on one machine).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import gc
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

from lean_p2p.tools import report

__all__ = ["FULL_RUN_VARIANTS", "VARIANTS", "run_benchmark"]

WINDOW = 24  # messages in flight (below py-libp2p's 32-entry per-peer queue)
ATTESTATION_TOPIC = "/leanconsensus/12345678/attestation_0/ssz_snappy"
BLOCK_TOPIC = "/leanconsensus/12345678/block/ssz_snappy"
STOCK_STATUS_PROTOCOL = "/bench/status/1"
_PROGRESS_EVERY = 4
#: stock's message size limits, raised from py-libp2p's 1 MiB to lean's gossip limit so
#: that it carries the 2 MB blocks
STOCK_MAX_MESSAGE_BYTES = 10 * 1024 * 1024
_DATAGRAM_ENV = "LEAN_P2P_BENCH_DATAGRAM_SIZE"
#: the nice value a receiver restores for itself (``--sender-nice``)
_RECEIVER_NICE_ENV = "LEAN_P2P_BENCH_RECEIVER_NICE"
#: variant -> stock transport (None: the lean driver)
VARIANTS: dict[str, str | None] = {
    "lean": None,
    "stock": "tcp",
    "stock-quic": "quic",
    "lean-signed": None,
    "lean-switch-1ms": None,
    "lean-switch-100us": None,
    "lean-no-yield": None,
    "lean-no-pmtud": None,
}
#: what a full run measures: the switch-interval variants only when asked for
FULL_RUN_VARIANTS = (
    "lean",
    "stock",
    "stock-quic",
    "lean-signed",
    "lean-no-yield",
    "lean-no-pmtud",
)
#: the lean receivers' interpreter switch interval, by variant (default: CPython's 5 ms)
_SWITCH_INTERVAL_S = {"lean-switch-1ms": 0.001, "lean-switch-100us": 0.0001}
_SIGNED_POOL = 64
#: the lean receiver's figures on the slowest 1 % of hand-offs (see the docstring)
_TAIL_COLUMNS = (
    "handoff_tail_wait_us",
    "handoff_tail_busy_us",
    "handoff_tail_core_us",
    "handoff_tail_gil_us",
    "handoff_tail_queue_us",
    "gc_max_us",
)


def _datagram_size() -> int:
    return int(os.environ.get(_DATAGRAM_ENV, "1200"))


@dataclass(frozen=True, slots=True)
class Plan:
    """One measured phase: kind of message, how many, and pacing (0: windowed)."""

    kind: str  # "attestation" or a key of BLOCK_SIZES
    phase: str  # "throughput" | "latency"
    count: int
    rate: float  # messages/s for paced phases


#: block kinds and the size of their encoding: what users will see, up to a block with
#: many aggregated signatures
BLOCK_SIZES = {"block": 100_000, "block-500k": 500_000, "block-2m": 2_000_000}


def _plans(quick: bool) -> list[Plan]:
    scale = 1 if quick else 4
    return [
        Plan("attestation", "throughput", 400 * scale, 0.0),
        Plan("attestation", "latency", 150 * scale, 100.0),
        # What a node on a busy subnet sees: where the hand-off into the loop is
        # measured (the lean receiver stamps each event as its driver emits it).
        Plan("attestation", "latency-1k", 1_000 * scale, 1_000.0),
        # Each block size flat out, then paced at a rate every variant keeps up with.
        Plan("block", "throughput", 60 * scale, 0.0),
        Plan("block", "latency", 30 * scale, 20.0),
        Plan("block-500k", "throughput", 20 * scale, 0.0),
        Plan("block-500k", "latency", 10 * scale, 5.0),
        Plan("block-2m", "throughput", 8 * scale, 0.0),
        Plan("block-2m", "latency", 6 * scale, 2.0),
    ]


@functools.cache
def _signed_pool() -> list[Any]:
    """Signed attestations whose signatures verify, and their public keys: index i
    attests slot i + 1, by a one-leaf key from seed i + 1 (both processes make the same
    pool; a production signature is a few milliseconds to make)."""
    from lean_p2p.consensus.hashing import attestation_data_root
    from lean_p2p.containers import (
        PRODUCTION_SCHEME,
        AttestationData,
        Checkpoint,
        SignedAttestation,
    )
    from lean_p2p.crypto import sign_one_leaf

    pool = []
    for index in range(_SIGNED_POOL):
        slot = index + 1
        point = Checkpoint(root=bytes([index]) * 32, slot=0)
        data = AttestationData(slot=slot, head=point, target=point, source=point)
        public_key, signature = sign_one_leaf(
            slot, slot, attestation_data_root(data), PRODUCTION_SCHEME
        )
        pool.append((public_key, SignedAttestation(0, data, signature)))
    return pool


def run_benchmark(args: argparse.Namespace) -> int:
    # Production-size XMSS signatures: a signed attestation is 2.7 KB on the wire. The
    # receiver gets the same scheme through its environment (see _Child).
    from lean_p2p.containers import (
        PRODUCTION_SCHEME,
        select_signature_scheme,
        using_signature_scheme,
    )

    if args.role:  # a receiver: a process of its own
        select_signature_scheme(PRODUCTION_SCHEME)
        return _run_receiver(args.role)
    with using_signature_scheme(PRODUCTION_SCHEME):
        return _run_parent(args)


def _run_parent(args: argparse.Namespace) -> int:
    default = "lean,stock" if args.quick else ",".join(FULL_RUN_VARIANTS)
    # (the full run includes lean-signed: throughput with every signature verified)
    variants = [v.strip() for v in (args.variants or default).split(",") if v.strip()]
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        print(f"unknown variants: {sorted(unknown)}", file=sys.stderr)
        return 2
    repeats = args.repeats or (2 if args.quick else 3)
    if args.sender_nice:
        problem = _lower_the_sender(args.sender_nice)
        if problem is not None:
            print(f"bench gossip: {problem}", file=sys.stderr)
            return 2
    runs: list[dict[str, Any]] = []
    # Variants alternate within each repetition so that load from other processes on
    # a shared machine falls on all alike; medians over repetitions are reported.
    for repeat in range(repeats):
        # Rotate the order too, so no variant always runs first (or right after
        # another variant's sender ran in this process).
        shift = repeat % len(variants)
        for variant in variants[shift:] + variants[:shift]:
            started = time.monotonic()
            variant_runs = _run_variant(variant, args.quick, args.datagram_size, args.dialer)
            runs += variant_runs
            _progress(repeat, repeats, variant, variant_runs, time.monotonic() - started)
    rows = _medians(runs)
    columns = [
        "variant", "kind", "phase", "size_bytes", "runs", "messages", "messages_per_s",
        "p50_ms", "p99_ms", "handoff_p50_us", "handoff_p99_us", "handoff_tail_wait_us",
        "handoff_tail_busy_us", "handoff_tail_core_us", "handoff_tail_gil_us",
        "handoff_tail_queue_us", "gc_max_us", "lost", "duplicates",
    ]  # fmt: skip
    title = "lean-p2p bench gossip (two processes, loopback)"
    if args.sender_nice:
        title += f"; the sender at nice +{args.sender_nice}"
    if args.dialer == "receiver" and "lean" in variants:
        title += "; the lean receiver dials"
    report.print_table(rows, columns, title=title)
    ratios = _ratios(rows)
    if ratios:
        columns = [
            "kind",
            "phase",
            "size_bytes",
            "baseline",
            "lean_over_baseline",
            "p50_lean_over_baseline",
        ]
        report.print_table(
            ratios,
            columns,
            "ratios of medians (throughput: lean over stock, higher is better; p50 latency: "
            "lean over stock, lower is better)",
        )
    if args.json:
        report.write_json(args.json, rows)
    return 0


def _lower_the_sender(niceness: int) -> str | None:
    """Lower this process's priority by ``niceness``; receivers started from now on
    restore the priority it had. None, or why it cannot be done here."""
    original = os.getpriority(os.PRIO_PROCESS, 0)
    # A receiver inherits the lowered priority and must raise it back: check first
    # that this process may raise a priority at all.
    try:
        os.setpriority(os.PRIO_PROCESS, 0, max(-20, original - 1))
        os.setpriority(os.PRIO_PROCESS, 0, original)
    except PermissionError:
        return "--sender-nice needs the right to raise a priority back (root or CAP_SYS_NICE)"
    os.environ[_RECEIVER_NICE_ENV] = str(original)
    os.setpriority(os.PRIO_PROCESS, 0, min(19, original + niceness))
    return None


def _progress(
    repeat: int, repeats: int, variant: str, runs: list[dict[str, Any]], seconds: float
) -> None:
    """One line on stderr per variant run: a full run takes minutes."""
    rates = ", ".join(
        f"{row['kind']} {row['phase']} {row['messages_per_s']:,.0f}/s"
        for row in runs
        if row["phase"] in ("throughput", "round_trips")
    )
    print(f"[{repeat + 1}/{repeats}] {variant}: {rates} ({seconds:.0f} s)", file=sys.stderr)


def _medians(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (variant, kind, phase): medians of rates and latencies over the
    repetitions, sums of lost and duplicated messages."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for row in runs:
        groups.setdefault((row["variant"], row["kind"], row["phase"]), []).append(row)
    rows = []
    for group in groups.values():
        rows.append(
            {
                **group[0],
                "runs": len(group),
                "messages": sum(row["messages"] for row in group),
                "messages_per_s": report.median([row["messages_per_s"] for row in group]),
                "p50_ms": report.median([row["p50_ms"] for row in group]),
                "p99_ms": report.median([row["p99_ms"] for row in group]),
                "handoff_p50_us": _median_or_none([row.get("handoff_p50_us") for row in group]),
                "handoff_p99_us": _median_or_none([row.get("handoff_p99_us") for row in group]),
                **{
                    name: _median_or_none([row.get(name) for row in group])
                    for name in _TAIL_COLUMNS
                },
                "lost": sum(row["lost"] for row in group),
                "duplicates": sum(row["duplicates"] for row in group),
                "messages_per_s_runs": [round(row["messages_per_s"], 1) for row in group],
            }
        )
    return rows


def _median_or_none(values: list[float | None]) -> float | None:
    present = [value for value in values if value is not None]
    return report.median(present) if present else None


def _ratios(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """lean against each stock variant: throughput (lean over stock, higher is better)
    and, for paced phases, the p50 latency (lean over stock, lower is better)."""
    by_key = {(r["variant"], r["kind"], r["phase"]): r for r in rows}
    ratios = []
    for (variant, kind, phase), row in by_key.items():
        if variant != "lean":
            continue
        for baseline in ("stock", "stock-quic"):
            stock = by_key.get((baseline, kind, phase))
            if stock is None:
                continue
            entry: dict[str, Any] = {
                "kind": kind, "phase": phase, "size_bytes": row["size_bytes"],
                "baseline": baseline,
            }  # fmt: skip
            if phase in ("throughput", "round_trips") and stock["messages_per_s"] > 0:
                entry["lean_over_baseline"] = round(
                    row["messages_per_s"] / stock["messages_per_s"], 2
                )
            elif phase.startswith("latency") and row["p50_ms"] and stock["p50_ms"]:
                entry["p50_lean_over_baseline"] = _three_figures(row["p50_ms"] / stock["p50_ms"])
            else:
                continue
            ratios.append(entry)
    return ratios


def _three_figures(ratio: float) -> float:
    """A ratio to three significant figures (a small one does not round to 0)."""
    return float(f"{ratio:.3g}")


# ======================================================================= parent


class _Child:
    """The receiver process: JSON lines on its stdout, commands on its stdin."""

    def __init__(self, variant: str, datagram_size: int) -> None:
        environment = {
            **os.environ,
            "LEAN_P2P_SIGNATURE_SCHEME": "production",
            _DATAGRAM_ENV: str(datagram_size),
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "lean_p2p.cli", "bench", "gossip", "--role", variant],
            env=environment,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self.progress = 0
        self._progress_changed = threading.Condition()
        self._replies: list[dict[str, Any]] = []
        self._reader = threading.Thread(target=self._read, name="bench-child-reader", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.startswith("p "):
                with self._progress_changed:
                    self.progress = int(line[2:])
                    self._progress_changed.notify_all()
            elif line.startswith("{"):
                with self._progress_changed:
                    self._replies.append(json.loads(line))
                    self._progress_changed.notify_all()
        with self._progress_changed:
            self._progress_changed.notify_all()

    def command(self, text: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(text + "\n")
        self.process.stdin.flush()

    def reply(self, timeout: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self._progress_changed:
            while not self._replies:
                left = deadline - time.monotonic()
                if left <= 0 or self.process.poll() is not None:
                    raise RuntimeError("receiver did not reply")
                self._progress_changed.wait(left)
            return self._replies.pop(0)

    def wait_progress_above(self, value: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        with self._progress_changed:
            while self.progress <= value:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RuntimeError("receiver stopped making progress")
                self._progress_changed.wait(left)

    def close(self) -> None:
        with contextlib.suppress(BrokenPipeError, OSError):
            self.command("quit")
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        self._reader.join(5)  # it ends at the child's end of output
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()


def _send_phase(child: _Child, plan: Plan, publish: Callable[[int, int], None]) -> dict[str, Any]:
    """Publish ``plan.count`` messages (windowed or paced); return the receiver's result."""
    child.command(f"phase {plan.kind} {plan.count}")
    child.reply()  # phase armed
    child.progress = 0
    first_send = time.monotonic_ns()
    interval = 1.0 / plan.rate if plan.rate else 0.0
    next_send = time.monotonic()
    for seq in range(plan.count):
        if interval:
            delay = next_send - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            next_send += interval
        else:
            # Closed loop: never more than WINDOW messages beyond what has arrived.
            backlog = seq - child.progress
            if backlog >= WINDOW:
                child.wait_progress_above(seq - WINDOW)
        publish(seq, time.monotonic_ns())
    child.command("end")
    result = child.reply()
    result["first_send_ns"] = first_send
    return result


def _row(variant: str, plan: Plan, size: int, result: dict[str, Any]) -> dict[str, Any]:
    elapsed = (result["last_arrival_ns"] - result["first_send_ns"]) / 1e9
    unique = result["unique"]
    return {
        "variant": variant,
        "kind": plan.kind,
        "phase": plan.phase,
        "size_bytes": size,
        "messages": plan.count,
        "rate_target": plan.rate or None,
        "messages_per_s": unique / elapsed if elapsed > 0 and unique else 0.0,
        "p50_ms": result["p50_ms"],
        "p99_ms": result["p99_ms"],
        "handoff_p50_us": result.get("handoff_p50_us"),
        "handoff_p99_us": result.get("handoff_p99_us"),
        **{name: result.get(name) for name in _TAIL_COLUMNS},
        "lost": plan.count - unique,
        "duplicates": result["duplicates"],
    }


def _run_variant(
    variant: str, quick: bool, datagram_size: int, dialer: str = "sender"
) -> list[dict[str, Any]]:
    child = _Child(variant, datagram_size)
    try:
        ready = child.reply(timeout=60)
        sender: _LeanSender | _StockSender
        if VARIANTS[variant] is None:  # a lean receiver
            sender = _LeanSender(
                ready["address"],
                datagram_size,
                child if dialer == "receiver" else None,
                signed=variant == "lean-signed",
                path_mtu_discovery=variant != "lean-no-pmtud",
            )
        else:
            sender = _StockSender(ready["address"], variant)
        try:
            rows = []
            plans = _plans(quick)
            if variant == "lean-signed":
                # Signed data carries no send time: throughput of attestations only.
                plans = [p for p in plans if (p.kind, p.phase) == ("attestation", "throughput")]
            for plan in plans:
                size = sender.size(plan.kind)
                publish = functools.partial(sender.publish, plan.kind)
                result = _send_phase(child, plan, publish)
                rows.append(_row(variant, plan, size, result))
            if variant != "lean-signed":
                round_trips = sender.round_trips(60 if quick else 300)
                round_trips["variant"] = variant  # every lean variant's own row
                rows.append(round_trips)
            for row in rows:  # stock always has the sender dial
                row["dialer"] = dialer if variant.startswith("lean") else "sender"
            if sender.publish_failures:
                raise RuntimeError(f"{variant}: {sender.publish_failures} publishes failed")
            return rows
        finally:
            sender.close()
    finally:
        child.close()


class _LeanSender:
    """The sending lean driver, driven from this (non-loop) main thread."""

    def __init__(
        self,
        address: str,
        datagram_size: int,
        dialing_receiver: _Child | None,
        *,
        signed: bool = False,
        path_mtu_discovery: bool = True,
    ) -> None:
        """Connect to the receiver at ``address``; with ``dialing_receiver``, that
        receiver dials this sender instead (gossip then arrives on a connection the
        receiver dialed). ``signed``: attestations from the signed pool."""
        self.signed = signed
        import queue

        from lean_p2p.driver import DriverConfig, NetworkDriver
        from lean_p2p.net import Dial, PeerConnected

        self.events: queue.Queue[Any] = queue.Queue()
        config = DriverConfig(
            listen_address="/ip4/127.0.0.1/udp/0/quic-v1",
            max_datagram_size=datagram_size,
            path_mtu_discovery=path_mtu_discovery,
        )
        self.driver = NetworkDriver(config, self.events.put)
        self.driver.start()
        if not self.driver.wait_ready(30):
            raise RuntimeError("lean sender did not start")
        self.peer_id = address.rsplit("/p2p/", 1)[1]
        if dialing_receiver is None:
            self.driver.send(Dial(address))
        else:
            dialing_receiver.command(f"dial {self.driver.listen_addresses[0]}")
            dialing_receiver.reply()
        self._await(lambda e: isinstance(e, PeerConnected))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            topics = self.driver.statistics()["topics"]
            if topics.get(ATTESTATION_TOPIC, (0, 0))[0] and topics.get(BLOCK_TOPIC, (0, 0))[0]:
                break
            time.sleep(0.02)
        self.publish_failures = 0

    def _await(self, predicate: Callable[[Any], bool], timeout: float = 30.0) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            event = self.events.get(timeout=max(0.0, deadline - time.monotonic()))
            if predicate(event):
                return event
            self._note(event)

    def _note(self, event: Any) -> None:
        from lean_p2p.net import PublishFailed

        if isinstance(event, PublishFailed):
            self.publish_failures += 1

    def size(self, kind: str) -> int:
        from lean_p2p.driver import codec

        return len(codec.encode_gossip(self._attestation_or_message(kind, 0, 0)))

    def _attestation_or_message(self, kind: str, seq: int, t_ns: int) -> Any:
        if self.signed and kind == "attestation":
            from dataclasses import replace

            # The signed data stays as signed; the validator index (not signed) makes
            # each message distinct and tells the receiver its sequence number.
            _, signed = _signed_pool()[seq % _SIGNED_POOL]
            return replace(signed, validator_index=seq)
        return self._message(kind, seq, t_ns)

    _templates: dict[tuple[str, int], Any] = {}

    @classmethod
    def _message(cls, kind: str, seq: int, t_ns: int) -> Any:
        """A distinct message per ``seq`` stamped with ``t_ns``; the random bulk
        (signature, block proof) comes from a small pool built once, so building
        messages costs the sender what an application's encoder would."""
        from dataclasses import replace

        from lean_p2p.driver.samples import sample_attestation, sample_block

        key = (kind, seq % 16)
        template: Any = cls._templates.get(key)
        if template is None:
            if kind == "attestation":
                template = sample_attestation(seq % 16, 1)
            else:
                template = sample_block(seq % 16 + 1, BLOCK_SIZES[kind])
            cls._templates[key] = template
        if kind == "attestation":
            return replace(template, validator_index=seq, data=replace(template.data, slot=t_ns))
        return replace(template, block=replace(template.block, slot=seq + 1, proposer_index=t_ns))

    def publish(self, kind: str, seq: int, t_ns: int) -> None:
        from lean_p2p.net import GossipTopic, Publish

        topic = GossipTopic.ATTESTATION if kind == "attestation" else GossipTopic.BLOCK
        self.driver.send(Publish(topic, self._attestation_or_message(kind, seq, t_ns)))

    def round_trips(self, count: int) -> dict[str, Any]:
        from lean_p2p.driver.samples import sample_status
        from lean_p2p.net import RequestCompleted, RequestFailed, SendRequest

        status = sample_status(1)
        latencies = []
        start = time.monotonic()
        for request_id in range(count):
            sent = time.monotonic_ns()
            self.driver.send(SendRequest(self.peer_id, request_id, status))
            done = self._await(lambda e: isinstance(e, RequestCompleted | RequestFailed))
            if isinstance(done, RequestFailed):
                raise RuntimeError(f"lean request failed: {done}")
            latencies.append((time.monotonic_ns() - sent) / 1e6)
        return _round_trip_row("lean", count, time.monotonic() - start, latencies)

    def close(self) -> None:
        self.driver.stop()
        self.driver.join(20)
        while not self.events.empty():
            self._note(self.events.get_nowait())


def _round_trip_row(
    variant: str, count: int, elapsed: float, latencies: list[float]
) -> dict[str, Any]:
    latencies.sort()
    return {
        "variant": variant,
        "kind": "status",
        "phase": "round_trips",
        "size_bytes": 80,
        "messages": count,
        "rate_target": None,
        "messages_per_s": count / elapsed,
        "p50_ms": report.percentile(latencies, 0.5),
        "p99_ms": report.percentile(latencies, 0.99),
        "lost": 0,
        "duplicates": 0,
    }


class _StockSender:
    """A stock py-libp2p publisher on its own trio thread (as its docs set one up)."""

    def __init__(self, address: str, variant: str) -> None:
        import trio

        self._trio = trio
        self._variant = variant
        self._ready = threading.Event()
        self._address = address
        self.publish_failures = 0
        self._thread = threading.Thread(target=lambda: trio.run(self._main), name="stock-sender")
        self._thread.start()
        if not self._ready.wait(60):
            raise RuntimeError("stock sender did not start")

    async def _main(self) -> None:
        import multiaddr
        from libp2p.peer.peerinfo import info_from_p2p_addr
        from libp2p.tools.anyio_service import background_trio_service

        trio = self._trio
        host, pubsub, gossipsub, listen = _stock_node(self._variant)
        async with (
            host.run(listen),
            background_trio_service(pubsub),
            background_trio_service(gossipsub),
        ):
            await pubsub.wait_until_ready()
            info = info_from_p2p_addr(multiaddr.Multiaddr(self._address))
            await host.connect(info)
            for topic in (ATTESTATION_TOPIC, BLOCK_TOPIC):
                await pubsub.wait_for_subscription(info.peer_id, topic, timeout=30)
            # py-libp2p drops an outbound RPC over 1 MiB: the limit, per peer queue,
            # raised to lean's own (the receiver's inbound limit is raised likewise).
            for queue in pubsub.peer_queues.values():
                queue.max_message_size = STOCK_MAX_MESSAGE_BYTES
            self.host, self.pubsub, self.peer = host, pubsub, info.peer_id
            self._token = trio.lowlevel.current_trio_token()
            self._done = trio.Event()
            self._ready.set()
            await self._done.wait()
            pubsub.seen_messages.stop()  # else its cleanup thread outlives the host

    def _call(self, function: Callable[..., Any], *args: Any) -> Any:
        return self._trio.from_thread.run(function, *args, trio_token=self._token)

    def size(self, kind: str) -> int:
        return _LeanSizes.size(kind)

    def publish(self, kind: str, seq: int, t_ns: int) -> None:
        topic = ATTESTATION_TOPIC if kind == "attestation" else BLOCK_TOPIC
        self._call(self.pubsub.publish, topic, _stock_payload(kind, seq, t_ns))

    def round_trips(self, count: int) -> dict[str, Any]:
        from libp2p.custom_types import TProtocol

        async def exchange() -> None:
            stream = await self.host.new_stream(self.peer, [TProtocol(STOCK_STATUS_PROTOCOL)])
            await stream.write(b"\x00" * 80)
            await stream.close_write()
            await _read_to_end(stream)
            await stream.close()

        latencies = []
        start = time.monotonic()
        for _ in range(count):
            sent = time.monotonic_ns()
            self._call(exchange)
            latencies.append((time.monotonic_ns() - sent) / 1e6)
        return _round_trip_row(self._variant, count, time.monotonic() - start, latencies)

    def close(self) -> None:
        self._token.run_sync_soon(self._done.set)
        self._thread.join(30)


class _LeanSizes:
    """Stock carries opaque bytes of exactly the lean wire size of each kind."""

    _cache: dict[str, int] = {}

    @classmethod
    def size(cls, kind: str) -> int:
        if kind not in cls._cache:
            from lean_p2p.driver import codec

            cls._cache[kind] = len(codec.encode_gossip(_LeanSender._message(kind, 0, 0)))
        return cls._cache[kind]


def _stock_payload(kind: str, seq: int, t_ns: int) -> bytes:
    size = _LeanSizes.size(kind)
    header = seq.to_bytes(8, "little") + t_ns.to_bytes(8, "little")
    return header + os.urandom(size - len(header))


def _stock_node(variant: str) -> tuple[Any, Any, Any, list[Any]]:
    """A py-libp2p node as its pubsub documentation sets one up; spam protection off.

    ``stock``: ``new_host()`` defaults (Ed25519 identity, TCP, Noise, yamux);
    ``stock-quic``: the same over py-libp2p's QUIC-v1 transport, as lean uses.
    """
    import multiaddr
    from libp2p import new_host
    from libp2p.custom_types import TProtocol
    from libp2p.pubsub.gossipsub import GossipSub
    from libp2p.pubsub.pubsub import Pubsub

    if VARIANTS[variant] == "quic":
        listen = [multiaddr.Multiaddr("/ip4/127.0.0.1/udp/0/quic-v1")]
        host = new_host(enable_quic=True, listen_addrs=listen)
    else:
        listen = [multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]
        host = new_host()
    gossipsub = GossipSub(
        protocols=[TProtocol("/meshsub/1.0.0")],
        degree=8,
        degree_low=6,
        degree_high=12,
        heartbeat_interval=1,
        spam_protection_enabled=False,
    )
    pubsub = Pubsub(host, gossipsub, max_inbound_rpc_size=STOCK_MAX_MESSAGE_BYTES)
    return host, pubsub, gossipsub, listen


async def _read_to_end(stream: Any) -> bytes:
    # py-libp2p's QUIC streams report a clean close of both sides as a reset;
    # read_some tells the two apart (TCP streams end with StreamEOF as usual).
    from lean_p2p.driver.reqresp import read_some

    data = b""
    while (chunk := await read_some(stream)) is not None:
        data += chunk
    return data


# ===================================================================== receiver


class _Recorder:
    """Receiver-side bookkeeping of one phase (only the receiving loop touches it)."""

    def __init__(self, out: TextIO) -> None:
        from lean_p2p.tools.bench.latency import GcWatch

        self._out = out
        #: every collection, (start, end) in monotonic ns, once the receiver installs it
        self.gc_watch = GcWatch()
        self.reset(0)

    def reset(self, expected: int) -> None:
        self.expected = expected
        self.seen: set[int] = set()
        self.duplicates = 0
        self.latencies_ms: list[float] = []
        #: lean receivers: from the driver's emit (on its trio thread) to the handler,
        #: and its two parts: waiting for the drain that handled it to begin (the
        #: wakeup and the GIL), and queueing in that drain behind other events
        self.handoffs_us: list[float] = []
        self.waits_us: list[float] = []
        self.queues_us: list[float] = []
        #: the wait split by the loop thread's clocks: (busy, core, gil) in us, or None
        #: where the event did not wait or a reading is missing
        self.wait_parts_us: list[tuple[float, float, float] | None] = []
        self.gc_watch.pauses.clear()  # only this phase's collections
        self.last_arrival_ns = 0

    def handoff(
        self,
        emitted_ns: int,
        drain_started_ns: int,
        at_emit: tuple[int, int] | None = None,
        at_drain: tuple[int, int] | None = None,
    ) -> None:
        """One event's hand-off: emitted at ``emitted_ns``, handled now, in the drain
        that began at ``drain_started_ns``; with the loop thread's clock readings
        (:meth:`LoopClock.read`) at the emit and at the drain's start, its wait is
        split too."""
        from lean_p2p.tools.bench.latency import split_wait

        now = time.monotonic_ns()
        began = max(drain_started_ns, emitted_ns)
        self.handoffs_us.append((now - emitted_ns) / 1e3)
        self.waits_us.append((began - emitted_ns) / 1e3)
        self.queues_us.append((now - began) / 1e3)
        parts = None
        if at_emit is not None and at_drain is not None and began > emitted_ns:
            busy, core, gil = split_wait(began - emitted_ns, at_emit, at_drain)
            parts = (busy / 1e3, core / 1e3, gil / 1e3)
        self.wait_parts_us.append(parts)

    def record(self, seq: int, sent_ns: int | None) -> None:
        now = time.monotonic_ns()
        if seq in self.seen:
            self.duplicates += 1
            return
        self.seen.add(seq)
        if sent_ns is not None:
            self.latencies_ms.append((now - sent_ns) / 1e6)
        self.last_arrival_ns = now
        count = len(self.seen)
        if count % _PROGRESS_EVERY == 0 or count == self.expected:
            self._out.write(f"p {count}\n")
            self._out.flush()

    def result(self) -> dict[str, Any]:
        latencies = sorted(self.latencies_ms)
        handoffs = sorted(self.handoffs_us)
        return {
            "unique": len(self.seen),
            "duplicates": self.duplicates,
            "p50_ms": report.percentile(latencies, 0.5),
            "p99_ms": report.percentile(latencies, 0.99),
            "handoff_p50_us": report.percentile(handoffs, 0.5) if handoffs else None,
            "handoff_p99_us": report.percentile(handoffs, 0.99) if handoffs else None,
            **self._handoff_tail(),
            "last_arrival_ns": self.last_arrival_ns,
        }

    def _handoff_tail(self) -> dict[str, Any]:
        """Where the slowest 1 % of hand-offs waited, and the phase's collections."""
        if not self.handoffs_us:
            return {}
        threshold = report.percentile(sorted(self.handoffs_us), 0.99)
        tail = [i for i, value in enumerate(self.handoffs_us) if value >= threshold]
        pauses = [(end - start) / 1e3 for start, end in self.gc_watch.pauses]
        split = [parts for i in tail if (parts := self.wait_parts_us[i]) is not None]
        return {
            "handoff_tail_wait_us": report.median([self.waits_us[i] for i in tail]),
            **{
                name: report.median([parts[position] for parts in split]) if split else None
                for position, name in enumerate(
                    ("handoff_tail_busy_us", "handoff_tail_core_us", "handoff_tail_gil_us")
                )
            },
            "handoff_tail_queue_us": report.median([self.queues_us[i] for i in tail]),
            "gc_pauses": len(pauses),
            "gc_max_us": max(pauses, default=0.0),
        }

    def reply(self, document: dict[str, Any]) -> None:
        self._out.write(json.dumps(document) + "\n")
        self._out.flush()


def _run_receiver(variant: str) -> int:
    # The parent stops this process through its stdin ("quit"), in order. A Ctrl-C in a
    # terminal reaches the whole process group, so this process leaves it to the parent.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    niceness = os.environ.get(_RECEIVER_NICE_ENV)
    if niceness is not None:  # --sender-nice: before any thread starts, so all inherit it
        os.setpriority(os.PRIO_PROCESS, 0, int(niceness))
    try:
        _receive(variant)
    except BrokenPipeError:
        # The parent is gone (it was stopped at once): nobody is left to read results.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def _receive(variant: str) -> None:
    if VARIANTS[variant] is None:  # a lean receiver
        import asyncio

        sys.setswitchinterval(_SWITCH_INTERVAL_S.get(variant, sys.getswitchinterval()))
        try:
            import uvloop

            uvloop.install()
        except ImportError:
            pass
        from lean_p2p.runtime.mailbox import DEFAULT_YIELD_TO_LOOP_S

        asyncio.run(
            _lean_receiver(
                signed=variant == "lean-signed",
                path_mtu_discovery=variant != "lean-no-pmtud",
                yield_to_loop_s=0.0 if variant == "lean-no-yield" else DEFAULT_YIELD_TO_LOOP_S,
            )
        )
    else:
        import trio

        trio.run(_stock_receiver, variant)


async def _lean_receiver(
    *, signed: bool = False, yield_to_loop_s: float = 0.0, path_mtu_discovery: bool = True
) -> None:
    import asyncio

    from lean_p2p.consensus.hashing import attestation_data_root
    from lean_p2p.crypto import verify
    from lean_p2p.driver import DriverConfig, NetworkDriver
    from lean_p2p.driver.samples import sample_status
    from lean_p2p.net import (
        Dial,
        GossipAttestation,
        GossipBlock,
        InboundRequest,
        SendResponseChunk,
        SendResponseEnd,
    )
    from lean_p2p.node.verification import (
        SignatureCheck,
        VerificationService,
        VerifiedBatch,
        VerifySignatures,
        default_workers,
    )
    from lean_p2p.runtime import LEAN_LANES, Mailbox
    from lean_p2p.tools.bench.latency import LoopClock

    loop = asyncio.get_running_loop()
    recorder = _Recorder(sys.stdout)
    status = sample_status(2)

    keys = {signed_vote.data.slot: key for key, signed_vote in _signed_pool()} if signed else {}
    service: VerificationService | None = None

    def handle(lane: str, item: object) -> None:
        event = item
        if isinstance(item, tuple):  # what emit puts: (emitted at, loop clock, event)
            emitted_ns, at_emit, event = item
            recorder.handoff(
                emitted_ns, mailbox.drain_started_ns, at_emit, mailbox.drain_clock_reading
            )
        if isinstance(event, GossipAttestation) and service is not None:
            vote = event.attestation
            data = vote.data
            check = SignatureCheck(
                keys.get(data.slot, b""), data.slot, attestation_data_root(data), vote.signature
            )
            service.submit(VerifySignatures(vote.validator_index, (check,)))
        elif isinstance(event, VerifiedBatch) and service is not None:
            service.settle(event)
            for result in event.results:
                if result.all_valid:  # counted only once verified
                    recorder.record(result.ticket, None)
        elif isinstance(event, GossipAttestation):
            recorder.record(event.attestation.validator_index, event.attestation.data.slot)
        elif isinstance(event, GossipBlock):
            recorder.record(event.block.block.slot - 1, event.block.block.proposer_index)
        elif isinstance(event, InboundRequest):
            driver.send(SendResponseChunk(event.request_id, status))
            driver.send(SendResponseEnd(event.request_id))

    class StampedMailbox(Mailbox):
        """Stamps when each drain begins (the drain is the loop's callback), with the
        loop thread's clock then."""

        drain_started_ns = 0
        drain_clock_reading: tuple[int, int] | None = None

        def _drain(self) -> None:
            self.drain_started_ns = time.monotonic_ns()
            if loop_clock is not None:
                self.drain_clock_reading = loop_clock.read()
            super()._drain()

    loop_clock = LoopClock.open()  # this is the loop thread

    mailbox = StampedMailbox(LEAN_LANES, handle)
    gc.callbacks.append(recorder.gc_watch)  # for the receiver process's whole life
    if signed:
        service = VerificationService(
            lambda c: verify(c.public_key, c.slot, c.message, c.signature).valid,
            lambda batch: mailbox.put("verified", batch),
            loop.call_soon,
            workers=default_workers(),
        )

    # As a node does: the driver's puts hand the GIL over (see lean-no-yield).
    senders = {
        lane: mailbox.sender(lane, yield_to_loop_s=yield_to_loop_s) for lane in mailbox.lane_names
    }
    to_attestations, to_blocks = senders["attestations"], senders["blocks"]
    to_requests, to_control = senders["peer_requests"], senders["control"]

    def emit(event: object) -> None:
        # The driver's thread: each event goes in stamped, for the hand-off delay, with
        # the loop thread's clock read just before the stamp (the reading's own few
        # microseconds stay out of the delay).
        at_emit = loop_clock.read() if loop_clock is not None else None
        stamped = (time.monotonic_ns(), at_emit, event)
        if isinstance(event, GossipAttestation):
            to_attestations(stamped)
        elif isinstance(event, GossipBlock):
            to_blocks(stamped)
        elif isinstance(event, InboundRequest):
            to_requests(stamped)
        else:
            to_control(stamped)

    config = DriverConfig(
        listen_address="/ip4/127.0.0.1/udp/0/quic-v1",
        max_datagram_size=_datagram_size(),
        path_mtu_discovery=path_mtu_discovery,
    )
    driver = NetworkDriver(config, emit)

    def dial(address: str) -> None:
        driver.send(Dial(address))

    driver.start()
    await loop.run_in_executor(None, driver.wait_ready, 30)
    recorder.reply({"address": driver.listen_addresses[0]})
    try:
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not await _receiver_command(line, recorder, asyncio.sleep, dial):
                break
    finally:
        driver.stop()
        await loop.run_in_executor(None, driver.join, 20)
        if service is not None:
            service.close()
            await loop.run_in_executor(None, service.join, 20)
        await mailbox.aclose()
        if loop_clock is not None:
            loop_clock.close()


async def _receiver_command(
    line: str,
    recorder: _Recorder,
    sleep: Callable[[float], Any],
    dial: Callable[[str], None] | None = None,
) -> bool:
    """Apply one parent command; False on quit or end of input."""
    words = line.split()
    if not words or words[0] == "quit":
        return False
    if words[0] == "dial":
        if dial is None:
            raise RuntimeError("this receiver cannot dial")
        dial(words[1])
        recorder.reply({"dialing": words[1]})
    elif words[0] == "phase":
        recorder.reset(int(words[2]))
        recorder.reply({"armed": True})
    elif words[0] == "end":
        # Wait for stragglers: until all arrived or nothing new for two seconds.
        last_count, quiet_since = -1, time.monotonic()
        while len(recorder.seen) < recorder.expected:
            if len(recorder.seen) != last_count:
                last_count, quiet_since = len(recorder.seen), time.monotonic()
            elif time.monotonic() - quiet_since > 2.0:
                break
            await sleep(0.01)
        recorder.reply(recorder.result())
    return True


async def _stock_receiver(variant: str) -> None:
    import trio
    from libp2p.custom_types import TProtocol
    from libp2p.tools.anyio_service import background_trio_service

    recorder = _Recorder(sys.stdout)
    host, pubsub, gossipsub, listen = _stock_node(variant)

    async def answer_status(stream: Any) -> None:
        await _read_to_end(stream)
        await stream.write(b"\x01" * 80)
        await stream.close()

    host.set_stream_handler(TProtocol(STOCK_STATUS_PROTOCOL), answer_status)

    async def consume(subscription: Any) -> None:
        while True:
            message = await subscription.get()
            seq = int.from_bytes(message.data[:8], "little")
            sent = int.from_bytes(message.data[8:16], "little")
            recorder.record(seq, sent)

    async with (
        host.run(listen),
        background_trio_service(pubsub),
        background_trio_service(gossipsub),
    ):
        await pubsub.wait_until_ready()
        async with trio.open_nursery() as nursery:
            for topic in (ATTESTATION_TOPIC, BLOCK_TOPIC):
                nursery.start_soon(consume, await pubsub.subscribe(topic))
            address = f"{host.get_addrs()[0]}"
            if "/p2p/" not in address:
                address += f"/p2p/{host.get_id()}"
            recorder.reply({"address": address})
            stdin = trio.wrap_file(sys.stdin)
            while await _receiver_command(await stdin.readline(), recorder, trio.sleep):
                pass
            nursery.cancel_scope.cancel()
        pubsub.seen_messages.stop()

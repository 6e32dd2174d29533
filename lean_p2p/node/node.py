"""The node: driver, mailbox, P2P core and chain composed, with ordered start and stop.

Threads. :meth:`Node.emit_threadsafe` is the one entry point for foreign threads (the
driver's trio thread, native threads, an embedder's threads): it routes an event into a
mailbox lane and returns (after at most ``NodeConfig.yield_to_loop_s`` when it woke the
loop, letting the loop take the GIL first). Everything else — start, stop, the handler, the P2P
core, the chain, the HTTP API, metrics, clock callbacks — runs on the loop thread that
entered ``async with Node(...)``.

Every state change passes through the mailbox: network events (routed by kind into the
lean lanes), interval ticks and the P2P core's timer (``control``), and the admin API's
role change (handled as a ``control`` item too). The handler reads the clock once per
item and passes that ``now`` down; with a recorder attached it writes ``(now, lane,
item)`` first, so a recording is the node's complete input and :meth:`Node.replay_item`
reproduces it.

Start order: mailbox, chain, P2P core, metrics and API, recorder, driver (events start
flowing), then ticks. Stop order is the reverse, and the mailbox closes only after the
driver stopped, so every event the mailbox accepted is handled (and recorded) before
:meth:`Node.stop` returns; :attr:`NodeReport.lost_events` proves it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Protocol, Self

from lean_p2p import net
from lean_p2p.consensus.signatures import SignatureVerifier, XmssVerifier
from lean_p2p.consensus.validator import Signer
from lean_p2p.crypto import verify
from lean_p2p.net.checks import check_event
from lean_p2p.node.api import ApiServer
from lean_p2p.node.chain import ChainOutput, ChainService, ChainSummary
from lean_p2p.node.checkpoint_sync import Anchor, fetch_anchor
from lean_p2p.node.clock import Clock, ScheduledCall, SystemClock
from lean_p2p.node.config import NodeConfig
from lean_p2p.node.control import IntervalTick, SetAggregator, TimerExpired
from lean_p2p.node.keys import XmssSigner, load_validator_keys
from lean_p2p.node.metrics import ChainGauges, LaneCounters, NodeMetrics
from lean_p2p.node.persistence import ChainWriter, OpenedChain, StorageStatistics, open_chain
from lean_p2p.node.recording import Recorder
from lean_p2p.node.runtime_policy import GcPauses, apply_runtime_policy
from lean_p2p.node.verification import (
    Outcome,
    SignatureCheck,
    SignaturesVerified,
    VerificationService,
    VerificationStatistics,
    VerifiedBatch,
    VerifySignatures,
    default_workers,
)
from lean_p2p.node.views import NodeApiSource
from lean_p2p.p2p.core import P2PCore
from lean_p2p.runtime import (
    LEAN_LANES,
    HandlerFailure,
    LaneSpec,
    LoopAffinity,
    Mailbox,
    MailboxClosed,
    MailboxStatistics,
)
from lean_p2p.runtime.lanes import (
    AGGREGATES,
    ATTESTATIONS,
    BLOCKS,
    CONTROL,
    PEER_REQUESTS,
    RESPONSES,
    VERIFIED,
)
from lean_p2p.runtime.timers import DeadlineTimer

__all__ = ["DriverPort", "Node", "NodeFailed", "NodeObserver", "NodeReport", "lane_for_event"]

_VERIFIER_JOIN_TIMEOUT = 30.0


def _verify_check(check: SignatureCheck) -> bool:
    """One XMSS verification (worker threads; C, without the GIL)."""
    return verify(check.public_key, check.slot, check.message, check.signature).valid


logger = logging.getLogger(__name__)

_LANE_BY_EVENT: Mapping[type, str] = {
    net.GossipBlock: BLOCKS,
    net.GossipAttestation: ATTESTATIONS,
    net.GossipAggregate: AGGREGATES,
    net.InboundRequest: PEER_REQUESTS,
    net.ResponseChunk: RESPONSES,
    net.RequestCompleted: RESPONSES,
    net.RequestFailed: RESPONSES,
    net.DriverStarted: CONTROL,
    net.DriverStopped: CONTROL,
    net.PeerConnected: CONTROL,
    net.PeerDisconnected: CONTROL,
    net.DialFailed: CONTROL,
    net.PublishFailed: CONTROL,
}


def lane_for_event(event: object) -> str:
    """The mailbox lane a driver event goes to (``control`` for anything unknown)."""
    return _LANE_BY_EVENT.get(type(event), CONTROL)


class DriverPort(Protocol):
    """What the node needs of a network driver (the real one, a fake, a native one).

    ``start`` and ``send`` are called on the loop thread and must not block; ``emit``
    (given to ``start``) is thread-safe. ``stop`` returns once no more events will be
    emitted.
    """

    def start(self, emit: Callable[[net.Event], None]) -> None: ...

    def send(self, command: net.Command) -> None: ...

    async def stop(self) -> None: ...


class NodeObserver(Protocol):
    """Watches a node's traffic (:meth:`Node.attach_observer`); a profiler's hook.

    ``enqueued`` runs on the emitting thread (the driver's, an embedder's), just before
    the event is put into its lane, so it must be cheap and thread-safe and must not
    touch the node. ``handled`` runs on the loop thread after every handled item, with
    ``started`` and ``finished`` in ``time.perf_counter`` seconds.
    """

    def enqueued(self, event: object) -> None: ...

    def handled(self, lane: str, item: object, started: float, finished: float) -> None: ...


class NodeFailed(RuntimeError):
    """The node stopped because a component failed (a handler raised, the driver died)."""


@dataclass(frozen=True, slots=True)
class NodeReport:
    """A node's numbers at one moment (loop thread builds it; any thread may read it)."""

    name: str
    peer_id: str
    chain: ChainSummary
    peers: int
    handled: int
    accepted: int
    dropped: int
    depth: int
    #: accepted by the mailbox but neither handled nor evicted (counted) — 0 when closed
    lost_events: int
    handler_errors: int
    mailbox: Mapping[str, Any]
    #: digest of the whole store (see ChainService.fingerprint); replay must match it
    fingerprint: bytes
    chain_counters: Mapping[str, int]
    p2p_counters: Mapping[str, int]
    driver: Mapping[str, Any]  # the driver's own statistics, when it has any
    #: the verification service's, when signatures are verified off the loop
    verification: VerificationStatistics | None = None
    #: the chain database writer's, when the node keeps its chain on disk
    storage: StorageStatistics | None = None
    #: garbage collections in the process while the node ran (GcPauses.as_dict)
    gc: Mapping[str, Any] = field(default_factory=dict)
    time: float = field(default_factory=time.time)

    def as_dict(self) -> dict[str, Any]:
        chain = self.chain
        return {
            "name": self.name,
            "peer_id": self.peer_id,
            "current_slot": chain.current_slot,
            "head_slot": chain.head_slot,
            "head_root": "0x" + chain.head_root.hex(),
            "justified_slot": chain.justified_slot,
            "finalized_slot": chain.finalized_slot,
            "finalized_root": "0x" + chain.finalized_root.hex(),
            "blocks": chain.blocks,
            "parked": chain.parked,
            "peers": self.peers,
            "handled": self.handled,
            "accepted": self.accepted,
            "dropped": self.dropped,
            "depth": self.depth,
            "lost_events": self.lost_events,
            "handler_errors": self.handler_errors,
            "mailbox": dict(self.mailbox),
            "fingerprint": "0x" + self.fingerprint.hex(),
            "chain_counters": dict(self.chain_counters),
            "p2p_counters": dict(self.p2p_counters),
            "driver": dict(self.driver),
            "verification": (
                dataclasses.asdict(self.verification) if self.verification is not None else None
            ),
            "storage": dataclasses.asdict(self.storage) if self.storage is not None else None,
            "gc": dict(self.gc),
            "time": self.time,
        }


class Node:
    """An embeddable lean node; ``async with Node(config) as node:`` on the loop thread.

    ``driver`` defaults to the py-libp2p driver on its own trio thread; pass a
    :class:`~lean_p2p.node.testing.FakeDriver` (tests) or your own :class:`DriverPort`.
    ``clock`` defaults to wall time; pass a :class:`~lean_p2p.node.testing.ManualClock`
    to drive time by hand. ``live=False`` builds a node for replay: no ticks, no timers,
    inputs come only from :meth:`replay_item`.
    """

    def __init__(
        self,
        config: NodeConfig,
        *,
        driver: DriverPort | None = None,
        clock: Clock | None = None,
        lanes: Sequence[LaneSpec] = LEAN_LANES,
        verifier: SignatureVerifier | None = None,
        signer: Signer | None = None,
        live: bool = True,
        fail_fast: bool = True,
        serve_api: bool = True,
        on_handled: Callable[[str, object, float, float], None] | None = None,
        anchor: Anchor | None = None,
        opened: OpenedChain | None = None,
    ) -> None:
        """``anchor``: the checked finalized state and block to start from instead of
        genesis (:func:`~lean_p2p.node.checkpoint_sync.fetch_anchor`; with
        ``config.checkpoint_sync_url``, :meth:`create` fetches it).

        With ``config.data_dir``, the chain database there is opened and read here
        (blocking file I/O: build the node before its loop serves, or use :meth:`create`,
        which does it on a worker thread and passes ``opened``). A database holding a
        chain takes precedence over ``anchor``. Raises
        :class:`~lean_p2p.node.database.DatabaseError`."""
        if config.data_dir is not None and opened is None:
            opened = open_chain(config.data_dir, config.genesis)
        restored = opened.stored if opened is not None else None
        if config.checkpoint_sync_url is not None and anchor is None and restored is None:
            if opened is not None:
                opened.database.close()
            raise ValueError(
                "config.checkpoint_sync_url is set: build the node with "
                "'await Node.create(config)', or fetch the anchor first and pass anchor="
            )
        if restored is not None and anchor is not None:
            logger.info(
                "the database holds a chain: starting from it, not from the checkpoint",
                extra={"finalized_slot": restored.finalized_slot, "anchor_slot": anchor.slot},
            )
            anchor = None
        self.config = config
        self.anchor = anchor
        self._opened = opened
        self._writer: ChainWriter | None = None
        self.affinity = LoopAffinity(f"Node {config.name}", "Node.emit_threadsafe")
        self._driver_given = driver
        self._clock: Clock = clock or SystemClock()
        self._lanes = tuple(lanes)
        missing = set(_LANE_BY_EVENT.values()) - {spec.name for spec in self._lanes}
        if missing:
            raise ValueError(f"the node routes events to lanes {sorted(missing)}: add them")
        if config.keystore is not None and signer is None:
            # File reads and SSZ decoding: construct the node before its loop serves.
            keys = load_validator_keys(
                config.keystore, config.validator_indices, config.genesis.validator_keys
            )
            signer = XmssSigner(keys)
        if config.verification == "xmss" and verifier is None:
            # A devnet shared with leanSpec takes its stand-in prover's empty proofs, so it
            # cannot demand a proposer signature in every block proof.
            verifier = XmssVerifier(
                require_proposer_signature=config.keystore is not None
                and not config.accept_empty_proofs,
                accept_empty_proofs=config.accept_empty_proofs,
            )
        self._verifier = verifier
        self._verification: VerificationService | None = None
        self._live = live
        self._gc_pauses = GcPauses()
        self._fail_fast = fail_fast
        self._serve_api = serve_api
        # (lane, item, started, finished) in perf_counter seconds, after every handled
        # item: the profiler's hook for hand-off and handling latency.
        self._on_handled = on_handled
        # A sampler watching events in and out (attach_observer); read by every emitting
        # thread, so it is replaced whole, never mutated.
        self._observer: NodeObserver | None = None
        self.chain = ChainService(
            config.genesis,
            validator_indices=config.validator_indices,
            is_aggregator=config.is_aggregator,
            verifier=verifier,
            verify_async=config.verification == "xmss",
            signer=signer,
            anchor=(anchor.state, anchor.block) if anchor is not None else None,
            restored=restored,
        )
        self.p2p = P2PCore(self.chain, bootnodes=config.bootnodes)
        self.metrics = NodeMetrics(
            node_name=config.name,
            validator_count=config.genesis.validator_count,
            chain_gauges=self._chain_gauges,
            lane_counters=self._lane_counters,
            wakeups=lambda: self._mailbox.statistics().wakeups if self._mailbox else 0,
        )
        self._handler_seconds = {
            spec.name: self.metrics.handler_seconds.labels(lane=spec.name) for spec in lanes
        }
        self._mailbox: Mailbox | None = None
        #: the network's puts, by lane: yielding senders (config.yield_to_loop_s)
        self._event_senders: dict[str, Callable[[object], bool]] = {}
        self._driver: DriverPort | None = None
        #: the loop the node runs on, for report_threadsafe (set by start)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._api: ApiServer | None = None
        self._recorder: Recorder | None = None
        self._tick_handle: ScheduledCall | None = None
        self._p2p_timer: DeadlineTimer[ScheduledCall] = DeadlineTimer(
            lambda deadline: self._clock.call_at(deadline, self._on_timer)
        )
        self._started = False
        self._stopping = False
        self._stopped = asyncio.Event()
        self._failure: BaseException | None = None
        self._last_coverage = 0
        self._counted: dict[str, int] = {}  # chain counters already exported
        self._stop_task: asyncio.Task[None] | None = None  # kept: tasks are weakly held
        self.peer_id = config.key.peer_id
        self.api_ports: list[int] = []

    # --- lifecycle --------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    @classmethod
    async def create(cls, config: NodeConfig, **options: Any) -> Node:
        """The node; with ``config.checkpoint_sync_url``, its anchor is fetched first on a
        worker thread (HTTP and SSZ decoding stay off the calling loop).
        With ``config.data_dir``, the database is opened and read on a worker thread too,
        and a database that holds a chain makes the checkpoint fetch unnecessary.
        Raises :class:`~lean_p2p.node.checkpoint_sync.CheckpointSyncError` or
        :class:`~lean_p2p.node.database.DatabaseError`."""
        if config.data_dir is not None and "opened" not in options:
            options["opened"] = await asyncio.to_thread(open_chain, config.data_dir, config.genesis)
        opened: OpenedChain | None = options.get("opened")
        restarting = opened is not None and opened.stored is not None
        if config.checkpoint_sync_url is not None and "anchor" not in options and not restarting:
            options["anchor"] = await asyncio.to_thread(
                fetch_anchor, config.checkpoint_sync_url, config.genesis
            )
        return cls(config, **options)

    async def start(self) -> None:
        self.affinity.bind()
        self._loop = asyncio.get_running_loop()
        if self._started:
            raise RuntimeError("a node starts once")
        self._started = True
        self._gc_pauses.install()
        try:
            await self._start_components()
            if self._live:
                # Started: what is alive now lives as long as the node.
                apply_runtime_policy(
                    gc_freeze=self.config.gc_freeze,
                    yield_to_loop_s=self.config.yield_to_loop_s,
                    node=self.config.name,
                )
        except BaseException:
            # Undo what did start (a bound port, a recorder thread) before reporting.
            self._stopping = True
            await self._shutdown()
            self._stopped.set()
            raise

    async def _start_components(self) -> None:
        self._mailbox = Mailbox(self._lanes, self._handle, on_handler_error=self._on_handler_error)
        # Network events come from threads that go on running Python after each one
        # (the driver's): the put that wakes the loop lets it take the GIL first.
        self._event_senders = {
            lane: self._mailbox.sender(lane, yield_to_loop_s=self.config.yield_to_loop_s)
            for lane in self._mailbox.lane_names
        }
        if self._opened is not None:
            # Before any input: the first commit holds the anchor (or the restored chain).
            self._writer = ChainWriter(self._opened.database, name=self.config.name)
            self.chain.attach_storage(self._writer)
        if self._serve_api and self.config.api_port is not None:
            ports = [self.config.api_port]
            if self.config.metrics_port is not None:
                ports.append(self.config.metrics_port)
            self._api = ApiServer(
                NodeApiSource(self.chain, self.set_aggregator),
                self.metrics,
                self.config.listen_ip,
                report=lambda: self.report().as_dict(),
            )
            self.api_ports = await self._api.start(ports)
        if self.config.record_path is not None:
            self._recorder = Recorder(self.config.record_path, self.recording_header())
        if not self._live:
            return
        if self.chain.verify_async:
            mailbox = self._mailbox
            self._verification = VerificationService(
                _verify_check,
                lambda batch: mailbox.put(VERIFIED, batch),
                asyncio.get_running_loop().call_soon,
                workers=self.config.verification_workers or default_workers(),
                priority=self.config.verification_priority,
                name=f"verify:{self.config.name}",
            )
        if self._driver_given is not None:
            self._driver = self._driver_given
            self._driver.start(self.emit_threadsafe)
        else:
            # Our own driver builds every event from its constructors; checking each
            # again would only cost time on the hottest path.
            self._driver = _default_driver(self.config)
            self._driver.start(self._emit_trusted)
        self._schedule_tick(self._current_interval())

    async def stop(self) -> None:
        """Ordered shutdown; idempotent. Raises :class:`NodeFailed` if a component failed."""
        if self._stopping:
            await self._stopped.wait()
        else:
            self._stopping = True
            try:
                await self._shutdown()
            finally:
                self._stopped.set()
        if self._failure is not None:
            raise NodeFailed(f"node {self.config.name} failed: {self._failure!r}") from (
                self._failure
            )

    async def _shutdown(self) -> None:
        try:
            await self._shutdown_components()
        finally:
            # Whatever failed above: a stopped node must not keep a gc callback.
            self._gc_pauses.remove()

    async def _shutdown_components(self) -> None:
        if self._tick_handle is not None:
            self._tick_handle.cancel()
        self._tick_handle = None
        self._p2p_timer.cancel()
        if self._api is not None:
            await self._api.stop()
        if self._driver is not None:
            # After this no event is emitted, so closing the mailbox next loses nothing.
            await self._driver.stop()
        if self._verification is not None:
            # Then no verification is asked for: cancel what waits, let what runs finish
            # (every result reaches the mailbox, whose close hands it to the chain).
            self._verification.close()
            await asyncio.to_thread(self._verification.join, _VERIFIER_JOIN_TIMEOUT)
        if self._mailbox is not None:
            await self._mailbox.aclose()
        if self._recorder is not None:
            await asyncio.to_thread(self._recorder.close)
        # Last: the mailbox is closed, so the chain offers nothing more; close commits
        # what is pending.
        if self._writer is not None:
            self.chain.persist_final()
            await asyncio.to_thread(self._writer.close)
        elif self._opened is not None:
            self._opened.database.close()

    async def wait_stopped(self) -> None:
        """Wait until the node stopped (by :meth:`stop` or a failure)."""
        await self._stopped.wait()

    @property
    def failure(self) -> BaseException | None:
        return self._failure

    # --- any thread ---------------------------------------------------------------------

    def emit_threadsafe(self, event: net.Event) -> None:
        """Route a driver event into its lane (any thread; never waits on the loop, but
        an emit that wakes the loop yields the GIL to it for up to
        ``config.yield_to_loop_s``: see :meth:`lean_p2p.runtime.Mailbox.sender`).

        An ill-typed event raises :class:`TypeError` here, in the caller's thread,
        saying which field is wrong, and never reaches the loop. A full lane drops it
        (the mailbox counts it). After close, raises
        :class:`~lean_p2p.runtime.MailboxClosed` so the driver knows to stop.
        """
        check_event(event)
        self._emit_trusted(event)

    def _emit_trusted(self, event: net.Event) -> None:
        """:meth:`emit_threadsafe` without the type check, for the node's own driver."""
        mailbox = self._mailbox
        if mailbox is None:
            raise MailboxClosed("the node has not started")
        observer = self._observer
        if observer is not None:
            # Before the put: once put, the loop may handle the event at any moment.
            observer.enqueued(event)
        self._event_senders[lane_for_event(event)](event)

    def attach_observer(self, observer: NodeObserver | None) -> None:
        """Watch every network event in (any thread) and every item out (loop thread);
        None detaches. Loop thread. See :class:`NodeObserver`."""
        self.affinity.check()
        self._observer = observer

    # --- loop thread: the handler -------------------------------------------------------

    def _handle(self, lane: str, item: object) -> None:
        started = time.perf_counter()
        now = self._clock.now()
        if self._recorder is not None:
            self._recorder.record(now, lane, item)
        self._process(item, now)
        finished = time.perf_counter()
        self._handler_seconds[lane].observe(finished - started)
        if self._on_handled is not None:
            self._on_handled(lane, item, started, finished)
        observer = self._observer
        if observer is not None:
            observer.handled(lane, item, started, finished)

    def replay_item(self, lane: str, item: object, now: float) -> None:
        """Handle one recorded item at its recorded time (replay; loop thread)."""
        self.affinity.check()
        started = time.perf_counter()
        self._process(item, now)
        self._handler_seconds[lane].observe(time.perf_counter() - started)

    def _process(self, item: object, now: float) -> None:
        p2p = self.p2p
        match item:
            case IntervalTick():
                for request in self.chain.on_interval(item.interval):
                    p2p.handle_request(request, now)
                if self._writer is not None:
                    # Every tick too: a writer stuck on its disk commits nothing, and
                    # its queue and backlog gauges must show that.
                    self._observe_storage(self._writer)
            case VerifiedBatch():
                if self._verification is not None:
                    self._verification.settle(item)
                for result in item.results:
                    for output in self.chain.on_verified(result):
                        self._route(output, now)
            case TimerExpired():
                p2p.handle_timer(now)
            case SetAggregator():
                self.chain.is_aggregator = item.enabled
            case net.DriverStopped() if self._live and not self._stopping:
                p2p.handle_event(item, now)
                # The network died under a running node: fail loudly, never run on
                # silently without it.
                self._fail(NodeFailed(f"driver stopped: {item.reason} {item.error or ''}"))
            case net.DriverStopped() if self._stopping and item.error is None:
                # The driver ended because we stop: not worth a warning in every log.
                p2p.stop(f"driver stopped ({item.reason})", orderly=True)
            case _:
                p2p.handle_event(item, now)  # type: ignore[arg-type]
        self._pump(now)
        self._observe_chain_timings()
        if self._live and not self._stopping:
            self._arm_timer()

    def _pump(self, now: float) -> None:
        """Move outputs until quiet: commands to the driver, chain values to the chain."""
        p2p, chain = self.p2p, self.chain
        while True:
            commands = p2p.drain_commands()
            driver = self._driver
            if driver is not None:
                for command in commands:
                    driver.send(command)
            values = p2p.drain_to_chain()
            if not values:
                return
            for value in values:
                for output in chain.on_input(value):
                    self._route(output, now)

    def _route(self, output: ChainOutput, now: float) -> None:
        """A chain output to whoever serves it: the verification service, or the P2P
        core."""
        if not isinstance(output, VerifySignatures):
            self.p2p.handle_request(output, now)
            return
        service = self._verification
        if service is not None and service.submit(output):
            return
        if self._live:
            # Refused (at capacity, or closing), or no service: the vote is not judged
            # (IGNORE, no penalty). A replay has no service and takes the recorded
            # results instead.
            refused = SignaturesVerified(output.ticket, Outcome.OVERLOADED)
            for answer in self.chain.on_verified(refused):
                self._route(answer, now)

    def _observe_chain_timings(self) -> None:
        chain, metrics = self.chain, self.metrics
        if chain.reorg_depths:
            for depth in chain.reorg_depths:
                metrics.reorgs.inc()
                metrics.reorg_depth.observe(depth)
            chain.reorg_depths.clear()
        coverage = chain.last_aggregate_coverage
        if coverage != self._last_coverage:
            metrics.aggregate_coverage_diff_validators.set(coverage - self._last_coverage)
            metrics.aggregate_coverage_validators.set(coverage)
            metrics.aggregate_coverage_subnets.set(1)  # ATTESTATION_COMMITTEE_COUNT is 1
            self._last_coverage = coverage
        # Counters move by the chain's own counts since the last handled item.
        for event, count in chain.counters.items():
            delta = count - self._counted.get(event, 0)
            if delta:
                self._counted[event] = count
                metrics.chain_events.labels(event=event).inc(delta)
                if event == "attestations_accepted":
                    metrics.attestations_valid.inc(delta)
                elif event == "attestations_rejected":
                    metrics.attestations_invalid.inc(delta)
        blocks, attestations = self.chain.timings.drain()
        for seconds in blocks:
            self.metrics.block_processing_seconds.observe(seconds)
            self.metrics.state_transition_seconds.observe(seconds)
        for seconds in attestations:
            self.metrics.attestation_validation_seconds.observe(seconds)
        if self._writer is not None and self._writer.timings:
            # Once per commit, not per item: the hot path stays cheap.
            self._observe_storage(self._writer)

    def _observe_storage(self, writer: ChainWriter) -> None:
        metrics = self.metrics
        for timing in writer.drain_timings():
            metrics.storage_commit_seconds.observe(timing.seconds)
            metrics.storage_commit_blocks.observe(timing.blocks)
        stats = writer.statistics()
        metrics.storage_queue_depth.set(stats.queue_depth)
        metrics.storage_pending_blocks.set(stats.pending_blocks)
        metrics.storage_blocks_dropped.set(stats.blocks_dropped)
        metrics.storage_write_errors.set(stats.write_errors)

    def _on_handler_error(self, failure: HandlerFailure) -> None:
        self.metrics.handler_errors.labels(lane=failure.lane).inc()
        logger.error(
            "node handler failed",
            exc_info=failure.error,
            extra={"lane": failure.lane, "item": type(failure.item).__name__},
        )
        if self._fail_fast:
            self._fail(failure.error)

    def _fail(self, error: BaseException) -> None:
        """Record the first failure and start stopping (loop thread)."""
        if self._failure is not None:
            return
        self._failure = error
        if not self._stopping:
            # Loud: the node stops; stop() (and wait_stopped) surface the failure.
            self._stop_task = asyncio.get_running_loop().create_task(self._stop_quietly())

    async def _stop_quietly(self) -> None:
        # The failure is reported to whoever awaits stop() or reads ``failure``.
        with contextlib.suppress(NodeFailed):
            await self.stop()

    # --- loop thread: time --------------------------------------------------------------

    def _current_interval(self) -> int:
        return self.chain.slot_clock.total_intervals(self._clock.now())

    def _schedule_tick(self, interval: int) -> None:
        when = self.chain.slot_clock.interval_start(interval + 1)
        self._tick_handle = self._clock.call_at(when, lambda: self._on_tick(interval + 1))

    def _on_tick(self, interval: int) -> None:
        if self._stopping or self._mailbox is None:
            return
        # A late wakeup (loop busy, machine suspended) catches up in one tick: the store
        # runs the skipped intervals itself.
        interval = max(interval, self._current_interval())
        self._mailbox.put(CONTROL, IntervalTick(time=self._clock.now(), interval=interval))
        self._schedule_tick(interval)

    def _arm_timer(self) -> None:
        """One armed timer for the P2P core, re-armed only when its deadline changes."""
        self._p2p_timer.arm(self.p2p.next_deadline())

    def _on_timer(self) -> None:
        self._p2p_timer.forget()
        if self._stopping or self._mailbox is None:
            return
        self._mailbox.put(CONTROL, TimerExpired(time=self._clock.now()))

    # --- loop thread: admin and views ---------------------------------------------------

    def set_aggregator(self, enabled: bool) -> None:
        """Change the aggregator role, as a handled (and recorded) control item."""
        self.affinity.check()
        self._handle(CONTROL, SetAggregator(enabled))

    def recording_header(self) -> dict[str, Any]:
        config = self.config
        return {
            "format": 1,
            "verification": config.verification,
            "node": config.name,
            "peer_id": self.peer_id,
            "genesis_time": config.genesis.genesis_time,
            "validator_keys": [[a.hex(), p.hex()] for a, p in config.genesis.validator_keys],
            "validator_indices": list(config.validator_indices),
            "is_aggregator": config.is_aggregator,
            "bootnodes": list(config.bootnodes),
        }

    def report_threadsafe(self, timeout: float = 10.0) -> NodeReport:
        """:meth:`report`, from any thread but the loop's: the loop builds it between
        two batches, so every figure comes from one consistent moment, and this waits
        for it (at most ``timeout`` seconds, then :class:`TimeoutError`)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            raise RuntimeError("the node is not running: call report() on its thread")
        if self.affinity.bound and self.affinity.is_current():
            raise RuntimeError("report_threadsafe() on the loop thread would wait forever")
        answer: concurrent.futures.Future[NodeReport] = concurrent.futures.Future()

        def build() -> None:
            try:
                answer.set_result(self.report())
            except BaseException as error:  # handed to the waiting thread, not lost
                answer.set_exception(error)

        loop.call_soon_threadsafe(build)
        return answer.result(timeout)

    def mailbox_statistics(self) -> MailboxStatistics | None:
        return self._mailbox.statistics() if self._mailbox is not None else None

    def report(self) -> NodeReport:
        """Where the node stands (loop thread; from another thread use
        :meth:`report_threadsafe`, which asks the loop)."""
        self.affinity.check()
        stats = self.mailbox_statistics()
        lanes = stats.lanes if stats is not None else ()
        accepted = sum(lane.accepted for lane in lanes)
        handled = sum(lane.handled for lane in lanes)
        evicted = sum(lane.evicted for lane in lanes)
        depth = sum(lane.depth for lane in lanes)
        p2p_stats = self.p2p.statistics()
        return NodeReport(
            name=self.config.name,
            peer_id=self.peer_id,
            chain=self.chain.summary(),
            peers=p2p_stats.peers,
            handled=handled,
            accepted=accepted,
            dropped=sum(lane.dropped for lane in lanes),
            depth=depth,
            lost_events=accepted - handled - evicted - depth,
            handler_errors=sum(lane.handler_errors for lane in lanes),
            mailbox=stats.as_dict() if stats is not None else {},
            fingerprint=self.chain.fingerprint(),
            chain_counters=dict(self.chain.counters),
            p2p_counters=dict(p2p_stats.counters),
            driver=self._driver_statistics(),
            verification=(
                self._verification.statistics() if self._verification is not None else None
            ),
            storage=self._writer.statistics() if self._writer is not None else None,
            gc=self._gc_pauses.as_dict(),
        )

    def _driver_statistics(self) -> dict[str, Any]:
        statistics = getattr(self._driver, "statistics", None)
        if statistics is None:
            return {}
        result: dict[str, Any] = statistics()
        return result

    async def wait_idle(self, *, max_rounds: int = 1000, patience: float = 30.0) -> None:
        """Yield to the loop until the mailbox is empty and no verification is in
        flight (tests; loop thread). While only worker threads are busy, this polls
        every half millisecond, for at most ``patience`` seconds."""
        deadline = time.monotonic() + patience
        rounds = 0
        while True:
            if self._idle():
                await asyncio.sleep(0)
                if self._idle():
                    return
            if self._mailbox_depth() == 0:
                # Only the verification workers are busy: their results will come.
                if time.monotonic() > deadline:
                    raise TimeoutError(f"verifications still in flight after {patience}s")
                await asyncio.sleep(0.0005)
                continue
            rounds += 1
            if rounds > max_rounds:
                raise TimeoutError(f"mailbox still busy after {max_rounds} loop rounds")
            await asyncio.sleep(0)

    def _mailbox_depth(self) -> int:
        stats = self.mailbox_statistics()
        return 0 if stats is None else stats.depth

    def _idle(self) -> bool:
        service = self._verification
        verifying = service is not None and service.statistics().in_flight > 0
        return self._mailbox_depth() == 0 and not verifying

    def _chain_gauges(self) -> ChainGauges:
        summary = self.chain.summary()
        return ChainGauges(
            head_slot=summary.head_slot,
            current_slot=summary.current_slot,
            safe_target_slot=summary.safe_target_slot,
            justified_slot=summary.justified_slot,
            finalized_slot=summary.finalized_slot,
            connected_peers=self.p2p.statistics().peers,
        )

    def _lane_counters(self) -> dict[str, LaneCounters]:
        stats = self.mailbox_statistics()
        if stats is None:
            return {}
        return {
            lane.name: LaneCounters(lane.depth, lane.accepted, lane.dropped, lane.handled)
            for lane in stats.lanes
        }


def _default_driver(config: NodeConfig) -> DriverPort:
    from lean_p2p.node.libp2p_driver import LibP2PDriver

    return LibP2PDriver(config)

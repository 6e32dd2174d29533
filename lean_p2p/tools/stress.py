"""The mailbox race-condition stress scenario, shared by the tests and ``lean-p2p stress``.

Threads: producer groups run their own threads (Python threads here; other kinds, such
as native threads, plug in as another :class:`ProducerGroup`); the checker — the
mailbox handler — runs on the loop thread; :func:`run_stress` runs on the caller's
thread and owns the loop it creates.

Every producer sends ``(producer_id, sequence)`` for ``sequence = 0, 1, 2, ...`` in
random bursts with random sleeps, retrying an item the lane rejected (so the run counts
backpressure without losing events). The checker, on the loop thread, verifies:

- exactly once: a bitmap per producer flags duplicates; an unseen sequence is lost;
- per-producer order: a sequence below the highest already seen is reordered;
- final state equals a sequential model: a per-producer rolling hash over the sequences
  in arrival order must equal the hash over ``0..n-1`` computed without the mailbox;
- the affinity guard stays silent (the handler checks it on every event).

With ``close_after`` the loop closes the mailbox while producers are still sending:
each producer stops at its first :class:`MailboxClosed`, and every sequence whose put
returned normally must still have been handled. A group whose producers hand their
events to a queue of its own first (native threads, through the ring) closes that queue
just before: its producers race that close instead, and everything it accepted reaches
the mailbox before the mailbox closes.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, cast

from lean_p2p.native.records import NativeEvent
from lean_p2p.runtime import affinity
from lean_p2p.runtime.affinity import LoopAffinity
from lean_p2p.runtime.mailbox import LaneSpec, Mailbox, MailboxClosed, OverflowPolicy
from lean_p2p.tools.native_producers import read_stamp
from lean_p2p.tools.running import Progress, run_loop

__all__ = [
    "LoopKind",
    "OverloadResult",
    "ProducerGroup",
    "ProducerOutcome",
    "StressConfig",
    "StressResult",
    "ThreadProducers",
    "loop_factory",
    "run_overload_async",
    "run_stress",
    "run_stress_async",
    "sequential_model",
]

LoopKind = Literal["uvloop", "asyncio"]

#: Producers spread over these FIFO lanes (producer i uses lane i mod 3), so the drain's
#: priority rounds interleave lanes while each producer's order must still hold.
STRESS_LANES = (
    LaneSpec("lane-0", 65_536, OverflowPolicy.REJECT_NEWEST, 64),
    LaneSpec("lane-1", 65_536, OverflowPolicy.REJECT_NEWEST, 32),
    LaneSpec("lane-2", 65_536, OverflowPolicy.REJECT_NEWEST, 16),
)

_MODULUS = (1 << 61) - 1
_MULTIPLIER = 1_000_003


def _fold(state: int, sequence: int) -> int:
    return (state * _MULTIPLIER + sequence + 1) % _MODULUS


def sequential_model(count: int) -> int:
    """The rolling hash of one producer's sequences handled in order, one by one."""
    state = 0
    for sequence in range(count):
        state = _fold(state, sequence)
    return state


@dataclass(frozen=True, slots=True)
class StressConfig:
    events: int = 100_000
    #: producer threads of the default kind (Python threads)
    producers: int = 8
    loop: LoopKind = "asyncio"
    seed: int = 1
    #: largest burst a producer sends back to back
    burst_max: int = 64
    #: chance that a producer sleeps after a burst, and the longest sleep
    sleep_probability: float = 0.05
    sleep_max_s: float = 0.0005
    #: close the mailbox once this many events were handled (producers racing close)
    close_after: int | None = None
    #: give up (and report the missing events as lost) after this long
    timeout_s: float = 600.0
    budget: int = 1024


@dataclass(frozen=True, slots=True)
class ProducerOutcome:
    producer_id: int
    kind: str
    #: sequences 0..accepted-1 returned normally from put
    accepted: int
    #: puts rejected because the lane was full, then retried
    rejected_retries: int
    #: the producer stopped at MailboxClosed (close race) or at the timeout
    stopped_early: bool


class ProducerGroup(Protocol):
    """A kind of producer. ``lean-p2p stress`` runs one group per kind.

    ``start`` (loop thread) launches ``len(plan)`` producers with ids ``first_id,
    first_id+1, ...``; producer ``first_id + i`` must send ``(id, 0) .. (id, plan[i]-1)``
    in order into ``mailbox`` (each item either that tuple or a native event whose
    stamp names producer ``i`` and the sequence), on lane ``lane_for(id)`` or another
    lane of the mailbox, and stop at :class:`MailboxClosed`. ``aclose`` (loop thread)
    runs just before the run closes the mailbox under the producers. ``wait`` blocks
    (off the loop thread) until all have finished and returns their outcomes.
    """

    kind: str
    count: int

    def start(
        self,
        mailbox: Mailbox,
        lane_for: Callable[[int], str],
        first_id: int,
        plan: Sequence[int],
        config: StressConfig,
    ) -> None: ...

    async def aclose(self) -> None: ...

    def wait(self) -> list[ProducerOutcome]: ...


class ThreadProducers:
    """Python producer threads with random bursts and sleeps."""

    kind = "thread"

    def __init__(self, count: int) -> None:
        self.count = count
        self._threads: list[threading.Thread] = []
        # One slot per producer, written once by its own thread before it ends and read
        # only after join(): no concurrent access.
        self._outcomes: list[ProducerOutcome | None] = []

    def start(
        self,
        mailbox: Mailbox,
        lane_for: Callable[[int], str],
        first_id: int,
        plan: Sequence[int],
        config: StressConfig,
    ) -> None:
        put = mailbox.put
        self._outcomes = [None] * len(plan)
        deadline = time.monotonic() + config.timeout_s
        for index, events in enumerate(plan):
            producer_id = first_id + index
            thread = threading.Thread(
                target=self._produce,
                args=(put, lane_for(producer_id), producer_id, index, events),
                kwargs={"config": config, "deadline": deadline},
                name=f"stress-producer-{producer_id}",
                daemon=True,
            )
            self._threads.append(thread)
        for thread in self._threads:
            thread.start()

    def _produce(
        self,
        put: Callable[[str, object], bool],
        lane: str,
        producer_id: int,
        index: int,
        events: int,
        *,
        config: StressConfig,
        deadline: float,
    ) -> None:
        rng = random.Random(config.seed * 1_000_003 + producer_id)
        sequence = 0
        retries = 0
        stopped_early = False
        try:
            while sequence < events:
                burst_end = min(events, sequence + rng.randint(1, config.burst_max))
                while sequence < burst_end:
                    if put(lane, (producer_id, sequence)):
                        sequence += 1
                        continue
                    retries += 1  # lane full: back off briefly, then retry the same item
                    if time.monotonic() > deadline:
                        stopped_early = True
                        return
                    time.sleep(0.0002)
                if config.sleep_max_s and rng.random() < config.sleep_probability:
                    time.sleep(rng.random() * config.sleep_max_s)
        except MailboxClosed:
            stopped_early = True
        finally:
            self._outcomes[index] = ProducerOutcome(
                producer_id, self.kind, sequence, retries, stopped_early
            )

    async def aclose(self) -> None:
        """Nothing to close: each thread puts into the mailbox itself."""

    def wait(self) -> list[ProducerOutcome]:
        for thread in self._threads:
            thread.join()
        outcomes = [outcome for outcome in self._outcomes if outcome is not None]
        if len(outcomes) != len(self._outcomes):
            raise RuntimeError("a stress producer thread died without an outcome")
        return outcomes


@dataclass(frozen=True, slots=True)
class StressResult:
    loop: str
    producers: int
    #: events whose put returned normally (all planned ones unless close_after is set)
    events: int
    handled: int
    lost: int
    duplicated: int
    reordered: int
    wrong_thread: int
    #: producers whose final state differs from the sequential model
    state_mismatches: int
    rejected_retries: int
    elapsed_s: float
    events_per_s: float
    timed_out: bool
    mailbox: dict[str, Any] = field(default_factory=dict)
    producer_kinds: dict[str, int] = field(default_factory=dict)
    #: stopped early on request (Ctrl-C): the mailbox was closed under the producers,
    #: and the checks cover every event accepted until then
    interrupted: bool = False

    @property
    def ok(self) -> bool:
        return not (
            self.lost
            or self.duplicated
            or self.reordered
            or self.wrong_thread
            or self.state_mismatches
            or self.timed_out
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "handled": self.handled,
            "lost": self.lost,
            "duplicated": self.duplicated,
            "reordered": self.reordered,
            "wrong_thread": self.wrong_thread,
            "state_mismatches": self.state_mismatches,
            "events_per_s": self.events_per_s,
            "elapsed_s": self.elapsed_s,
            "rejected_retries": self.rejected_retries,
            "timed_out": self.timed_out,
            "interrupted": self.interrupted,
            "loop": self.loop,
            "producers": self.producers,
            "producer_kinds": self.producer_kinds,
            "ok": self.ok,
            "mailbox": self.mailbox,
        }


class _Checker:
    """The mailbox handler: verifies every event on the loop thread."""

    def __init__(self, plan: Sequence[int]) -> None:
        self.affinity = LoopAffinity("stress checker", "Mailbox.put")
        #: the producer id of a native event's stamp producer 0
        self.native_first_id = 0
        self.seen = [bytearray(events) for events in plan]
        self.highest = [-1] * len(plan)
        self.state = [0] * len(plan)
        self.handled = 0
        self.duplicated = 0
        self.reordered = 0
        self.foreign = 0  # events naming a producer or sequence outside the plan
        self.on_handled: Callable[[int], None] | None = None

    def __call__(self, _lane: str, item: object) -> None:
        self.affinity.check()
        if type(item) is tuple:
            producer_id, sequence = cast(tuple[int, int], item)
        else:  # a native event, as the ring's drain put it in the lane
            stamp = read_stamp(cast(NativeEvent, item).payload)
            producer_id, sequence = self.native_first_id + stamp.producer, stamp.sequence
        self.handled += 1
        seen = self.seen[producer_id]
        if not 0 <= sequence < len(seen):
            self.foreign += 1
            return
        if seen[sequence]:
            self.duplicated += 1
            return
        seen[sequence] = 1
        if sequence < self.highest[producer_id]:
            self.reordered += 1
        else:
            self.highest[producer_id] = sequence
        self.state[producer_id] = _fold(self.state[producer_id], sequence)
        if self.on_handled is not None:
            self.on_handled(self.handled)


def _split(events: int, producers: int) -> list[int]:
    share, extra = divmod(events, producers)
    return [share + (1 if index < extra else 0) for index in range(producers)]


async def run_stress_async(
    config: StressConfig,
    groups: Sequence[ProducerGroup] | None = None,
    *,
    stop: asyncio.Event | None = None,
    progress: Progress | None = None,
) -> StressResult:
    """Run the scenario on the running loop (the caller's loop thread).

    ``stop`` ends it early: the mailbox is closed under the producers, as with
    ``close_after``, so the result still checks every event accepted until then.
    """
    loop = asyncio.get_running_loop()
    groups = list(groups) if groups is not None else [ThreadProducers(config.producers)]
    total_producers = sum(group.count for group in groups)
    if total_producers < 1:
        raise ValueError("the stress run needs at least one producer")
    plan = _split(config.events, total_producers)
    checker = _Checker(plan)
    checker.affinity.bind()
    mailbox = Mailbox(STRESS_LANES, checker, loop=loop, budget=config.budget)
    lane_names = mailbox.lane_names
    violations_before = affinity.violation_count()
    close_task: asyncio.Task[None] | None = None

    async def close_under_producers() -> None:
        # The groups' own queues first: what they accepted reaches the mailbox.
        for group in groups:
            await group.aclose()
        await mailbox.aclose()

    if config.close_after is not None:
        threshold = config.close_after

        def close_when_due(handled: int) -> None:
            nonlocal close_task
            if handled >= threshold and close_task is None:
                close_task = loop.create_task(close_under_producers(), name="stress-close")

        checker.on_handled = close_when_due

    started = time.perf_counter()
    first_id = 0
    for group in groups:
        if group.kind == "native":
            checker.native_first_id = first_id
        group.start(
            mailbox,
            lambda producer_id: lane_names[producer_id % len(lane_names)],
            first_id,
            plan[first_id : first_id + group.count],
            config,
        )
        first_id += group.count
    outcomes: list[ProducerOutcome] = []
    timed_out = False
    interrupted = False

    async def close_on_stop() -> None:
        nonlocal close_task, interrupted
        assert stop is not None
        await stop.wait()
        interrupted = True
        if close_task is None:
            close_task = loop.create_task(close_under_producers(), name="stress-close")

    async def report_progress() -> None:
        assert progress is not None
        while True:
            elapsed = time.perf_counter() - started
            rate = checker.handled / elapsed if elapsed > 0 else 0.0
            progress.update(
                f"{checker.handled:,} of {config.events:,} events handled "
                f"({100 * checker.handled / config.events:.0f}%), {rate:,.0f}/s"
            )
            await asyncio.sleep(0.5)

    watchers = []
    if stop is not None:
        watchers.append(loop.create_task(close_on_stop(), name="stress-stop"))
    if progress is not None and progress.enabled:
        watchers.append(loop.create_task(report_progress(), name="stress-progress"))
    try:
        async with asyncio.timeout(config.timeout_s):
            for group in groups:
                outcomes.extend(await asyncio.to_thread(group.wait))
            if close_task is not None:
                await close_task
            await mailbox.aclose()
    except TimeoutError:
        timed_out = True
    finally:
        for watcher in watchers:
            watcher.cancel()
        if close_task is not None and not close_task.done():
            # a stop that came in while the run was already closing its mailbox
            await close_task
        if progress is not None:
            progress.done()
    elapsed = time.perf_counter() - started
    return _result(
        config=config,
        groups=groups,
        checker=checker,
        outcomes=outcomes,
        mailbox=mailbox,
        elapsed=elapsed,
        timed_out=timed_out,
        violations_before=violations_before,
        interrupted=interrupted,
    )


def _result(
    *,
    config: StressConfig,
    groups: Sequence[ProducerGroup],
    checker: _Checker,
    outcomes: Sequence[ProducerOutcome],
    mailbox: Mailbox,
    elapsed: float,
    timed_out: bool,
    violations_before: int,
    interrupted: bool = False,
) -> StressResult:
    accepted = {outcome.producer_id: outcome.accepted for outcome in outcomes}
    lost = 0
    mismatches = 0
    for producer_id, seen in enumerate(checker.seen):
        expected = accepted.get(producer_id, len(seen))
        unique = sum(seen)
        lost += max(0, expected - unique)
        if unique != expected or checker.state[producer_id] != sequential_model(expected):
            mismatches += 1
    events = sum(accepted.get(index, len(seen)) for index, seen in enumerate(checker.seen))
    return StressResult(
        loop=config.loop,
        producers=sum(group.count for group in groups),
        events=events,
        handled=checker.handled,
        lost=lost,
        duplicated=checker.duplicated + checker.foreign,
        reordered=checker.reordered,
        wrong_thread=affinity.violation_count() - violations_before,
        state_mismatches=mismatches,
        rejected_retries=sum(outcome.rejected_retries for outcome in outcomes),
        elapsed_s=elapsed,
        events_per_s=checker.handled / elapsed if elapsed > 0 else 0.0,
        timed_out=timed_out,
        mailbox=mailbox.statistics().as_dict(),
        producer_kinds={group.kind: group.count for group in groups},
        interrupted=interrupted,
    )


def loop_factory(kind: LoopKind) -> Callable[[], asyncio.AbstractEventLoop]:
    """A factory for the named loop; uvloop must be installed for ``"uvloop"``."""
    if kind == "uvloop":
        import uvloop

        factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
        return factory
    return asyncio.new_event_loop


def run_stress(config: StressConfig, groups: Sequence[ProducerGroup] | None = None) -> StressResult:
    """Run the scenario on a fresh loop of ``config.loop`` in the calling thread."""
    with asyncio.Runner(loop_factory=loop_factory(config.loop)) as runner:
        return runner.run(run_stress_async(config, groups))


def run_stress_command(
    config: StressConfig, groups: Sequence[ProducerGroup], progress: Progress
) -> StressResult:
    """``lean-p2p stress``: :func:`run_stress` with Ctrl-C and progress (main thread)."""
    return run_loop(
        lambda stop: run_stress_async(config, groups, stop=stop, progress=progress),
        use_uvloop=config.loop == "uvloop",
    )


@dataclass(frozen=True, slots=True)
class OverloadResult:
    """What a flood of the standard lanes did to them (see :func:`run_overload_async`)."""

    #: attestations offered over what the handler served while the flood lasted
    overload_factor: float
    attestations_offered: int
    attestations_handled: int
    attestations_evicted: int
    attestations_high_water: int
    attestations_capacity: int
    #: every one of the newest ``capacity`` attestations was handled
    freshest_survived: bool
    blocks_offered: int
    blocks_handled: int
    blocks_dropped: int
    blocks_in_order: bool
    #: offered == handled + dropped on every lane, nothing left queued
    accounted: bool
    mailbox: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return (
            self.freshest_survived
            and self.blocks_dropped == 0
            and self.blocks_in_order
            and self.accounted
            and self.attestations_high_water <= self.attestations_capacity + 1
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "overload_factor": self.overload_factor,
            "attestations_offered": self.attestations_offered,
            "attestations_handled": self.attestations_handled,
            "attestations_evicted": self.attestations_evicted,
            "attestations_high_water": self.attestations_high_water,
            "attestations_capacity": self.attestations_capacity,
            "freshest_survived": self.freshest_survived,
            "blocks_offered": self.blocks_offered,
            "blocks_handled": self.blocks_handled,
            "blocks_dropped": self.blocks_dropped,
            "blocks_in_order": self.blocks_in_order,
            "accounted": self.accounted,
            "ok": self.ok,
            "mailbox": self.mailbox,
        }


async def run_overload_async(
    *, flood_factor: float = 3.0, block_every: int = 64, service_s: float = 50e-6
) -> OverloadResult:
    """Flood ``LEAN_LANES`` at ``flood_factor`` times what the handler can serve.

    A slow handler spends ``service_s`` of busy work per item; a producer thread keeps
    the attestations offered at ``flood_factor`` times those served so far (three lane
    capacities in all) and sends one block per ``block_every`` attestations. The
    measured factor, offered over served while the flood lasted, is reported.
    """
    from lean_p2p.runtime.lanes import ATTESTATIONS, BLOCKS, LEAN_LANES

    capacity = next(spec.capacity for spec in LEAN_LANES if spec.name == ATTESTATIONS)
    flood = 3 * capacity
    handled: dict[str, list[int]] = {BLOCKS: [], ATTESTATIONS: []}

    def handler(lane: str, item: object) -> None:
        handled[lane].append(cast(int, item))
        deadline = time.perf_counter() + service_s
        while time.perf_counter() < deadline:  # a slow handler: busy, not sleeping
            pass

    mailbox = Mailbox(LEAN_LANES, handler)

    def produce() -> int:
        offered_blocks = 0
        sent = 0
        while sent < flood:
            # Offer flood_factor times what the loop has served so far: an overload
            # relative to the handler's real speed, whatever else the machine is doing.
            served = mailbox.statistics().lane(ATTESTATIONS).handled
            due = min(flood, int(flood_factor * served) + 64)
            for number in range(sent, due):
                mailbox.put(ATTESTATIONS, number)
                if number % block_every == 0:
                    mailbox.put(BLOCKS, offered_blocks)
                    offered_blocks += 1
            sent = due
            time.sleep(0.0002)
        return offered_blocks

    blocks_offered = await asyncio.to_thread(produce)
    served_during_flood = len(handled[ATTESTATIONS])
    await mailbox.aclose()
    stats = mailbox.statistics()
    attestations, blocks = stats.lane(ATTESTATIONS), stats.lane(BLOCKS)
    survivors = set(handled[ATTESTATIONS])
    return OverloadResult(
        overload_factor=flood / max(1, served_during_flood),
        attestations_offered=flood,
        attestations_handled=attestations.handled,
        attestations_evicted=attestations.evicted,
        attestations_high_water=attestations.high_water,
        attestations_capacity=capacity,
        freshest_survived=all(n in survivors for n in range(flood - capacity, flood)),
        blocks_offered=blocks_offered,
        blocks_handled=blocks.handled,
        blocks_dropped=blocks.dropped,
        blocks_in_order=handled[BLOCKS] == list(range(len(handled[BLOCKS]))),
        accounted=(
            stats.depth == 0
            and attestations.handled + attestations.evicted == flood
            and blocks.handled + blocks.dropped == blocks_offered
        ),
        mailbox=stats.as_dict(),
    )

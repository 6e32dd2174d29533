"""The node sampler: per-lane queueing delay, handler time, counts, CPU, and its edges.

A node with a fake driver; events come from a foreign thread as a driver's would. Every
wait is for a settled state (the node idle, a sample taken), never for a time.
"""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from lean_p2p.driver.samples import sample_attestation
from lean_p2p.net.events import GossipAttestation
from lean_p2p.node import sampling
from lean_p2p.node.config import GenesisSpec, NodeConfig
from lean_p2p.node.node import Node
from lean_p2p.node.sampling import NodeSampler, percentiles
from lean_p2p.node.testing import FakeDriver, ManualClock
from lean_p2p.runtime.lanes import ATTESTATIONS
from lean_p2p.wire.keys import NodeKey

GENESIS_TIME = 1_000


def _node(driver: FakeDriver) -> Node:
    config = NodeConfig(
        name="sampled", key=NodeKey.generate(), genesis=GenesisSpec.placeholder(GENESIS_TIME, 4)
    )
    return Node(config, driver=driver, clock=ManualClock(GENESIS_TIME), serve_api=False)


def _attestations(count: int) -> list[GossipAttestation]:
    return [
        GossipAttestation("peer", index.to_bytes(20, "big"), sample_attestation(index % 4, 1))
        for index in range(count)
    ]


def _inject_from_a_thread(driver: FakeDriver, events: list[GossipAttestation]) -> None:
    def emit_all() -> None:
        for event in events:
            driver.inject(event)

    thread = threading.Thread(target=emit_all)
    thread.start()
    thread.join()


async def test_every_handled_network_event_has_its_queueing_delay_and_handler_time() -> None:
    driver = FakeDriver()
    async with _node(driver) as node:
        with NodeSampler(node, interval=0.05) as sampler:
            sampler.begin("load")
            _inject_from_a_thread(driver, _attestations(200))
            await node.wait_idle()
            window = sampler.end()
    lane = window.lanes[ATTESTATIONS]
    assert (lane.accepted, lane.handled, lane.full, lane.evicted) == (200, 200, 0, 0)
    delays = window.delays[ATTESTATIONS]
    assert len(delays) == 200
    assert all(delay >= 0 for delay in delays)
    assert len(window.handling["GossipAttestation"]) == 200
    figures = window.as_dict()
    assert figures["lanes"][ATTESTATIONS]["delay_p99_ms"] is not None
    assert figures["handling"]["GossipAttestation"]["count"] == 200
    assert figures["label"] == "load"
    assert "loop" in figures["cpu_percent"]
    assert figures["rss_max_mb"] > 0


async def test_with_observing_off_the_counts_go_on_without_stamps() -> None:
    driver = FakeDriver()
    async with _node(driver) as node:
        with NodeSampler(node) as sampler:
            sampler.set_observing(False)
            sampler.begin("off")
            _inject_from_a_thread(driver, _attestations(50))
            await node.wait_idle()
            window = sampler.end()
            assert not sampler.observing
    assert window.lanes[ATTESTATIONS].handled == 50
    assert ATTESTATIONS not in window.delays
    assert window.handling == {}


async def test_the_timeline_reads_cpu_per_thread_and_memory() -> None:
    driver = FakeDriver()
    async with _node(driver) as node:
        with NodeSampler(node, interval=0.05) as sampler:
            # Readings come from the sampler thread through the loop: poll a count.
            while len(sampler.timeline) < 3:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
            readings = list(sampler.timeline)
    assert all(sample.rss_mb > 0 for sample in readings)
    assert any("loop" in sample.cpu for sample in readings)
    assert all(sample.seconds > 0 for sample in readings)


async def test_a_reading_older_than_a_window_edge_is_left_out() -> None:
    driver = FakeDriver()
    async with _node(driver) as node:
        with NodeSampler(node, interval=60.0) as sampler:
            stale = sampling._Reading.now()
            stale = sampling._Reading(stale.taken, {1: 1e6}, {}, stale.rss)  # huge CPU
            sampler.begin("edge")  # reads /proc after the stale reading was taken
            samples = len(sampler.timeline)
            sampler._collect(stale)  # as if the loop ran it late
            assert len(sampler.timeline) == samples
            assert "thread 1" not in sampler.end().cpu_seconds


async def test_a_stamp_never_handled_is_forgotten(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sampling, "_STAMP_TTL_S", -1.0)  # every stamp is already old
    driver = FakeDriver()
    async with _node(driver) as node:
        with NodeSampler(node) as sampler:
            sampler.enqueued(object())  # an event a full lane would have refused
            sampler.begin("next")
            assert sampler.forgotten_stamps == 1


async def test_forgetting_takes_only_stamps_still_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    driver = FakeDriver()
    async with _node(driver) as node:
        with NodeSampler(node) as sampler:
            waiting, handled = object(), object()
            sampler.enqueued(waiting)
            sampler.enqueued(handled)
            sampler.handled("attestations", handled, 0.0, 0.0)
            monkeypatch.setattr(sampling, "_STAMP_TTL_S", -1.0)
            sampler.begin("later")
            assert sampler.forgotten_stamps == 1  # the waiting one; the handled one is gone


async def test_threads_stamping_while_the_loop_forgets_never_break_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The loop must never iterate the table the emitting threads write: a collection
    # in the middle (gc.callbacks run Python) lets a writer change it.
    monkeypatch.setattr(sampling, "_STAMP_TTL_S", -1.0)  # every stamp is old at once
    driver = FakeDriver()
    writers, per_writer = 4, 20_000
    async with _node(driver) as node:
        with NodeSampler(node) as sampler:

            def stamp() -> None:
                for _ in range(per_writer):
                    sampler.enqueued([])  # a fresh object each time

            threads = [threading.Thread(target=stamp) for _ in range(writers)]
            for thread in threads:
                thread.start()
            while any(thread.is_alive() for thread in threads):
                sampler._forget_old_stamps(time.perf_counter())
                await asyncio.sleep(0)
            sampler._forget_old_stamps(time.perf_counter())
    # Every stamp was forgotten exactly once, none twice, none lost.
    assert sampler.forgotten_stamps == writers * per_writer


async def test_close_detaches_from_the_node_and_can_be_repeated() -> None:
    driver = FakeDriver()
    async with _node(driver) as node:
        sampler = NodeSampler(node)
        with sampler:
            pass
        sampler.close()
        _inject_from_a_thread(driver, _attestations(5))
        await node.wait_idle()
        assert sampler.end().lanes.get(ATTESTATIONS) is None or not sampler.end().delays


async def test_the_observer_sees_each_event_emitted_before_it_is_handled() -> None:
    order: list[tuple[str, int]] = []

    class Recorder:
        def enqueued(self, event: object) -> None:
            order.append(("in", id(event)))

        def handled(self, lane: str, item: object, started: float, finished: float) -> None:
            if isinstance(item, GossipAttestation):
                order.append(("out", id(item)))

    driver = FakeDriver()
    events = _attestations(20)
    async with _node(driver) as node:
        node.attach_observer(Recorder())
        _inject_from_a_thread(driver, events)
        await node.wait_idle()
        node.attach_observer(None)
    for event in events:
        assert order.index(("in", id(event))) < order.index(("out", id(event)))


async def test_a_sampler_needs_a_started_node() -> None:
    with pytest.raises(RuntimeError, match="after start"), NodeSampler(_node(FakeDriver())):
        pass


def test_an_interval_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        NodeSampler(object(), interval=0)  # type: ignore[arg-type]


def test_percentiles() -> None:
    assert percentiles([]) == {"p50": None, "p99": None, "max": None}
    spread = percentiles(float(v) for v in range(1, 101))
    assert spread == {"p50": 51.0, "p99": 100.0, "max": 100.0}


def test_a_process_resident_memory_is_read_by_pid_and_none_once_it_is_gone() -> None:
    import os
    import subprocess
    import sys

    from lean_p2p.node.sampling import process_rss_bytes

    own = process_rss_bytes(os.getpid())
    assert own is not None and own > 10 * 2**20  # an interpreter with the package loaded
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert process_rss_bytes(child.pid) is None  # reaped: no /proc entry any more

"""The composed node, driven by a fake driver and a manual clock (no sockets, no sleeps).

Covers: a lone node finalizes; two nodes linked by an in-memory gossip relay agree on
head and finality; bad input is rejected and counted, never raised; a failing handler
stops the node loudly; the close contract (no accepted event is lost) under producer
threads; recording and deterministic replay; the HTTP API served by a live node.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from lean_p2p.containers import (
    AttestationData,
    Block,
    BlockBody,
    Checkpoint,
    MultiMessageAggregate,
    SignedAttestation,
    SignedBlock,
)
from lean_p2p.net.commands import Publish, SendRequest
from lean_p2p.net.events import (
    Direction,
    GossipAttestation,
    GossipBlock,
    PeerConnected,
)
from lean_p2p.node.config import GenesisSpec, NodeConfig
from lean_p2p.node.node import Node, NodeFailed
from lean_p2p.node.replay import replay_recording
from lean_p2p.node.testing import FakeDriver, ManualClock
from lean_p2p.runtime import MailboxClosed
from lean_p2p.runtime.affinity import WrongThreadError
from lean_p2p.wire.keys import NodeKey
from tests.node.linked import GENESIS_TIME, INTERVAL, run_linked


def _config(name: str, indices: tuple[int, ...], validators: int = 4, **extra: Any) -> NodeConfig:
    return NodeConfig(
        name=name,
        key=NodeKey.generate(),
        genesis=GenesisSpec.placeholder(GENESIS_TIME, validators),
        validator_indices=indices,
        **extra,
    )


async def _run_intervals(clock: ManualClock, nodes: list[Node], intervals: int) -> None:
    for _ in range(intervals):
        clock.set(round(clock.now() + INTERVAL, 6))  # no float drift across many steps
        for node in nodes:
            await node.wait_idle()


async def test_lone_node_with_all_validators_finalizes() -> None:
    clock = ManualClock(GENESIS_TIME)
    driver = FakeDriver()
    config = _config("lone", (0, 1, 2, 3), is_aggregator=True)
    async with Node(config, driver=driver, clock=clock) as node:
        await _run_intervals(clock, [node], 5 * 8)
        report = node.report()
        assert report.chain.head_slot == 8
        assert report.chain.finalized_slot >= 5
        assert report.chain.justified_slot > report.chain.finalized_slot
        published = [c.message for c in driver.sent if isinstance(c, Publish)]
        assert sum(isinstance(m, SignedBlock) for m in published) == 8
        assert sum(isinstance(m, SignedAttestation) for m in published) == 4 * 8
    assert node.report().lost_events == 0
    assert driver.stopped


async def test_two_linked_nodes_agree_and_finalize() -> None:
    clock = ManualClock(GENESIS_TIME)
    drivers = {"a": FakeDriver("a"), "b": FakeDriver("b")}
    node_a = Node(_config("a", (0, 2), is_aggregator=True), driver=drivers["a"], clock=clock)
    node_b = Node(_config("b", (1, 3)), driver=drivers["b"], clock=clock)
    async with node_a, node_b:
        await run_linked(clock, [node_a, node_b], drivers, 5 * 10)
        report_a, report_b = node_a.report(), node_b.report()
        assert report_a.chain.head_root == report_b.chain.head_root
        assert report_a.chain.head_slot == 10
        assert report_a.chain.finalized_slot == report_b.chain.finalized_slot >= 5
        assert report_b.chain_counters["blocks_imported"] >= 5
    assert node_a.report().lost_events == node_b.report().lost_events == 0


def _block_on(parent: bytes, slot: int, state_root: bytes = b"\x11" * 32) -> SignedBlock:
    block = Block(
        slot=slot,
        proposer_index=slot % 4,
        parent_root=parent,
        state_root=state_root,
        body=BlockBody(attestations=()),
    )
    return SignedBlock(block=block, proof=MultiMessageAggregate(proof=b""))


async def test_invalid_and_orphan_blocks_are_counted_not_raised() -> None:
    clock = ManualClock(GENESIS_TIME + 10)
    driver = FakeDriver()
    async with Node(_config("n", ()), driver=driver, clock=clock) as node:
        driver.inject(PeerConnected("peer", Direction.INBOUND, "/ip4/127.0.0.1/udp/1/quic-v1"))
        await node.wait_idle()
        anchor = node.chain.anchor_root
        # Wrong state root and a mocked-prover-less proof: rejected by the store.
        driver.inject(GossipBlock("peer", b"\x01" * 20, _block_on(anchor, 1)))
        # Parent unknown: parked and fetched by root.
        orphan = _block_on(b"\x22" * 32, 2)
        driver.inject(GossipBlock("peer", b"\x02" * 20, orphan))
        await node.wait_idle()
        counters = node.report().chain_counters
        assert counters["blocks_rejected"] == 1
        assert counters["blocks_parked"] == 1
        assert node.report().chain.parked == 1
        fetches = [c for c in driver.sent if isinstance(c, SendRequest)]
        assert any(getattr(c.request, "roots", ()) == (b"\x22" * 32,) for c in fetches)
        assert node.report().handler_errors == 0


async def test_invalid_attestation_is_counted() -> None:
    clock = ManualClock(GENESIS_TIME + 10)
    driver = FakeDriver()
    async with Node(_config("n", ()), driver=driver, clock=clock) as node:
        unknown = Checkpoint(root=b"\x33" * 32, slot=1)
        data = AttestationData(slot=1, head=unknown, target=unknown, source=unknown)
        from lean_p2p.consensus.validator import PlaceholderSigner

        attestation = SignedAttestation(
            validator_index=0, data=data, signature=PlaceholderSigner().sign_attestation(0, data)
        )
        driver.inject(GossipAttestation("peer", b"\x03" * 20, attestation))
        await node.wait_idle()
        assert node.report().chain_counters["attestations_rejected"] == 1
        scrape = node.metrics.scrape().decode()
        assert "lean_attestations_invalid_total 1.0" in scrape
        assert 'lean_p2p_chain_events_total{event="attestations_rejected"} 1.0' in scrape


async def test_failing_handler_stops_the_node_loudly() -> None:
    clock = ManualClock(GENESIS_TIME)
    driver = FakeDriver()
    node = Node(_config("n", ()), driver=driver, clock=clock)
    await node.start()

    def broken(*_args: object) -> None:
        raise RuntimeError("boom")

    node.p2p.handle_event = broken  # type: ignore[method-assign,assignment]
    driver.inject(PeerConnected("peer", Direction.INBOUND, "/ip4/127.0.0.1/udp/1/quic-v1"))
    await asyncio.wait_for(node.wait_stopped(), timeout=30)
    assert isinstance(node.failure, RuntimeError)
    with pytest.raises(NodeFailed, match="boom"):
        await node.stop()


async def test_an_ill_typed_event_is_refused_in_the_callers_thread() -> None:
    clock = ManualClock(GENESIS_TIME)
    node = Node(_config("n", ()), driver=FakeDriver(), clock=clock)
    await node.start()
    await node.wait_idle()
    accepted_before = node.report().accepted
    bad = PeerConnected("peer", "inbound", "/ip4/127.0.0.1/udp/1/quic-v1")  # type: ignore[arg-type]
    refused: list[BaseException] = []

    def embedder_thread() -> None:
        try:
            node.emit_threadsafe(bad)
        except TypeError as error:
            refused.append(error)

    thread = threading.Thread(target=embedder_thread)
    thread.start()
    await asyncio.to_thread(thread.join)
    assert len(refused) == 1
    assert "PeerConnected.direction must be Direction, got str 'inbound'" in str(refused[0])
    await node.wait_idle()
    assert node.failure is None  # the loop never saw it
    assert node.report().accepted == accepted_before
    await node.stop()


async def test_foreign_threads_read_through_report_threadsafe_only() -> None:
    clock = ManualClock(GENESIS_TIME)
    node = Node(_config("n", (0, 1, 2, 3)), driver=FakeDriver(), clock=clock)
    await node.start()
    await _run_intervals(clock, [node], 10)
    on_loop = node.report()
    errors: list[str] = []
    reports: list[Any] = []

    def embedder_thread() -> None:
        for read in (node.chain.summary, node.report, node.chain.finalized_state):
            try:
                read()
            except WrongThreadError:
                errors.append(read.__name__)
        reports.append(node.report_threadsafe())

    thread = threading.Thread(target=embedder_thread)
    thread.start()
    await asyncio.to_thread(thread.join)  # the loop keeps running: it builds the report
    assert errors == ["summary", "report", "finalized_state"]
    assert reports[0].chain == on_loop.chain
    assert reports[0].handled == on_loop.handled
    with pytest.raises(RuntimeError, match="would wait forever"):
        node.report_threadsafe()
    await node.stop()


async def test_a_network_event_that_wakes_the_loop_lets_it_handle_the_event_first() -> None:
    # The GIL hand-over (NodeConfig.yield_to_loop_s), with a bound far beyond any drain:
    # the emitting thread gets its call back once the loop has handled the event.
    clock = ManualClock(GENESIS_TIME)
    node = Node(_config("n", (), yield_to_loop_s=30.0), driver=FakeDriver(), clock=clock)
    await node.start()
    await node.wait_idle()
    handled_before = node.report().handled
    handled_on_return: list[int] = []

    def network_thread() -> None:
        node.emit_threadsafe(PeerConnected("peer", Direction.INBOUND, "/ip4/127.0.0.1/udp/1"))
        handled_on_return.append(node.report_threadsafe().handled)

    thread = threading.Thread(target=network_thread)
    thread.start()
    await asyncio.to_thread(thread.join)
    assert handled_on_return == [handled_before + 1]
    await node.stop()


def test_a_negative_yield_to_loop_is_refused() -> None:
    with pytest.raises(ValueError, match="yield_to_loop_s must be >= 0"):
        _config("n", (), yield_to_loop_s=-0.001)


def test_chain_summary_reads_as_one_line() -> None:
    from lean_p2p.node.chain import ChainSummary

    summary = ChainSummary(9, 8, b"\xab" * 32, 6, 5, b"\xcd" * 32, 7, 9, 0)
    assert str(summary) == (
        "slot 9: head 8 (0xabababab), justified 6, finalized 5 (0xcdcdcdcd), 9 blocks, 0 parked"
    )


@pytest.mark.stress
async def test_no_accepted_event_is_lost_when_stopping_under_load() -> None:
    clock = ManualClock(GENESIS_TIME)
    driver = FakeDriver()
    node = Node(_config("n", ()), driver=driver, clock=clock)
    await node.start()
    refused = [0] * 4
    stop_producing = threading.Event()

    def produce(index: int) -> None:
        event = PeerConnected(f"peer-{index}", Direction.INBOUND, "/ip4/127.0.0.1/udp/1/quic-v1")
        while not stop_producing.is_set():
            try:
                driver.inject(event)
            except (MailboxClosed, RuntimeError):
                refused[index] += 1
                return

    threads = [threading.Thread(target=produce, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    await asyncio.sleep(0.05)
    await node.stop()
    stop_producing.set()
    for thread in threads:
        thread.join(timeout=30)
    report = node.report()
    assert report.accepted > 0
    assert report.lost_events == 0
    assert report.accepted == report.handled + report.dropped - _rejected_full(report)
    with pytest.raises(MailboxClosed):
        node.emit_threadsafe(PeerConnected("late", Direction.INBOUND, "x"))


def _rejected_full(report: Any) -> int:
    return sum(lane["dropped"]["full"] for lane in report.mailbox["lanes"])


async def test_recording_replays_to_the_same_store(tmp_path: Path) -> None:
    clock = ManualClock(GENESIS_TIME)
    drivers = {"a": FakeDriver("a"), "b": FakeDriver("b")}
    path = tmp_path / "a.rec"
    node_a = Node(
        _config("a", (0, 2), is_aggregator=True, record_path=path),
        driver=drivers["a"],
        clock=clock,
    )
    node_b = Node(_config("b", (1, 3)), driver=drivers["b"], clock=clock)
    async with node_a, node_b:
        await run_linked(clock, [node_a, node_b], drivers, 5 * 6)
        node_a.set_aggregator(False)  # recorded too: a role change is a control item
        await run_linked(clock, [node_a, node_b], drivers, 5 * 2)
    recorded = node_a.report()
    result = await replay_recording(path)
    assert result.items == recorded.handled + 1  # + the admin role change
    assert result.head_root == recorded.chain.head_root
    assert result.finalized_slot == recorded.chain.finalized_slot
    assert result.fingerprint == node_a.chain.fingerprint()
    assert result.handler_errors == 0
    again = await replay_recording(path)
    assert again.fingerprint == result.fingerprint


async def test_live_node_serves_the_api() -> None:
    clock = ManualClock(GENESIS_TIME)
    driver = FakeDriver()
    config = _config("api", (0, 1, 2, 3), is_aggregator=True, api_port=0)
    async with Node(config, driver=driver, clock=clock) as node:
        await _run_intervals(clock, [node], 5 * 6)
        base = f"http://127.0.0.1:{node.api_ports[0]}"
        async with aiohttp.ClientSession() as session:
            async with session.get(base + "/lean/v0/fork_choice") as response:
                tree = await response.json()
            async with session.get(base + "/lean/v0/states/finalized") as response:
                state_bytes = await response.read()
            async with session.post(
                base + "/lean/v0/admin/aggregator", json={"enabled": False}
            ) as response:
                toggled = await response.json()
            async with session.get(base + "/metrics") as response:
                metrics = await response.text()
        summary = node.chain.summary()
        assert tree["head"] == "0x" + summary.head_root.hex()
        assert tree["finalized"]["slot"] == summary.finalized_slot
        assert {n["slot"] for n in tree["nodes"]} == set(
            range(summary.finalized_slot, summary.head_slot + 1)
        )
        assert state_bytes == node.chain.finalized_state().encode()  # type: ignore[union-attr]
        assert toggled == {"is_aggregator": False, "previous": True}
        assert node.chain.is_aggregator is False
        assert f"lean_head_slot {summary.head_slot}.0" in metrics
        assert 'lean_p2p_mailbox_handled_total{lane="control"}' in metrics
        accepted = node.chain.counters["attestations_accepted"]
        assert accepted > 0
        assert f"lean_attestations_valid_total {accepted}.0" in metrics


async def test_replay_at_recorded_speed_reaches_the_same_store(tmp_path: Path) -> None:
    from lean_p2p.node.recording import RecordedItem, Recording, read_recording

    clock = ManualClock(GENESIS_TIME)
    path = tmp_path / "lone.rec"
    config = _config("lone", (0, 1, 2, 3), is_aggregator=True, record_path=path)
    async with Node(config, driver=FakeDriver(), clock=clock) as node:
        await _run_intervals(clock, [node], 5 * 3)
    recording = read_recording(path)
    # Squeeze the recorded times (seconds apart) into milliseconds apart, so keeping
    # the recorded spacing stays quick; the items and their order are unchanged.
    start = recording.items[0].time
    squeezed = Recording(
        recording.header,
        tuple(
            RecordedItem(start + (item.time - start) / 1000, item.lane, item.item)
            for item in recording.items
        ),
        truncated=False,
    )
    paced = await replay_recording(squeezed, speed="recorded")
    fastest = await replay_recording(squeezed, speed="max")
    assert paced.fingerprint == fastest.fingerprint == node.chain.fingerprint()
    assert paced.head_slot == node.chain.summary().head_slot == 3


async def test_driver_death_stops_the_node_loudly() -> None:
    from lean_p2p.net.events import DriverStopped

    clock = ManualClock(GENESIS_TIME)
    driver = FakeDriver()
    node = Node(_config("n", ()), driver=driver, clock=clock)
    await node.start()
    driver.inject(DriverStopped("crashed", "RuntimeError('quic')"))
    await asyncio.wait_for(node.wait_stopped(), timeout=30)
    with pytest.raises(NodeFailed, match="driver stopped: crashed"):
        await node.stop()
    assert node.report().lost_events == 0


async def test_a_start_that_fails_releases_what_it_started(tmp_path: Path) -> None:
    class BrokenDriver(FakeDriver):
        def start(self, emit: Any) -> None:
            raise OSError("address in use")

    path = tmp_path / "n.rec"
    node = Node(_config("n", (), record_path=path), driver=BrokenDriver(), clock=ManualClock(0))
    with pytest.raises(OSError, match="address in use"):
        await node.start()
    assert path.read_bytes().startswith(b"LEANREC1")  # the recorder was closed cleanly
    await node.stop()  # idempotent after a failed start


async def test_metrics_on_their_own_port() -> None:
    config = _config("ports", (), api_port=0, metrics_port=0)
    async with Node(config, driver=FakeDriver(), clock=ManualClock(GENESIS_TIME)) as node:
        assert len(node.api_ports) == 2
        assert node.api_ports[0] != node.api_ports[1]
        async with aiohttp.ClientSession() as session:
            for port in node.api_ports:
                async with session.get(f"http://127.0.0.1:{port}/metrics") as response:
                    assert response.status == 200


def test_lanes_must_cover_the_routing() -> None:
    from lean_p2p.runtime import LaneSpec, OverflowPolicy

    only_control = [LaneSpec("control", 16, OverflowPolicy.NEVER_DROP, 4)]
    with pytest.raises(ValueError, match="attestations"):
        Node(_config("n", ()), driver=FakeDriver(), lanes=only_control)


async def test_an_orderly_stop_warns_of_nothing(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    node = Node(_config("calm", (0,)), driver=FakeDriver(), clock=ManualClock(0))
    with caplog.at_level(logging.INFO, logger="lean_p2p"):
        await node.start()
        await node.stop()
    stopped = [r for r in caplog.records if r.getMessage().startswith("p2p stopped")]
    assert [record.levelname for record in stopped] == ["INFO"]
    p2p_records = [r for r in caplog.records if r.name.startswith("lean_p2p.p2p")]
    assert not [r for r in p2p_records if r.levelno >= logging.WARNING]

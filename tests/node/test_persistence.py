"""The chain writer (bounded hand-over to one writer thread) and a node restarted from disk."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from lean_p2p.containers import Block, BlockBody, MultiMessageAggregate, SignedBlock
from lean_p2p.node.config import GenesisSpec, NodeConfig
from lean_p2p.node.database import DatabaseCorrupt, WriteSet
from lean_p2p.node.node import Node
from lean_p2p.node.persistence import HANDOVER_BLOCKS, ChainWriter, StorageClosed, open_chain
from lean_p2p.node.testing import FakeDriver, ManualClock
from lean_p2p.wire.keys import NodeKey

GENESIS_TIME = 1_000
INTERVAL = 0.8
GENESIS = GenesisSpec.placeholder(GENESIS_TIME, 4)


class _SlowDisk:
    """A database whose commits wait until the test lets them through."""

    def __init__(self, *, fail: bool = False) -> None:
        self.path = Path("slow-disk")
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.commits: list[WriteSet] = []
        self.fail = fail
        self.closed = False

    def write(self, changes: WriteSet) -> int:
        self.entered.set()
        self.gate.wait()
        if self.fail:
            raise OSError(28, "No space left on device")
        self.commits.append(changes)
        return 1

    def close(self) -> None:
        self.closed = True


def _block(slot: int) -> tuple[bytes, SignedBlock]:
    block = Block(
        slot=slot,
        proposer_index=0,
        parent_root=bytes(32),
        state_root=bytes(32),
        body=BlockBody(attestations=()),
    )
    return block.hash_tree_root(), SignedBlock(block=block, proof=MultiMessageAggregate(proof=b""))


def _writer(disk: _SlowDisk, **options: Any) -> ChainWriter:
    # Hand-overs at every flush: these tests drive the queue itself.
    return ChainWriter(disk, handover_interval=0.0, **options)  # type: ignore[arg-type]


def test_a_slow_disk_never_blocks_the_offers_and_the_backlog_is_bounded_and_said(
    caplog: pytest.LogCaptureFixture,
) -> None:
    disk = _SlowDisk()
    writer = _writer(disk, queue_batches=1, max_pending_blocks=600)
    root, block = _block(1)
    writer.offer_block(root, block)
    assert writer.flush()
    disk.entered.wait()  # the writer thread holds the first batch, stuck in its commit
    writer.offer_block(root, block)
    assert writer.flush()  # the queue's one slot
    with caplog.at_level(logging.INFO, logger="lean_p2p.node.persistence"):
        for slot in range(2, 702):
            writer.offer_block(*_block(slot))
            assert not writer.flush()  # full: the changes wait on the loop side
    stats = writer.statistics()
    assert stats.pending_blocks == 600
    assert stats.blocks_dropped == 100
    assert stats.behind_episodes == 1
    assert stats.handovers_deferred == 700
    assert "the disk is slower than the chain" in caplog.text
    assert "pending block writes dropped" in caplog.text
    disk.gate.set()
    writer.close()
    # Everything not dropped reached the disk, the newest blocks included.
    written = [b.block.slot for commit in disk.commits for _, b in commit.blocks]
    assert len(written) == 2 + 600
    assert written[-1] == 701
    assert writer.statistics().blocks_written == 602
    assert disk.closed


def test_hand_overs_wait_for_the_interval_unless_blocks_pile_up() -> None:
    disk = _SlowDisk()
    disk.gate.set()
    now = [100.0]
    writer = ChainWriter(disk, handover_interval=0.25, clock=lambda: now[0])  # type: ignore[arg-type]
    writer.offer_block(*_block(1))
    assert writer.flush()  # the first goes at once
    writer.offer_block(*_block(2))
    assert not writer.flush()  # 0 s after the last: it waits
    now[0] += 0.1
    assert not writer.flush()
    now[0] += 0.15
    assert writer.flush()  # 0.25 s after the last
    for slot in range(3, 3 + HANDOVER_BLOCKS):
        writer.offer_block(*_block(slot))
    assert writer.flush()  # a sync's burst goes at once
    writer.offer_head(b"\x01" * 32, bytes(32))
    assert writer.flush(now=True)
    writer.close()
    written = [b.block.slot for commit in disk.commits for _, b in commit.blocks]
    assert written == list(range(1, 3 + HANDOVER_BLOCKS))


def test_a_failed_write_is_counted_and_said_and_the_writer_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    disk = _SlowDisk(fail=True)
    disk.gate.set()
    writer = _writer(disk)
    with caplog.at_level(logging.ERROR, logger="lean_p2p.node.persistence"):
        writer.offer_block(*_block(1))
        writer.flush()
        writer.close()
    assert writer.statistics().write_errors == 1
    assert "storage write failed" in caplog.text


def test_a_closed_writer_takes_nothing() -> None:
    disk = _SlowDisk()
    disk.gate.set()
    writer = _writer(disk)
    writer.close()
    writer.close()  # idempotent
    with pytest.raises(StorageClosed):
        writer.offer_block(*_block(1))


def test_checkpoints_votes_and_head_coalesce_while_waiting() -> None:
    disk = _SlowDisk()
    writer = _writer(disk, queue_batches=1)
    writer.offer_head(b"\x01" * 32, bytes(32))
    writer.flush()
    disk.entered.wait()
    writer.offer_head(b"\x02" * 32, bytes(32))
    writer.flush()  # the queue's one slot
    for head in (b"\x03" * 32, b"\x04" * 32):
        writer.offer_head(head, bytes(32))
        writer.flush()
    disk.gate.set()
    writer.close()
    assert [commit.head for commit in disk.commits] == [b"\x01" * 32, b"\x02" * 32, b"\x04" * 32]


# --- a node on disk ---------------------------------------------------------------------


def _config(data_dir: Path, **extra: Any) -> NodeConfig:
    return NodeConfig(
        name="disk",
        key=NodeKey.generate(),
        genesis=GENESIS,
        validator_indices=(0, 1, 2, 3),
        is_aggregator=True,
        data_dir=data_dir,
        **extra,
    )


async def _run(clock: ManualClock, node: Node, intervals: int) -> None:
    for _ in range(intervals):
        clock.set(round(clock.now() + INTERVAL, 6))
        await node.wait_idle()


async def test_a_node_restarts_from_its_database_and_finalizes_on_top(tmp_path: Path) -> None:
    clock = ManualClock(GENESIS_TIME)
    config = _config(tmp_path)
    async with Node(config, driver=FakeDriver(), clock=clock) as node:
        await _run(clock, node, 5 * 16)
        before = node.report().chain
    assert before.finalized_slot >= 10
    stats = node.report().storage
    assert stats is not None
    assert stats.blocks_written == stats.blocks_offered == before.head_slot
    # Restarted at once (the next interval): it resumes at its head.
    node = await Node.create(config, driver=FakeDriver(), clock=clock)
    async with node:
        restored = node.report().chain
        assert (restored.finalized_slot, restored.finalized_root) == (
            before.finalized_slot,
            before.finalized_root,
        )
        assert restored.head_root == before.head_root
        await _run(clock, node, 5 * 3)
        after = node.report().chain
    assert after.finalized_slot > before.finalized_slot


async def test_a_restart_within_the_slot_resumes_exactly_where_the_node_stopped(
    tmp_path: Path,
) -> None:
    """Stopped and restarted between two ticks, a node goes on as if it never stopped:
    the same blocks, checkpoints and votes as a node that ran through (it resumes at its
    stored time, safe target and vote pools)."""
    summaries = []
    for restart in (False, True):
        clock = ManualClock(GENESIS_TIME)
        config = _config(tmp_path / str(restart))
        node = Node(config, driver=FakeDriver(), clock=clock)
        await node.start()
        await _run(clock, node, 5 * 16 + 2)
        if restart:
            await node.stop()
            node = await Node.create(config, driver=FakeDriver(), clock=clock)
            await node.start()
        await _run(clock, node, 5 * 6)
        summaries.append(node.report().chain)
        await node.stop()
    ran_through, restarted = summaries
    assert restarted.head_root == ran_through.head_root
    assert (restarted.justified_slot, restarted.finalized_root) == (
        ran_through.justified_slot,
        ran_through.finalized_root,
    )


async def test_the_storage_metrics_are_exported(tmp_path: Path) -> None:
    clock = ManualClock(GENESIS_TIME)
    async with Node(_config(tmp_path), driver=FakeDriver(), clock=clock) as node:
        await _run(clock, node, 5 * 4)
        await asyncio.to_thread(_wait_for_a_commit, node)
        await _run(clock, node, 1)  # a tick: the gauges are read whether or not it commits
        scraped = node.metrics.scrape().decode()
    for name in (
        "lean_p2p_storage_commit_seconds_count",
        "lean_p2p_storage_commit_blocks_count",
        "lean_p2p_storage_queue_depth",
        "lean_p2p_storage_pending_blocks",
        "lean_p2p_storage_blocks_dropped 0.0",
        "lean_p2p_storage_write_errors 0.0",
    ):
        assert name in scraped, name
    count = next(
        line
        for line in scraped.splitlines()
        if line.startswith("lean_p2p_storage_commit_seconds_count")
    )
    assert float(count.split()[-1]) >= 1


def _wait_for_a_commit(node: Node) -> None:
    """Off the loop: until the writer thread has committed once (bounded)."""
    deadline = time.monotonic() + 30
    while node.report_threadsafe().storage.commits == 0:  # type: ignore[union-attr]
        assert time.monotonic() < deadline, "the writer never committed"
        time.sleep(0.01)


async def test_a_node_with_a_corrupt_database_does_not_start(tmp_path: Path) -> None:
    (tmp_path / "chain.sqlite3").write_bytes(b"\x00garbage" * 1000)
    with pytest.raises(DatabaseCorrupt):
        await Node.create(_config(tmp_path), driver=FakeDriver(), clock=ManualClock(GENESIS_TIME))


async def test_a_database_with_a_chain_needs_no_checkpoint_sync(tmp_path: Path) -> None:
    clock = ManualClock(GENESIS_TIME)
    async with Node(_config(tmp_path), driver=FakeDriver(), clock=clock) as node:
        await _run(clock, node, 5 * 8)
        finalized = node.report().chain.finalized_slot
    # Nothing listens at this URL: a fetch would fail.
    config = _config(tmp_path, checkpoint_sync_url="http://127.0.0.1:9/lean/v0")
    node = await Node.create(config, driver=FakeDriver(), clock=clock)
    async with node:
        assert node.report().chain.finalized_slot == finalized


async def test_persisting_does_not_change_what_the_node_does(tmp_path: Path) -> None:
    """Two nodes fed the same ticks, one on disk: the same store, fingerprint for
    fingerprint (storage only observes)."""
    reports = []
    for data_dir in (None, tmp_path):
        clock = ManualClock(GENESIS_TIME)
        config = replace(_config(tmp_path), data_dir=data_dir)
        async with Node(config, driver=FakeDriver(), clock=clock) as node:
            await _run(clock, node, 5 * 6)
            reports.append(node.report())
    assert reports[0].fingerprint == reports[1].fingerprint
    assert reports[0].storage is None and reports[1].storage is not None


def test_opening_is_refused_while_a_node_holds_the_directory(tmp_path: Path) -> None:
    async def main() -> None:
        clock = ManualClock(GENESIS_TIME)
        async with Node(_config(tmp_path), driver=FakeDriver(), clock=clock):
            with pytest.raises(Exception, match="in use by another process"):
                open_chain(tmp_path, GENESIS)

    asyncio.run(main())

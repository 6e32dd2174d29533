"""``lean-p2p bench storage``: the chain database's engine, and what persisting costs the loop.

Runs on the command's main thread (and, for the loop cases, one event loop plus the
storage writer thread). Two tables from one run:

**Engines**, on this node's own data (a finalizing chain built by a lone node with every
validator, ``--validators`` of them): each engine commits the way the writer does, one
transaction per commit, durable at commit.

- ``sqlite-full``: what the node uses (:class:`~lean_p2p.node.database.ChainDatabase`:
  WAL, ``synchronous=FULL``);
- ``sqlite-normal``: the same with ``synchronous=NORMAL`` (no fsync per commit in WAL
  mode: a power cut may lose the last commits, never consistency);
- ``lmdb``: the ``lmdb`` package (PyPI), one environment, ``sync=True``, the same rows as
  keys (blocks by root, and by slot for the restart's range read).

Cases: ``slot`` — what a node in step with the chain commits each slot (one block, the
checkpoints, the head, a votes snapshot, and every 32 slots of finality an anchor
state), latency p50/p99;
``sync`` — 64 blocks a commit (a range sync), blocks per second; ``restart`` — reading
back the finalized state, the blocks above it and the votes from a database holding the
whole chain.

**The loop**: the same blocks imported on the loop through
:class:`~lean_p2p.node.chain.ChainService`, one every ``--block-interval-ms``, with
storage off and on (the real :class:`~lean_p2p.node.persistence.ChainWriter`, its thread
and fsyncs). Per block, the loop-thread time of the import (``on_block``, the offer
and the anchor state's copy included); and the loop's lag as a network thread feels
it: a probe thread hands the loop a stamped callback every millisecond
(``call_soon_threadsafe``), which records how long it waited.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import struct
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lean_p2p.consensus.config import INTERVALS_PER_SLOT
from lean_p2p.containers import Checkpoint, SignedBlock
from lean_p2p.node.chain import SNAPSHOT_INTERVAL_SLOTS, ChainService
from lean_p2p.node.config import GenesisSpec
from lean_p2p.node.database import ChainDatabase, StoredCheckpoint, WriteSet
from lean_p2p.node.persistence import ChainWriter, network_id
from lean_p2p.p2p.chain import BlockReceived, BlockSource, PublishBlock
from lean_p2p.tools import report
from lean_p2p.tools.running import INTERRUPTS, Progress
from lean_p2p.tools.stress import loop_factory

__all__ = ["ENGINE_COLUMNS", "LOOP_COLUMNS", "run_benchmark"]

ENGINE_COLUMNS = (
    "engine",
    "commit_p50_ms",
    "commit_p99_ms",
    "slot_commits",
    "sync_blocks_per_s",
    "restart_read_ms",
    "file_kib",
    "note",
)
LOOP_COLUMNS = (
    "storage",
    "blocks",
    "on_block_p50_us",
    "on_block_p99_us",
    "on_block_ratio",
    "lag_p50_us",
    "lag_p99_us",
    "lag_p99_rise_us",
    "lag_p99_range_us",
    "commits",
)
_SYNC_BATCH = 64
_PROBE_INTERVAL = 0.001
_SLOT = struct.Struct(">Q")
#: LMDB key prefixes (one ordered key space): blocks by slot, blocks by root
_BY_SLOT = b"\x01"
_BY_ROOT = b"\x02"


@dataclass(frozen=True, slots=True)
class _SlotChanges:
    """What the writer commits for one slot of a chain in step."""

    root: bytes
    block: SignedBlock
    anchor: StoredCheckpoint | None  # a new anchor state, as the chain offers it
    finalized: Checkpoint
    justified: Checkpoint
    votes: list[Any]


def _build_chain(slots: int, validators: int) -> tuple[GenesisSpec, list[_SlotChanges]]:
    genesis = GenesisSpec.placeholder(0, validators)
    chain = ChainService(genesis, validator_indices=tuple(range(validators)), is_aggregator=True)
    changes: list[_SlotChanges] = []
    anchor_slot: int | None = None
    for interval in range(1, INTERVALS_PER_SLOT * slots + 1):
        for request in chain.on_interval(interval):
            if isinstance(request, PublishBlock):
                block = request.block
                finalized = chain.store.latest_finalized
                anchor = None
                if anchor_slot is None or finalized.slot >= anchor_slot + SNAPSHOT_INTERVAL_SLOTS:
                    anchor, anchor_slot = chain.stored_checkpoint(finalized), finalized.slot
                changes.append(
                    _SlotChanges(
                        block.block.hash_tree_root(),
                        block,
                        anchor,
                        finalized,
                        chain.store.latest_justified,
                        chain.vote_snapshot(),
                    )
                )
    return genesis, changes


# --- engines ------------------------------------------------------------------------------


class _Engine:
    name = ""
    note = ""

    def commit(self, changes: WriteSet) -> None:
        raise NotImplementedError

    def restart_read(self) -> int:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class _Sqlite(_Engine):
    def __init__(self, directory: Path, network: bytes, synchronous: str) -> None:
        self.name = f"sqlite-{synchronous.lower()}"
        self.note = "the node's database" if synchronous == "FULL" else "no fsync per commit"
        self.directory = directory
        self.network = network
        self.database = ChainDatabase.open(directory, network, check=False)
        self.database._connection.execute(f"PRAGMA synchronous = {synchronous}")

    def commit(self, changes: WriteSet) -> None:
        self.database.write(changes)

    def restart_read(self) -> int:
        self.database.close()
        self.database = ChainDatabase.open(self.directory, self.network, check=False)
        stored = self.database.load()
        assert stored is not None
        return len(stored.blocks)

    def close(self) -> None:
        self.database.close()


class _Lmdb(_Engine):
    name = "lmdb"
    note = "PyPI lmdb, sync=True"

    def __init__(self, directory: Path) -> None:
        import lmdb

        self.directory = directory
        self._lmdb = lmdb
        self.environment = self._open()

    def _open(self) -> Any:
        return self._lmdb.open(
            str(self.directory), map_size=1 << 32, max_dbs=4, sync=True, metasync=True
        )

    def commit(self, changes: WriteSet) -> None:
        with self.environment.begin(write=True) as transaction:
            for root, block in changes.blocks:
                data = block.encode()
                transaction.put(_BY_ROOT + root, data)
                transaction.put(_BY_SLOT + _SLOT.pack(block.block.slot) + root, data)
            if changes.anchor is not None:
                transaction.put(b"anchor-state", changes.anchor.state.encode())
                transaction.put(b"anchor", changes.anchor.checkpoint.encode())
                transaction.put(
                    _BY_ROOT + changes.anchor.checkpoint.root, changes.anchor.block.encode()
                )
            for kind, checkpoint in (
                (b"finalized", changes.finalized),
                (b"justified", changes.justified),
            ):
                if checkpoint is not None:
                    transaction.put(kind, checkpoint.encode())
            if changes.votes is not None:
                transaction.put(b"votes", b"".join(vote.encode() for _, vote in changes.votes))
            if changes.head is not None:
                transaction.put(b"head", changes.head)

    def restart_read(self) -> int:
        from lean_p2p.containers import State

        self.environment.close()
        self.environment = self._open()
        count = 0
        with self.environment.begin() as transaction:
            anchor = Checkpoint.decode(transaction.get(b"anchor"))
            State.decode(transaction.get(b"anchor-state"))
            cursor = transaction.cursor()
            cursor.set_range(_BY_SLOT + _SLOT.pack(anchor.slot + 1))
            for key, value in cursor:
                if not key.startswith(_BY_SLOT):
                    break
                SignedBlock.decode(bytes(value))
                count += 1
            transaction.get(b"votes")
        return count

    def close(self) -> None:
        self.environment.close()


def _engines(directory: Path, network: bytes) -> list[Callable[[], _Engine]]:
    def sqlite(synchronous: str) -> Callable[[], _Engine]:
        def make() -> _Engine:
            path = directory / f"sqlite-{synchronous.lower()}"
            shutil.rmtree(path, ignore_errors=True)
            return _Sqlite(path, network, synchronous)

        return make

    makers = [sqlite("FULL"), sqlite("NORMAL")]
    try:
        import lmdb  # noqa: F401
    except ImportError:
        return makers

    def make_lmdb() -> _Engine:
        path = directory / "lmdb"
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
        return _Lmdb(path)

    return [*makers, make_lmdb]


def _measure_engine(make: Callable[[], _Engine], chain: Sequence[_SlotChanges]) -> dict[str, Any]:
    engine = make()
    latencies: list[float] = []
    for slot in chain:  # a node in step: one commit per slot
        changes = WriteSet(
            blocks=[(slot.root, slot.block)],
            anchor=slot.anchor,
            finalized=slot.finalized,
            justified=slot.justified,
            votes=slot.votes,
            head=slot.root,
        )
        started = time.perf_counter()
        engine.commit(changes)
        latencies.append(time.perf_counter() - started)
    engine.close()
    engine = make()  # a fresh file: the sync case writes everything again
    started = time.perf_counter()
    for first in range(0, len(chain), _SYNC_BATCH):
        batch = chain[first : first + _SYNC_BATCH]
        engine.commit(
            WriteSet(
                blocks=[(slot.root, slot.block) for slot in batch],
                anchor=next((s.anchor for s in reversed(batch) if s.anchor), None),
                finalized=batch[-1].finalized,
                justified=batch[-1].justified,
                votes=batch[-1].votes,
                head=batch[-1].root,
            )
        )
    sync_seconds = time.perf_counter() - started
    started = time.perf_counter()
    engine.restart_read()
    read_seconds = time.perf_counter() - started
    engine.close()
    latencies.sort()
    directory = getattr(engine, "directory", None)
    size = sum(p.stat().st_size for p in directory.iterdir()) if directory else 0
    return {
        "engine": engine.name,
        "commit_p50_ms": report.percentile(latencies, 0.5) * 1e3,
        "commit_p99_ms": report.percentile(latencies, 0.99) * 1e3,
        "slot_commits": len(latencies),
        "sync_blocks_per_s": len(chain) / sync_seconds,
        "restart_read_ms": read_seconds * 1e3,
        "file_kib": size / 1024,
        "note": engine.note,
    }


# --- the loop -----------------------------------------------------------------------------


async def _loop_case(
    genesis: GenesisSpec,
    blocks: Sequence[SignedBlock],
    data_dir: Path | None,
    interval: float,
    stop: threading.Event,
) -> dict[str, Any] | None:
    """The loop case; None if ``stop`` (Ctrl-C) cut it short."""
    loop = asyncio.get_running_loop()
    chain = ChainService(genesis)
    writer = None
    if data_dir is not None:
        shutil.rmtree(data_dir, ignore_errors=True)
        writer = ChainWriter(ChainDatabase.open(data_dir, network_id(genesis)), name="bench")
        chain.attach_storage(writer)
    import_times: list[float] = []
    lags: list[float] = []
    done = asyncio.Event()
    finished = threading.Event()

    def probed(stamp: float) -> None:
        lags.append(time.perf_counter() - stamp)

    def probe() -> None:
        # A foreign thread, as the network's: how long the loop makes its events wait.
        while not finished.wait(_PROBE_INTERVAL):
            try:
                loop.call_soon_threadsafe(probed, time.perf_counter())
            except RuntimeError:  # the loop closed under us (Ctrl-C): stop probing
                return

    def import_next(index: int) -> None:
        block = blocks[index]
        received = BlockReceived(block, block.block.hash_tree_root(), "bench", BlockSource.GOSSIP)
        started = time.perf_counter()
        chain.on_input(received)
        import_times.append(time.perf_counter() - started)
        if index + 1 < len(blocks) and not stop.is_set():
            loop.call_later(interval, import_next, index + 1)
        else:
            done.set()

    prober = threading.Thread(target=probe, name="bench-probe", daemon=True)
    prober.start()
    loop.call_soon(import_next, 0)
    await done.wait()
    finished.set()
    await asyncio.to_thread(prober.join)
    commits = 0
    if writer is not None:
        await asyncio.to_thread(writer.close)
        commits = writer.statistics().commits
    if stop.is_set():
        return None
    import_times.sort()
    lags.sort()
    return {
        "storage": "sqlite (writer thread)" if writer is not None else "none (memory)",
        "blocks": len(import_times),
        "on_block_p50_us": report.percentile(import_times, 0.5) * 1e6,
        "on_block_p99_us": report.percentile(import_times, 0.99) * 1e6,
        "lag_p50_us": report.percentile(lags, 0.5) * 1e6,
        "lag_p99_us": report.percentile(lags, 0.99) * 1e6,
        "commits": commits,
    }


def run_benchmark(args: argparse.Namespace) -> int:
    import logging

    logging.getLogger("lean_p2p.consensus.signatures").setLevel(logging.ERROR)
    slots = min(64, args.slots) if args.quick else args.slots
    repeats = 1 if args.quick else args.repeats
    progress = Progress("bench storage")
    progress.update(f"building a {slots}-slot chain of {args.validators} validators", force=True)
    genesis, chain = _build_chain(slots, args.validators)
    network = network_id(genesis)
    work = Path(tempfile.mkdtemp(prefix="lean-p2p-bench-storage-", dir=args.dir))
    engine_runs: dict[str, list[dict[str, Any]]] = {}
    loop_runs: dict[str, list[dict[str, Any]]] = {}
    factory = loop_factory("asyncio" if args.no_uvloop else "uvloop")
    blocks = [slot.block for slot in chain]
    stop = threading.Event()
    # The first Ctrl-C ends the case in hand (dropped) and prints what was measured.
    try:
        with INTERRUPTS.stopping(stop.set):
            for repeat in range(repeats):
                if stop.is_set():
                    break
                repeat_engines: list[dict[str, Any]] = []
                for make in _engines(work, network):
                    progress.update(f"repeat {repeat + 1}/{repeats}: engines", force=True)
                    repeat_engines.append(_measure_engine(make, chain))
                repeat_loops: list[dict[str, Any]] = []
                for data_dir in (None, work / "loop"):
                    progress.update(f"repeat {repeat + 1}/{repeats}: loop", force=True)
                    with asyncio.Runner(loop_factory=factory) as runner:
                        row = runner.run(
                            _loop_case(
                                genesis, blocks, data_dir, args.block_interval_ms / 1000, stop
                            )
                        )
                    if row is not None:
                        repeat_loops.append(row)
                if stop.is_set():
                    break  # an interrupted repeat is left out whole: its cases pair up
                for row in repeat_engines:
                    engine_runs.setdefault(row["engine"], []).append(row)
                for row in repeat_loops:
                    loop_runs.setdefault(row["storage"], []).append(row)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    progress.done()
    engine_rows = [_median_row(runs) for runs in engine_runs.values()]
    loop_rows = [_median_row(runs) for runs in loop_runs.values()]
    for row, runs in zip(loop_rows, loop_runs.values(), strict=True):
        # The spread over the repeats: what a rise must exceed to be more than noise.
        p99s = [run["lag_p99_us"] for run in runs]
        row["lag_p99_range_us"] = f"{min(p99s):.0f}-{max(p99s):.0f}"
    if not loop_rows:
        print("no repeat finished: nothing to show")
        return 0
    baseline = loop_rows[0]
    for row in loop_rows:
        row["on_block_ratio"] = row["on_block_p50_us"] / baseline["on_block_p50_us"]
        row["lag_p99_rise_us"] = row["lag_p99_us"] - baseline["lag_p99_us"]
    block_bytes = statistics.median(len(slot.block.encode()) for slot in chain)
    state_bytes = len(next(s.anchor for s in reversed(chain) if s.anchor).state.encode())
    report.print_table(
        engine_rows,
        ENGINE_COLUMNS,
        title=f"chain database engines: {len(chain)} slots of {args.validators} validators "
        f"(block {block_bytes:.0f} B, state {state_bytes} B), median of {repeats}",
    )
    report.print_table(
        loop_rows,
        LOOP_COLUMNS,
        title=f"the loop importing a block every {args.block_interval_ms:g} ms, storage off and "
        f"on (median of {repeats})",
    )
    if args.json:
        report.write_json(
            args.json,
            [{"table": "engines", **row} for row in engine_rows]
            + [{"table": "loop", **row} for row in loop_rows],
        )
    return 0


def _median_row(runs: list[dict[str, Any]]) -> dict[str, Any]:
    row = dict(runs[0])
    for key, value in runs[0].items():
        if isinstance(value, float):
            row[key] = statistics.median(run[key] for run in runs)
    row["repeats"] = len(runs)
    return row

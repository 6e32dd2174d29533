"""Crash safety of the chain database: a node process killed with SIGKILL, again and again.

Threads and processes. The parent (main thread) builds a finalizing chain once, writes
it to a file, then repeats: start a child process that opens the database, restores
what it holds, and imports the chain's blocks as fast as it can (the loop thread's
work, with the real writer thread committing behind it); kill it with SIGKILL at a
random moment of that import; open the database again and check it. The child takes the blocks in
batches of eight with a 2 ms pause between two (a range sync's responses arriving over a
fast link), so its writer commits many times during one import. The child reports
on stdout every block its writer committed (after the commit returned, so each one is
durable); a kill between a commit and its report only makes the check weaker, never
wrong.

Each restart is checked for:

- **a clean open**: the file opens (no corruption, no leftover lock) and reads back;
- **consistency**: the anchor state's root is its block's state root, every stored
  block above it replays onto it (none skipped), and the replay reaches the committed
  finalized and justified checkpoints, each with its block's state;
- **no loss**: every block the child reported committed is in the database.

When a child finishes the whole chain before its kill, the next one starts on a new
database (counted as ``completed``). The next child always starts from what the
previous one left: each restart is also the child's own start.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import random
import signal
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median
from typing import Any

__all__ = ["CrashTestResult", "build_chain_file", "run_crash_test"]

_LENGTH = struct.Struct(">I")
_VALIDATORS = 4
_GENESIS_TIME = 0
#: blocks per simulated range-sync response, and the pause between two responses
_BATCH_BLOCKS = 8
_ROUND_TRIP_SECONDS = 0.002


@dataclass(slots=True)
class KillRecord:
    """One kill and what the restart after it found."""

    index: int
    after_seconds: float
    committed_reported: int
    blocks_stored: int
    finalized_slot: int
    restored_blocks: int
    lost: int
    problem: str | None


@dataclass(slots=True)
class CrashTestResult:
    kills: int
    clean_restarts: int
    lost_committed_blocks: int
    inconsistent_states: int
    completed_imports: int
    chain_slots: int
    kills_table: list[KillRecord] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return (
            self.clean_restarts == self.kills
            and self.lost_committed_blocks == 0
            and self.inconsistent_states == 0
        )

    def as_dict(self) -> dict[str, Any]:
        kill_points = [record.after_seconds for record in self.kills_table]
        return {
            "passed": self.passed,
            "kills": self.kills,
            "clean_restarts": self.clean_restarts,
            "lost_committed_blocks": self.lost_committed_blocks,
            "inconsistent_states": self.inconsistent_states,
            "completed_imports": self.completed_imports,
            "chain_slots": self.chain_slots,
            "median_kill_after_seconds": median(kill_points) if kill_points else None,
            "median_blocks_stored": (
                median(r.blocks_stored for r in self.kills_table) if self.kills_table else None
            ),
            "problems": self.problems,
            "kills_table": [dataclasses.asdict(record) for record in self.kills_table],
        }

    def table(self) -> str:
        rows: list[tuple[str, object]] = [
            ("kills (SIGKILL during import)", self.kills),
            ("clean restarts", self.clean_restarts),
            ("lost committed blocks", self.lost_committed_blocks),
            ("inconsistent states", self.inconsistent_states),
            ("imports that finished before their kill", self.completed_imports),
            ("chain length (slots)", self.chain_slots),
        ]
        if self.kills_table:
            stored = sorted(r.blocks_stored for r in self.kills_table)
            points = sorted(r.after_seconds for r in self.kills_table)
            rows += [
                ("kill point, median (s after start)", f"{median(points):.3f}"),
                (
                    "blocks on disk at a kill: min / median / max",
                    f"{stored[0]} / {median(stored):.0f} / {stored[-1]}",
                ),
            ]
        width = max(len(name) for name, _ in rows)
        return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


# --- the chain ---------------------------------------------------------------------------


def _genesis() -> Any:
    from lean_p2p.node.config import GenesisSpec

    return GenesisSpec.placeholder(_GENESIS_TIME, _VALIDATORS)


def build_chain_file(path: Path, slots: int) -> int:
    """A lone node with every validator runs ``slots`` slots; its blocks go to ``path``
    (each: u32 length, SSZ SignedBlock). Returns the number of blocks."""
    from lean_p2p.consensus.config import INTERVALS_PER_SLOT
    from lean_p2p.node.chain import ChainService
    from lean_p2p.p2p.chain import PublishBlock

    chain = ChainService(
        _genesis(), validator_indices=tuple(range(_VALIDATORS)), is_aggregator=True
    )
    count = 0
    with path.open("wb") as out:
        for interval in range(1, INTERVALS_PER_SLOT * slots + 1):
            for request in chain.on_interval(interval):
                if isinstance(request, PublishBlock):
                    data = request.block.encode()
                    out.write(_LENGTH.pack(len(data)) + data)
                    count += 1
    return count


def _read_chain(path: Path) -> list[Any]:
    from lean_p2p.containers import SignedBlock

    data = path.read_bytes()
    blocks = []
    offset = 0
    while offset < len(data):
        (length,) = _LENGTH.unpack_from(data, offset)
        offset += _LENGTH.size
        blocks.append(SignedBlock.decode(data[offset : offset + length]))
        offset += length
    return blocks


# --- the child: a node importing as fast as it can ----------------------------------------


def child_main(argv: Sequence[str]) -> int:
    """Open, restore, import everything, report each commit (run as a subprocess)."""
    parser = argparse.ArgumentParser(prog="crashtest-child")
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--chain", type=Path, required=True)
    args = parser.parse_args(argv)

    import logging

    from lean_p2p.node.chain import ChainService
    from lean_p2p.node.persistence import ChainWriter, open_chain
    from lean_p2p.p2p.chain import BlockReceived, BlockSource

    # The parent ends this process (SIGKILL); a Ctrl-C meant for the parent is not ours.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.disable(logging.WARNING)  # the mocked-verifier warning on every start
    out = sys.stdout

    def say(line: str) -> None:
        try:
            out.write(line + "\n")
            out.flush()
        except BrokenPipeError:  # the parent is gone: nobody to tell, nothing to do
            os._exit(0)

    def report(changes: Any) -> None:  # the writer thread, after a durable commit
        if changes.blocks:
            say("committed " + " ".join(root.hex() for root, _ in changes.blocks))

    blocks = _read_chain(args.chain)
    opened = open_chain(args.data_dir, _genesis())
    # A hand-over at every flush (a node waits HANDOVER_INTERVAL between two): more
    # commits in one import, so more moments for the kill to land in.
    writer = ChainWriter(
        opened.database, name="crashtest", on_committed=report, handover_interval=0.0
    )
    chain = ChainService(_genesis(), restored=opened.stored)
    chain.attach_storage(writer)
    say(f"ready {chain.summary().head_slot}")
    # Like a range sync, it asks only for what lies above its finalized checkpoint.
    start = chain.summary().finalized_slot
    for position, block in enumerate((b for b in blocks if b.block.slot > start), start=1):
        root = block.block.hash_tree_root()
        chain.on_input(BlockReceived(block, root, "crashtest", BlockSource.BY_RANGE))
        if position % _BATCH_BLOCKS == 0:
            # A range-sync response ends; the next one is a round trip away. This is
            # when the writer thread gets the GIL and commits, as in a syncing node.
            time.sleep(_ROUND_TRIP_SECONDS)
    writer.close()
    say("done")
    return 0


# --- the parent ------------------------------------------------------------------------------


def run_crash_test(
    kills: int,
    *,
    slots: int = 400,
    directory: Path | None = None,
    seed: int | None = None,
    on_progress: Any = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> CrashTestResult:
    """Kill a child ``kills`` times at random points of its import; check each restart.
    ``should_stop`` (asked before each kill) ends the run early, with what it has."""
    rng = random.Random(seed)
    work = directory or Path(tempfile.mkdtemp(prefix="lean-p2p-crashtest-"))
    work.mkdir(parents=True, exist_ok=True)
    chain_file = work / "chain.bin"
    chain_length = build_chain_file(chain_file, slots)
    data_dir = work / "data"
    _reset(data_dir)
    result = CrashTestResult(
        kills=0,
        clean_restarts=0,
        lost_committed_blocks=0,
        inconsistent_states=0,
        completed_imports=0,
        chain_slots=chain_length,
    )
    # How long a whole import takes here: the kills are spread over it.
    import_seconds = _timed_import(work / "timing", chain_file)
    _reset(work / "timing")
    for index in range(1, kills + 1):
        if should_stop():
            break
        # Within the import of a whole chain; a child that starts from a half-filled
        # database has less to do, and may finish first (counted as completed).
        delay = rng.uniform(0.0, 0.9 * import_seconds)
        outcome = _kill_once(data_dir, chain_file, delay)
        if outcome.completed:
            result.completed_imports += 1
        record = _check(index, data_dir, delay, outcome.committed)
        result.kills += 1
        if record.problem is None:
            result.clean_restarts += 1
        else:
            result.problems.append(f"kill {index}: {record.problem}")
        result.lost_committed_blocks += record.lost
        if record.problem is not None and record.problem.startswith("inconsistent"):
            result.inconsistent_states += 1
        result.kills_table.append(record)
        if outcome.completed:
            _reset(data_dir)  # the whole chain is in: start the next import afresh
        if on_progress is not None:
            on_progress(result, record)
    return result


@dataclass(slots=True)
class _Outcome:
    committed: set[bytes]
    completed: bool


def _child_command(data_dir: Path, chain_file: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "lean_p2p.tools.crashtest",
        "--data-dir",
        str(data_dir),
        "--chain",
        str(chain_file),
    ]


def _timed_import(data_dir: Path, chain_file: Path) -> float:
    _reset(data_dir)
    command = _child_command(data_dir, chain_file)
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as child:
        assert child.stdout is not None
        started = None
        for line in child.stdout:
            if line.startswith("ready"):
                started = time.monotonic()
            elif line.startswith("done"):
                break
        finished = time.monotonic()
    if child.returncode != 0 or started is None:
        raise RuntimeError(f"the crash-test child failed on an empty database ({child.returncode})")
    return finished - started


def _kill_once(data_dir: Path, chain_file: Path, delay: float | None) -> _Outcome:
    """Start a child, SIGKILL it ``delay`` seconds after it is ready (None: let it
    finish); what it reported."""
    command = _child_command(data_dir, chain_file)
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as child:
        assert child.stdout is not None
        first = child.stdout.readline()
        if not first.startswith("ready"):
            child.kill()
            raise RuntimeError(f"the crash-test child did not start: {first.strip()!r}")
        if delay is not None:
            time.sleep(delay)
            os.kill(child.pid, signal.SIGKILL)
        child.wait()
        reported = child.stdout.read()
    committed: set[bytes] = set()
    completed = False
    for line in reported.splitlines(keepends=True):
        if not line.endswith("\n"):
            continue  # cut by the kill mid-line
        if line.startswith("committed "):
            committed.update(bytes.fromhex(part) for part in line.split()[1:])
        elif line.startswith("done"):
            completed = True
    return _Outcome(committed, completed)


def _check(index: int, data_dir: Path, delay: float, committed: set[bytes]) -> KillRecord:
    import logging

    from lean_p2p.node.chain import ChainService
    from lean_p2p.node.database import DatabaseError
    from lean_p2p.node.persistence import open_chain

    record = KillRecord(index, round(delay, 4), len(committed), 0, 0, 0, 0, None)
    try:
        opened = open_chain(data_dir, _genesis())
    except DatabaseError as error:
        record.problem = f"did not open: {error}"
        return record
    try:
        database, stored = opened.database, opened.stored
        record.blocks_stored = database.block_count()
        record.lost = sum(1 for root in committed if database.block(root) is None)
        if record.lost:
            record.problem = f"lost {record.lost} committed blocks"
            return record
        if stored is None:
            return record  # killed before the first commit: a new database, consistent
        record.finalized_slot = stored.finalized_slot
        anchor = stored.anchor
        if anchor.state.hash_tree_root() != anchor.block.block.state_root:
            record.problem = "inconsistent: the anchor state is not its block's"
            return record
        previous = logging.root.manager.disable
        logging.disable(logging.WARNING)
        try:
            chain = ChainService(_genesis(), restored=stored)
        finally:
            logging.disable(previous)
        record.restored_blocks = chain.counters["restore_blocks"]
        problems = []
        if chain.counters["restore_blocks_skipped"]:
            problems.append(f"{chain.counters['restore_blocks_skipped']} blocks did not replay")
        if chain.counters["restore_justified_differs"]:
            problems.append("the replay did not reach the committed justified checkpoint")
        if chain.counters["restore_finalized_differs"]:
            problems.append("the replay did not reach the committed finalized checkpoint")
        for checkpoint in (stored.finalized, stored.justified):
            state = chain.store.states.get(checkpoint.root)
            block = chain.store.blocks.get(checkpoint.root)
            if state is None or block is None or state.hash_tree_root() != block.state_root:
                problems.append(f"no state for the checkpoint at slot {checkpoint.slot}")
        if problems:
            record.problem = "inconsistent: " + "; ".join(problems)
        return record
    finally:
        opened.database.close()


def _reset(data_dir: Path) -> None:
    from lean_p2p.node.database import remove_database

    data_dir.mkdir(parents=True, exist_ok=True)
    remove_database(data_dir)


if __name__ == "__main__":
    raise SystemExit(child_main(sys.argv[1:]))

"""The crash test: real child processes killed with SIGKILL, and a checker that can fail."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from lean_p2p.node.database import DATABASE_FILE
from lean_p2p.tools.crashtest import _check, _kill_once, build_chain_file, run_crash_test


def test_every_restart_after_a_kill_is_clean_and_loses_nothing(tmp_path: Path) -> None:
    result = run_crash_test(8, slots=120, directory=tmp_path, seed=7)
    assert result.kills == 8
    assert result.problems == []
    assert result.passed
    assert (result.clean_restarts, result.lost_committed_blocks) == (8, 0)
    assert result.inconsistent_states == 0


def test_the_checker_sees_a_lost_block_and_a_damaged_state(tmp_path: Path) -> None:
    chain_file = tmp_path / "chain.bin"
    build_chain_file(chain_file, 40)
    data_dir = tmp_path / "data"
    outcome = _kill_once(data_dir, chain_file, delay=None)  # it finishes
    assert outcome.completed
    assert len(outcome.committed) == 40
    assert _check(1, data_dir, 0.0, outcome.committed).problem is None
    # A block reported committed but missing from the file is a loss.
    missing = _check(2, data_dir, 0.0, outcome.committed | {b"\x01" * 32})
    assert missing.lost == 1
    assert missing.problem == "lost 1 committed blocks"
    # A stored block above finality that no longer replays is an inconsistency.
    with sqlite3.connect(data_dir / DATABASE_FILE) as connection:
        [(slot,)] = connection.execute("SELECT max(slot) FROM blocks").fetchall()
        connection.execute("DELETE FROM blocks WHERE slot = ?", (slot - 1,))
    damaged = _check(3, data_dir, 0.0, set())
    assert damaged.problem is not None and damaged.problem.startswith("inconsistent")

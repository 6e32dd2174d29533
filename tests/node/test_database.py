"""The chain database: what it keeps, and every way it refuses a file it must not use."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from lean_p2p.node.chain import SNAPSHOT_INTERVAL_SLOTS, ChainService
from lean_p2p.node.config import GenesisSpec
from lean_p2p.node.database import (
    DATABASE_FILE,
    ChainDatabase,
    DatabaseCorrupt,
    DatabaseInUse,
    DatabaseMismatch,
)
from lean_p2p.node.persistence import ChainWriter, network_id, open_chain

GENESIS = GenesisSpec.placeholder(0, 4)
OTHER_GENESIS = GenesisSpec.placeholder(1, 4)


def _fill(data_dir: Path, slots: int = 12) -> ChainService:
    """A lone node with every validator runs ``slots`` slots into ``data_dir``."""
    opened = open_chain(data_dir, GENESIS)
    assert opened.stored is None
    writer = ChainWriter(opened.database)
    chain = ChainService(GENESIS, validator_indices=(0, 1, 2, 3), is_aggregator=True)
    chain.attach_storage(writer)
    for interval in range(1, 5 * slots + 1):
        chain.on_interval(interval)
    writer.close()
    assert writer.statistics().write_errors == 0
    return chain


def test_a_restart_reads_back_the_anchor_the_blocks_above_it_and_the_votes(
    tmp_path: Path,
) -> None:
    chain = _fill(tmp_path, slots=SNAPSHOT_INTERVAL_SLOTS + 12)
    summary = chain.summary()
    opened = open_chain(tmp_path, GENESIS)
    stored = opened.stored
    assert stored is not None
    try:
        assert stored.finalized == chain.store.latest_finalized
        assert stored.justified == chain.store.latest_justified
        assert stored.head == chain.store.head
        # The anchor: a finalized state stored once finality had moved 32 slots.
        anchor = stored.anchor
        assert 0 < anchor.checkpoint.slot <= summary.finalized_slot
        assert anchor.state.hash_tree_root() == anchor.block.block.state_root
        # Every block above the anchor, parents first.
        slots = [block.block.slot for block in stored.blocks]
        assert slots == list(range(anchor.checkpoint.slot + 1, summary.head_slot + 1))
        assert stored.votes  # the last snapshot of the pools
        # Everything before the finalized block is kept too (for serving peers).
        history = list(opened.database.finalized_chain(stored.finalized))
        assert [b.block.slot for b in history] == list(range(summary.finalized_slot, -1, -1))
    finally:
        opened.database.close()


def test_the_restored_chain_agrees_with_the_one_that_was_stored(tmp_path: Path) -> None:
    chain = _fill(tmp_path)
    opened = open_chain(tmp_path, GENESIS)
    restored = ChainService(GENESIS, restored=opened.stored)
    opened.database.close()
    for name in ("head_slot", "head_root", "justified_slot", "finalized_slot", "finalized_root"):
        assert getattr(restored.summary(), name) == getattr(chain.summary(), name), name
    assert opened.stored is not None
    assert restored.counters["restore_blocks"] == chain.summary().head_slot - (
        opened.stored.anchor.checkpoint.slot
    )
    assert restored.counters["restore_justified_differs"] == 0
    assert restored.counters["restore_finalized_differs"] == 0


def test_a_restarted_chain_serves_the_blocks_before_its_anchor(tmp_path: Path) -> None:
    """Peers syncing from genesis ask a restarted node for blocks the fork-choice store
    no longer holds (they lie before its anchor): it serves them from the history."""
    chain = _fill(tmp_path, slots=SNAPSHOT_INTERVAL_SLOTS + 12)
    opened = open_chain(tmp_path, GENESIS)
    assert opened.stored is not None
    anchor_slot = opened.stored.anchor.checkpoint.slot
    assert anchor_slot > 8
    restored = ChainService(GENESIS, restored=opened.stored)
    opened.database.close()
    assert 1 not in {block.slot for block in restored.store.blocks.values()}
    served = restored.blocks_by_range(1, 8)
    assert served == chain.blocks_by_range(1, 8)
    assert [b.block.slot for b in served] == list(range(1, 9))
    across = restored.blocks_by_range(anchor_slot - 2, 5)  # from the history into the store
    assert across == chain.blocks_by_range(anchor_slot - 2, 5)
    assert restored.root_at_slot(3) == chain.root_at_slot(3)
    root = served[0].block.hash_tree_root()
    assert restored.get_block(root) == served[0]


def test_another_networks_database_is_refused(tmp_path: Path) -> None:
    _fill(tmp_path, slots=2)
    with pytest.raises(DatabaseMismatch, match="another network"):
        open_chain(tmp_path, OTHER_GENESIS)


def test_another_schema_version_is_refused(tmp_path: Path) -> None:
    _fill(tmp_path, slots=2)
    with sqlite3.connect(tmp_path / DATABASE_FILE) as connection:
        connection.execute("PRAGMA user_version = 99")
    with pytest.raises(DatabaseMismatch, match="schema version 99"):
        open_chain(tmp_path, GENESIS)


def test_a_foreign_sqlite_file_is_refused(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / DATABASE_FILE) as connection:
        connection.execute("CREATE TABLE other (x)")
    with pytest.raises(DatabaseMismatch, match="not a lean_p2p chain database"):
        open_chain(tmp_path, GENESIS)


def test_a_file_of_garbage_is_corrupt_with_the_way_out(tmp_path: Path) -> None:
    (tmp_path / DATABASE_FILE).write_bytes(b"not a database at all, " * 400)
    with pytest.raises(DatabaseCorrupt, match="move the data directory aside"):
        open_chain(tmp_path, GENESIS)


def test_a_truncated_file_is_corrupt(tmp_path: Path) -> None:
    _fill(tmp_path, slots=30)
    # Fold the WAL into the main file, then cut the file short.
    with sqlite3.connect(tmp_path / DATABASE_FILE) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    path = tmp_path / DATABASE_FILE
    data = path.read_bytes()
    assert len(data) > 8192
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DatabaseCorrupt):
        open_chain(tmp_path, GENESIS)


def test_a_damaged_page_is_corrupt(tmp_path: Path) -> None:
    _fill(tmp_path, slots=30)
    with sqlite3.connect(tmp_path / DATABASE_FILE) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    path = tmp_path / DATABASE_FILE
    data = bytearray(path.read_bytes())
    # Scribble over the second page onward (the first holds the header).
    for offset in range(4096, len(data), 4096):
        data[offset : offset + 64] = b"\xa5" * 64
    path.write_bytes(bytes(data))
    with pytest.raises(DatabaseCorrupt):
        open_chain(tmp_path, GENESIS)


def test_a_row_that_does_not_decode_is_corrupt(tmp_path: Path) -> None:
    _fill(tmp_path, slots=4)
    with sqlite3.connect(tmp_path / DATABASE_FILE) as connection:
        connection.execute("UPDATE states SET ssz = x'00' WHERE kind = 'anchor'")
    with pytest.raises(DatabaseCorrupt, match="unreadable row"):
        open_chain(tmp_path, GENESIS)


def test_a_directory_in_use_is_refused(tmp_path: Path) -> None:
    first = ChainDatabase.open(tmp_path, network_id(GENESIS))
    try:
        with pytest.raises(DatabaseInUse, match="in use by another process"):
            ChainDatabase.open(tmp_path, network_id(GENESIS))
    finally:
        first.close()
    ChainDatabase.open(tmp_path, network_id(GENESIS)).close()  # free again once closed


def test_a_new_database_holds_no_chain(tmp_path: Path) -> None:
    opened = open_chain(tmp_path / "fresh", GENESIS)
    assert opened.stored is None
    assert opened.database.is_empty()
    opened.database.close()

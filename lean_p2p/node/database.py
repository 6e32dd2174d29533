"""The chain database: one SQLite file in WAL mode. Writer thread, or the starting thread.

Threads. :meth:`ChainDatabase.open` and :meth:`ChainDatabase.load` run before the node's
loop serves anything (on the thread that builds the node, or a worker thread for
:meth:`~lean_p2p.node.node.Node.create`); from then on only the storage writer thread
(:mod:`lean_p2p.node.persistence`) uses the connection. The hand-over is ordered by the
writer thread's start, so the connection is never used by two threads at once.

Why SQLite in WAL mode, not LMDB: measured on this node's write pattern and restart read
(``lean-p2p bench storage``, figures in ``docs/storage.md``), and in the standard library.

What is kept (schema version :data:`SCHEMA_VERSION`):

- ``meta``: the network (the genesis block root), the head and the safe target (which
  this node's next votes aim at), the store's time (in intervals) as of the last votes
  snapshot, the latest finalized and
  justified checkpoints (SSZ ``Checkpoint``);
- ``blocks``: every imported block, SSZ ``SignedBlock`` by root, with its slot;
- ``states``: one row, ``anchor``: a finalized state (SSZ ``State``) with its block root,
  replaced at most every :data:`~lean_p2p.node.chain.SNAPSHOT_INTERVAL_SLOTS` slots of
  finality (copying a state out of the loop's store costs the loop more than the block
  import itself: ``lean-p2p bench storage``);
- ``votes``: fork choice's vote pools as of the last snapshot (SSZ
  ``SignedAggregatedAttestation``, pool ``known`` or ``new``, in pool order).

Every write is one transaction (:meth:`ChainDatabase.write`): the checkpoints move
together with their states and blocks, or not at all. ``synchronous=FULL`` makes each
commit durable (it returns after the WAL is fsynced), so a block the writer reports
committed survives a crash of the process or of the machine.

A restart (:meth:`ChainDatabase.load`) reads the anchor state and block, and every
block above the anchor's slot; the node replays those onto the anchor state, which
brings back the latest finalized and justified states exactly (the restart checks them
against the committed checkpoints)
(:class:`~lean_p2p.node.chain.ChainService`), so it rejoins where it stopped, with no
range sync from genesis.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

from lean_p2p.containers import (
    Checkpoint,
    SignedAggregatedAttestation,
    SignedBlock,
    State,
)
from lean_p2p.containers.ssz import SSZError

__all__ = [
    "DATABASE_FILE",
    "SCHEMA_VERSION",
    "ChainDatabase",
    "DatabaseCorrupt",
    "DatabaseError",
    "DatabaseInUse",
    "DatabaseMismatch",
    "StoredChain",
    "StoredCheckpoint",
    "VotePool",
]

#: Bumped on any change to what the tables hold; a database of another version is refused.
SCHEMA_VERSION = 1
#: ``PRAGMA application_id``: marks the file as a lean_p2p chain database ("LEAN").
APPLICATION_ID = 0x4C45414E
DATABASE_FILE = "chain.sqlite3"
LOCK_FILE = "LOCK"

VotePool = Literal["known", "new"]

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE blocks (root BLOB PRIMARY KEY, slot INTEGER NOT NULL, ssz BLOB NOT NULL);
CREATE INDEX blocks_by_slot ON blocks (slot);
CREATE TABLE states (
    kind TEXT PRIMARY KEY, root BLOB NOT NULL, slot INTEGER NOT NULL, ssz BLOB NOT NULL
);
CREATE TABLE votes (position INTEGER PRIMARY KEY, pool TEXT NOT NULL, ssz BLOB NOT NULL);
"""

_WAY_OUT = (
    "move the data directory aside (or delete it) and start again; "
    "--checkpoint-sync-url avoids syncing from genesis"
)


class DatabaseError(Exception):
    """The chain database cannot be used; the message says why and what to do."""


class DatabaseCorrupt(DatabaseError):
    """The file is damaged or truncated, or holds rows that do not decode."""


class DatabaseMismatch(DatabaseError):
    """The file belongs to another network, another schema version, or another program."""


class DatabaseInUse(DatabaseError):
    """Another process holds the data directory."""


@dataclass(frozen=True, slots=True)
class StoredCheckpoint:
    """A checkpoint as committed: the checkpoint, its block, and the state after it."""

    checkpoint: Checkpoint
    block: SignedBlock
    state: State


@dataclass(frozen=True, slots=True)
class StoredChain:
    """What a restart reads back: enough to resume fork choice where it stopped."""

    #: a finalized checkpoint with its state: where the replay starts
    anchor: StoredCheckpoint
    #: the latest committed checkpoints (the replay must reach them)
    finalized: Checkpoint
    justified: Checkpoint
    #: every stored block above the anchor's slot, by slot (parents first)
    blocks: tuple[SignedBlock, ...]
    votes: tuple[tuple[VotePool, SignedAggregatedAttestation], ...]
    head: bytes
    #: the anchor's ancestors (root, block), parent first, back to genesis (to serve
    #: peers that sync from genesis)
    history: tuple[tuple[bytes, SignedBlock], ...] = ()
    #: fork choice's safe target (None: not stored yet)
    safe_target: bytes | None = None
    #: the store's time (intervals since genesis) when the votes were snapshotted
    time: int | None = None

    @property
    def finalized_slot(self) -> int:
        return self.finalized.slot


@dataclass(slots=True)
class WriteSet:
    """One transaction's contents (encoded on the writer thread)."""

    blocks: list[tuple[bytes, SignedBlock]]
    #: a new anchor: a finalized checkpoint, its block and state
    anchor: StoredCheckpoint | None = None
    finalized: Checkpoint | None = None
    justified: Checkpoint | None = None
    #: a full snapshot of the vote pools; None: unchanged
    votes: Sequence[tuple[VotePool, SignedAggregatedAttestation]] | None = None
    head: bytes | None = None
    safe_target: bytes | None = None
    #: the store's time (intervals) of ``votes``
    time: int | None = None


class ChainDatabase:
    """One node's chain database in ``data_dir``; see the module docstring."""

    def __init__(self, connection: sqlite3.Connection, path: Path, lock: IO[bytes]) -> None:
        self._connection = connection
        self.path = path
        self._lock = lock

    @classmethod
    def open(cls, data_dir: Path, network: bytes, *, check: bool = True) -> ChainDatabase:
        """Open (or create) the database of the network whose genesis block root is
        ``network``. ``check`` runs SQLite's ``quick_check`` over the whole file.

        Raises :class:`DatabaseInUse`, :class:`DatabaseMismatch`, :class:`DatabaseCorrupt`,
        or :class:`DatabaseError` (a directory that cannot be created or written).
        """
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
            lock = open(data_dir / LOCK_FILE, "ab")  # noqa: SIM115 - held until close
        except OSError as error:
            raise DatabaseError(f"data directory {data_dir}: {error.strerror or error}") from error
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            lock.close()
            raise DatabaseInUse(
                f"data directory {data_dir} is in use by another process (each node needs its own)"
            ) from error
        path = data_dir / DATABASE_FILE
        try:
            connection = _connect(path)
        except BaseException:
            lock.close()
            raise
        database = cls(connection, path, lock)
        try:
            database._prepare(network, check)
        except BaseException:
            database.close()  # a refused file is not held: neither connection nor lock
            raise
        return database

    def _prepare(self, network: bytes, check: bool) -> None:
        connection = self._connection
        try:
            application_id = connection.execute("PRAGMA application_id").fetchone()[0]
            version = connection.execute("PRAGMA user_version").fetchone()[0]
            tables = connection.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        except sqlite3.DatabaseError as error:
            raise DatabaseCorrupt(
                f"{self.path} is not a readable database ({error}): {_WAY_OUT}"
            ) from error
        if tables == 0 and application_id == 0:
            self._create(network)
            return
        if application_id != APPLICATION_ID:
            raise DatabaseMismatch(f"{self.path} is not a lean_p2p chain database: {_WAY_OUT}")
        if version != SCHEMA_VERSION:
            raise DatabaseMismatch(
                f"{self.path} has schema version {version}, this lean_p2p reads version "
                f"{SCHEMA_VERSION}: {_WAY_OUT}"
            )
        if check:
            try:
                verdict = connection.execute("PRAGMA quick_check").fetchone()[0]
            except sqlite3.DatabaseError as error:
                verdict = str(error)
            if verdict != "ok":
                raise DatabaseCorrupt(f"{self.path} is damaged ({verdict}): {_WAY_OUT}")
        stored = self._meta("network")
        if stored is None:
            raise DatabaseCorrupt(f"{self.path} names no network: {_WAY_OUT}")
        if stored != network:
            raise DatabaseMismatch(
                f"{self.path} holds the chain of another network (genesis 0x{stored.hex()[:16]}, "
                f"this node's is 0x{network.hex()[:16]}): use another data directory"
            )

    def _create(self, network: bytes) -> None:
        connection = self._connection
        with connection:
            connection.executescript(
                "BEGIN;"
                + _SCHEMA
                + f"PRAGMA application_id = {APPLICATION_ID};"
                + f"PRAGMA user_version = {SCHEMA_VERSION};"
                + "COMMIT;"
            )
        with connection:
            connection.execute("INSERT INTO meta VALUES ('network', ?)", (network,))

    # --- reads (before the loop serves) ------------------------------------------------

    def _meta(self, key: str) -> bytes | None:
        row = self._connection.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else bytes(row[0])

    def is_empty(self) -> bool:
        """Whether no chain was committed yet (a new database)."""
        return self._meta("finalized") is None

    def load(self) -> StoredChain | None:
        """The committed chain; None for a new database. Raises :class:`DatabaseCorrupt`."""
        try:
            return self._load()
        except (SSZError, ValueError, sqlite3.DatabaseError) as error:
            raise DatabaseCorrupt(
                f"{self.path} holds an unreadable row ({error}): {_WAY_OUT}"
            ) from error

    def _load(self) -> StoredChain | None:
        finalized_bytes = self._meta("finalized")
        if finalized_bytes is None:
            return None
        finalized = Checkpoint.decode(finalized_bytes)
        justified = Checkpoint.decode(self._require_meta("justified"))
        head = self._require_meta("head")
        state_row = self._connection.execute(
            "SELECT root, slot, ssz FROM states WHERE kind = 'anchor'"
        ).fetchone()
        if state_row is None:
            raise ValueError("the anchor state is missing")
        anchor = Checkpoint(root=bytes(state_row[0]), slot=int(state_row[1]))
        block = self.block(anchor.root)
        if block is None:
            raise ValueError("the anchor state's block is missing")
        state = State.decode(bytes(state_row[2]))
        blocks = tuple(
            SignedBlock.decode(bytes(row[0]))
            for row in self._connection.execute(
                "SELECT ssz FROM blocks WHERE slot > ? ORDER BY slot, root", (anchor.slot,)
            )
        )
        votes: list[tuple[VotePool, SignedAggregatedAttestation]] = []
        for pool, ssz in self._connection.execute("SELECT pool, ssz FROM votes ORDER BY position"):
            if pool not in ("known", "new"):
                raise ValueError(f"vote pool {pool!r}")
            votes.append((pool, SignedAggregatedAttestation.decode(bytes(ssz))))
        return StoredChain(
            anchor=StoredCheckpoint(anchor, block, state),
            finalized=finalized,
            justified=justified,
            blocks=blocks,
            votes=tuple(votes),
            head=head,
            history=tuple(self.ancestors(block)),
            safe_target=self._meta("safe_target"),
            time=None if (time := self._meta("time")) is None else int.from_bytes(time, "little"),
        )

    def _require_meta(self, key: str) -> bytes:
        value = self._meta(key)
        if value is None:
            raise ValueError(f"meta {key!r} is missing")
        return value

    def block(self, root: bytes) -> SignedBlock | None:
        row = self._connection.execute("SELECT ssz FROM blocks WHERE root = ?", (root,)).fetchone()
        return None if row is None else SignedBlock.decode(bytes(row[0]))

    def block_count(self) -> int:
        return int(self._connection.execute("SELECT count(*) FROM blocks").fetchone()[0])

    def finalized_chain(self, finalized: Checkpoint) -> Iterator[SignedBlock]:
        """The blocks from the finalized one back to genesis, newest first (by parent
        links: a block whose parent is missing ends the walk)."""
        block = self.block(finalized.root)
        if block is not None:
            yield block
            yield from (ancestor for _, ancestor in self.ancestors(block))

    def ancestors(self, block: SignedBlock) -> Iterator[tuple[bytes, SignedBlock]]:
        """``block``'s stored ancestors with their roots, parent first, back to genesis
        (or to the first one missing: a checkpoint-synced node has none before its
        anchor)."""
        while block.block.slot > 0:
            root = block.block.parent_root
            parent = self.block(root)
            if parent is None:
                return
            yield root, parent
            block = parent

    # --- writes (writer thread) --------------------------------------------------------

    def write(self, changes: WriteSet) -> int:
        """Commit ``changes`` in one transaction; returns the bytes written (SSZ)."""
        written = 0
        connection = self._connection
        with connection:  # BEGIN ... COMMIT, or ROLLBACK on any error
            rows = [(root, b.block.slot, b.encode()) for root, b in changes.blocks]
            connection.executemany("INSERT OR IGNORE INTO blocks VALUES (?, ?, ?)", rows)
            written += sum(len(row[2]) for row in rows)
            if changes.anchor is not None:
                anchor = changes.anchor
                state = anchor.state.encode()
                written += len(state)
                connection.execute(
                    "INSERT OR IGNORE INTO blocks VALUES (?, ?, ?)",
                    (anchor.checkpoint.root, anchor.checkpoint.slot, anchor.block.encode()),
                )
                connection.execute(
                    "INSERT OR REPLACE INTO states VALUES ('anchor', ?, ?, ?)",
                    (anchor.checkpoint.root, anchor.checkpoint.slot, state),
                )
            for kind, checkpoint in (
                ("finalized", changes.finalized),
                ("justified", changes.justified),
            ):
                if checkpoint is not None:
                    connection.execute(
                        "INSERT OR REPLACE INTO meta VALUES (?, ?)", (kind, checkpoint.encode())
                    )
            if changes.votes is not None:
                connection.execute("DELETE FROM votes")
                vote_rows = [
                    (position, pool, vote.encode())
                    for position, (pool, vote) in enumerate(changes.votes)
                ]
                connection.executemany("INSERT INTO votes VALUES (?, ?, ?)", vote_rows)
                written += sum(len(row[2]) for row in vote_rows)
            if changes.time is not None:
                connection.execute(
                    "INSERT OR REPLACE INTO meta VALUES ('time', ?)",
                    (changes.time.to_bytes(8, "little"),),
                )
            for key, root in (("head", changes.head), ("safe_target", changes.safe_target)):
                if root is not None:
                    connection.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, root))
        return written

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._connection.close()
        self._lock.close()


def _connect(path: Path) -> sqlite3.Connection:
    try:
        # Writes happen only inside ``with connection`` blocks, one transaction each
        # (sqlite3 opens it at the first write and commits or rolls back at the end).
        connection = sqlite3.connect(path, check_same_thread=False, isolation_level="DEFERRED")
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("PRAGMA synchronous = FULL")
    except sqlite3.DatabaseError as error:
        raise DatabaseCorrupt(f"{path} is not a readable database ({error}): {_WAY_OUT}") from error
    return connection


def remove_database(data_dir: Path) -> None:
    """Delete a data directory's database files (for tests and tools starting afresh)."""
    for name in (DATABASE_FILE, DATABASE_FILE + "-wal", DATABASE_FILE + "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(data_dir / name)

"""Peer table and the Status compatibility rule."""

from __future__ import annotations

import pytest

from lean_p2p.containers import Checkpoint, Status
from lean_p2p.net import Direction
from lean_p2p.p2p.peers import PeerTable, status_conflict
from lean_p2p.tools.memory_chain import MemoryChain
from tests.p2p.helpers import CHAIN, peer_status, root


def test_ranking_prefers_handshaken_highest_head_fewest_failures_then_id() -> None:
    table = PeerTable()
    for peer_id in ("d", "c", "b", "a"):
        table.add(peer_id, Direction.INBOUND, f"/p2p/{peer_id}")
    table.get("a").status = peer_status(5)  # type: ignore[union-attr]
    table.get("b").status = peer_status(9)  # type: ignore[union-attr]
    table.get("c").status = peer_status(9)  # type: ignore[union-attr]
    table.get("c").failures = 1  # type: ignore[union-attr]
    assert [p.peer_id for p in table.ranked()] == ["b", "c", "a", "d"]
    assert table.best_head_slot() == 9


def test_table_is_bounded_and_rejects_duplicates() -> None:
    table = PeerTable(capacity=1)
    table.add("a", Direction.OUTBOUND, "x")
    with pytest.raises(KeyError):
        table.add("a", Direction.OUTBOUND, "x")
    with pytest.raises(OverflowError):
        table.add("b", Direction.OUTBOUND, "y")
    assert table.remove("a") is not None and table.remove("a") is None


def test_compatible_statuses_pass() -> None:
    chain = MemoryChain(CHAIN[:10])
    assert status_conflict(peer_status(3, root(3)), chain) is None
    ahead = Status(finalized=Checkpoint(root=b"\x01" * 32, slot=50), head=Checkpoint(b"", 60))
    assert status_conflict(ahead, chain) is None  # finalized beyond us: cannot judge


def test_a_zero_root_at_slot_zero_stands_for_genesis() -> None:
    # leanSpec's node announces this until it has a block (its Anchor.from_genesis)
    chain = MemoryChain(CHAIN[:10])
    zero = Checkpoint(root=b"\x00" * 32, slot=0)
    assert status_conflict(Status(finalized=zero, head=zero), chain) is None
    # any other root at slot 0 is judged as before (test below)


def test_different_finalized_root_conflicts() -> None:
    chain = MemoryChain(CHAIN[:10])
    other = Status(finalized=Checkpoint(root=b"\x01" * 32, slot=0), head=Checkpoint(b"", 3))
    reason = status_conflict(other, chain)
    assert reason is not None and "conflicts" in reason


def test_head_before_finalized_is_invalid() -> None:
    chain = MemoryChain(CHAIN[:10])
    bad = Status(finalized=Checkpoint(root=root(4), slot=4), head=Checkpoint(root(2), 2))
    reason = status_conflict(bad, chain)
    assert reason is not None and reason.startswith("invalid status")

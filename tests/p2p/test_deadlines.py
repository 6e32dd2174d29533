"""Keyed deadlines: earliest first, moved or cancelled lazily, heap kept compact."""

from __future__ import annotations

from lean_p2p.p2p.deadlines import Deadlines


def test_pop_due_returns_due_keys_earliest_first_and_ties_in_insertion_order() -> None:
    deadlines = Deadlines()
    deadlines.set("late", 5.0)
    deadlines.set("early", 1.0)
    deadlines.set("tie", 1.0)
    assert deadlines.next() == 1.0
    assert deadlines.pop_due(1.0) == ["early", "tie"]
    assert deadlines.pop_due(4.9) == []
    assert deadlines.pop_due(5.0) == ["late"]
    assert deadlines.next() is None and len(deadlines) == 0


def test_moving_a_deadline_replaces_it() -> None:
    deadlines = Deadlines()
    deadlines.set("key", 1.0)
    deadlines.set("key", 3.0)
    assert deadlines.when("key") == 3.0
    assert deadlines.pop_due(2.0) == []
    assert deadlines.pop_due(3.0) == ["key"]


def test_cancel_and_clear() -> None:
    deadlines = Deadlines()
    deadlines.set("a", 1.0)
    deadlines.set("b", 2.0)
    deadlines.cancel("a")
    deadlines.cancel("missing")  # harmless
    assert "a" not in deadlines and "b" in deadlines
    assert deadlines.next() == 2.0
    deadlines.clear()
    assert deadlines.next() is None and deadlines.heap_size == 0


def test_heap_stays_compact_under_churn() -> None:
    deadlines = Deadlines()
    for round_number in range(10_000):
        deadlines.set("moving", float(round_number))
        deadlines.set(round_number, float(round_number))
        deadlines.cancel(round_number)
    assert len(deadlines) == 1
    assert deadlines.heap_size <= 2 * len(deadlines) + 64 + 1

"""Keyed deadlines for the sans-IO core: the earliest one arms the shell's single timer.

Loop thread (pure data structure: no clock, no I/O). A heap with lazy cancellation:
setting or cancelling a key only updates a dict, and stale heap entries are skipped when
they reach the top. The heap is rebuilt when stale entries outnumber live ones, so its
size stays within twice the number of live deadlines (plus a small constant).
"""

from __future__ import annotations

import heapq
from collections.abc import Hashable

__all__ = ["Deadlines"]

_COMPACT_SLACK = 64


class Deadlines:
    """At most one deadline per key; ``pop_due(now)`` returns the keys whose time came."""

    __slots__ = ("_heap", "_live", "_sequence")

    def __init__(self) -> None:
        # (when, sequence, key): the sequence keeps the order of equal deadlines
        # deterministic (insertion order) and makes heap entries never compare keys.
        self._heap: list[tuple[float, int, Hashable]] = []
        self._live: dict[Hashable, tuple[float, int]] = {}
        self._sequence = 0

    def __len__(self) -> int:
        return len(self._live)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._live

    @property
    def heap_size(self) -> int:
        """Entries in the heap, stale ones included (for the bound checks in tests)."""
        return len(self._heap)

    def set(self, key: Hashable, when: float) -> None:
        """Set (or move) the deadline of ``key``."""
        self._sequence += 1
        self._live[key] = (when, self._sequence)
        heapq.heappush(self._heap, (when, self._sequence, key))
        self._compact_if_stale()

    def cancel(self, key: Hashable) -> None:
        self._live.pop(key, None)
        self._compact_if_stale()

    def when(self, key: Hashable) -> float | None:
        entry = self._live.get(key)
        return None if entry is None else entry[0]

    def next(self) -> float | None:
        """The earliest live deadline, or None."""
        self._drop_stale_top()
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now: float) -> list[Hashable]:
        """Remove and return every key due at ``now``, earliest first."""
        due: list[Hashable] = []
        while True:
            self._drop_stale_top()
            if not self._heap or self._heap[0][0] > now:
                return due
            _, _, key = heapq.heappop(self._heap)
            del self._live[key]
            due.append(key)

    def clear(self) -> None:
        self._heap.clear()
        self._live.clear()

    def _is_live(self, entry: tuple[float, int, Hashable]) -> bool:
        when, sequence, key = entry
        return self._live.get(key) == (when, sequence)

    def _drop_stale_top(self) -> None:
        while self._heap and not self._is_live(self._heap[0]):
            heapq.heappop(self._heap)

    def _compact_if_stale(self) -> None:
        if len(self._heap) > 2 * len(self._live) + _COMPACT_SLACK:
            self._heap = [entry for entry in self._heap if self._is_live(entry)]
            heapq.heapify(self._heap)

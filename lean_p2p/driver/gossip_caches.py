"""Gossipsub's two caches, keyed by the lean message id. Trio driver thread.

:class:`SeenCache` deduplicates (every id seen within the TTL); :class:`MessageCache`
keeps recent messages for IWANT and names the newest in IHAVE (gossipsub's mcache).
Plain data structures: no I/O, no clock (the router passes ``now``).
"""

from __future__ import annotations

from collections import OrderedDict, deque

__all__ = ["MessageCache", "SeenCache"]


class SeenCache:
    """Message ids seen within the last ``ttl`` seconds (insertion-ordered expiry).

    Every id is inserted with the same TTL, so dict insertion order is expiry order:
    expiring is popping from the front.
    """

    __slots__ = ("_expiry", "ttl")

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        # OrderedDict: peeking at and removing the oldest entry are O(1) (a plain dict
        # rescans the deleted slots at its front on every peek).
        self._expiry: OrderedDict[bytes, float] = OrderedDict()

    def __contains__(self, message_id: object) -> bool:
        return message_id in self._expiry

    def __len__(self) -> int:
        return len(self._expiry)

    def add(self, message_id: bytes, now: float) -> bool:
        """Record ``message_id``; False when it was already present."""
        if message_id in self._expiry:
            return False
        self._expiry[message_id] = now + self.ttl
        return True

    def expire(self, now: float) -> int:
        # Oldest first: stop at the first id still alive (O(expired), no copy).
        expired = 0
        while self._expiry:
            message_id = next(iter(self._expiry))
            if self._expiry[message_id] > now:
                break
            self._expiry.popitem(last=False)
            expired += 1
        return expired


class MessageCache:
    """Recent messages keyed by the lean message id (gossipsub's mcache).

    ``history_length`` windows are kept for IWANT; the newest ``history_gossip`` are
    advertised in IHAVE. A window shifts every heartbeat.
    """

    __slots__ = ("_gossip", "_messages", "_windows")

    def __init__(self, history_length: int, history_gossip: int) -> None:
        self._gossip = history_gossip
        self._messages: dict[bytes, tuple[str, bytes]] = {}  # id -> (topic, data)
        self._windows: deque[list[bytes]] = deque([[]], maxlen=history_length)

    def __len__(self) -> int:
        return len(self._messages)

    def put(self, message_id: bytes, topic: str, data: bytes) -> None:
        if message_id not in self._messages:
            self._messages[message_id] = (topic, data)
            self._windows[0].append(message_id)

    def get(self, message_id: bytes) -> tuple[str, bytes] | None:
        return self._messages.get(message_id)

    def gossip_ids(self, topic: str) -> list[bytes]:
        ids: list[bytes] = []
        for window in list(self._windows)[: self._gossip]:
            ids.extend(mid for mid in window if self._messages[mid][0] == topic)
        return ids

    def shift(self) -> None:
        if len(self._windows) == self._windows.maxlen:
            for message_id in self._windows[-1]:
                self._messages.pop(message_id, None)
        self._windows.appendleft([])

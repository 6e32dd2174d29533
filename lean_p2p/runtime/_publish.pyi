"""Types of the C extension module built from ``bindings/lean_p2p_publish.c`` (any thread,
with the GIL held: a sender's publish step)."""

from collections import deque
from collections.abc import Callable
from typing import Any

class Publisher:
    def __init__(
        self,
        items: deque[object],
        capacity: int,
        closed: list[bool],
        error: type[BaseException],
        lane: str,
        *,
        make_room: Callable[[], bool] | None = None,
        idle_token: list[None] | None = None,
        arm: Callable[[], object] | None = None,
    ) -> None: ...
    def put(self, item: object, /) -> bool: ...
    def force(self, item: object, /) -> bool: ...
    def send(self, item: object, /) -> bool: ...

class LanesPublisher:
    def __init__(
        self,
        lanes: tuple[tuple[deque[object], int | None], ...],
        closed: list[bool],
        idle_token: list[None],
        count_wakeup: Callable[[], object],
        schedule: Callable[[], object],
    ) -> None: ...
    def room(self) -> int: ...
    def publish(self, groups: list[list[Any]], /) -> int: ...

def serve(
    pop: Callable[[], object],
    limit: int,
    handler: Callable[[str, object], object],
    name: str,
    /,
) -> tuple[int, object, BaseException | None]:
    """Loop thread: up to ``limit`` times, ``pop()`` an item and call ``handler(name,
    item)``; stops when the lane is empty or the handler raises. Returns (served, the
    item whose handler raised, its exception), or (served, None, None)."""

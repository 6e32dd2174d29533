"""Types of the C extension module built from ``bindings/lean_p2p_records.c``."""

from collections.abc import Callable
from typing import Any

from typing_extensions import Buffer

def configure(event_type: type, kinds: tuple[Any, ...], /) -> None: ...
def decode(buffer: Buffer, used: int, count: int, /) -> list[Any]: ...
def decode_routed(
    buffer: Buffer, used: int, count: int, table: bytes, width: int, lanes: int, /
) -> tuple[list[list[Any]], list[Any]]: ...
def take(
    begin_drain: int, drain: int, ring: int, buffer: Buffer, limit: int, /
) -> tuple[int, int, int]: ...
def drain_to_lanes(
    begin_drain: int,
    drain: int,
    table: bytes,
    width: int,
    lanes: int,
    room: Callable[[], int],
    publish: Callable[[list[list[Any]]], int],
    ring: int,
    buffer: Buffer,
    limit: int,
    begin: bool,
    /,
) -> tuple[int, int, int, int, list[list[Any]] | None, list[Any] | None, BaseException | None]: ...

"""Loop-affinity guard: proves that loop-owned state is touched only on its loop thread.

Runs on whatever thread calls it; that is the point. An object that must live on the
loop thread owns a :class:`LoopAffinity`, binds it to the loop thread, and calls
:meth:`LoopAffinity.check` (or decorates methods with :func:`loop_only`). A call from
any other thread raises :class:`WrongThreadError` at once, naming the thread-safe entry
point to use instead — so a race is a loud, immediate error, not a corrupted store.

The check is one ``threading.get_ident()`` comparison. It is always on in tests; a
production node can switch it off with :func:`set_enabled` (or the environment
variable ``LEAN_P2P_AFFINITY=off``) to save that comparison.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable
from typing import Concatenate, ParamSpec, Protocol, TypeVar

__all__ = [
    "LoopAffinity",
    "WrongThreadError",
    "affinity_enabled",
    "loop_only",
    "set_enabled",
    "violation_count",
]

_enabled = os.environ.get("LEAN_P2P_AFFINITY", "on").lower() not in {"off", "0", "false"}
# Counted even when the raising caller swallows the error, so stress runs can report
# wrong-thread accesses. Increments race only with each other; a lost increment could
# under-count a count that must be zero anyway, and a non-zero count is never hidden
# because the raise happens regardless.
_violations = 0


class WrongThreadError(RuntimeError):
    """Loop-owned state was touched from a thread other than its loop thread."""


def set_enabled(enabled: bool) -> None:
    """Switch the check on or off process-wide (production may turn it off)."""
    global _enabled
    _enabled = enabled


def affinity_enabled() -> bool:
    return _enabled


def violation_count() -> int:
    """How many wrong-thread accesses were detected in this process so far."""
    return _violations


class LoopAffinity:
    """Binds an owner to one thread; :meth:`check` raises anywhere else.

    ``owner`` names the guarded object in the error; ``threadsafe_entry`` names what
    foreign threads should call instead (for example ``"Mailbox.put"``).
    """

    __slots__ = ("_thread_id", "_thread_name", "owner", "threadsafe_entry")

    def __init__(self, owner: str, threadsafe_entry: str) -> None:
        self.owner = owner
        self.threadsafe_entry = threadsafe_entry
        self._thread_id: int | None = None
        self._thread_name = ""

    def bind(self) -> None:
        """Bind to the calling thread (call on the loop thread, once)."""
        current = threading.current_thread()
        self._thread_id = current.ident
        self._thread_name = current.name

    @property
    def bound(self) -> bool:
        return self._thread_id is not None

    def is_current(self) -> bool:
        """Whether the calling thread is the bound one (False while unbound)."""
        return self._thread_id == threading.get_ident()

    def check(self) -> None:
        """Raise :class:`WrongThreadError` unless called on the bound thread.

        An unbound guard binds itself to its first caller, so objects created before
        the loop thread exists bind on first use.
        """
        if not _enabled:
            return
        ident = threading.get_ident()
        if self._thread_id is None:
            self.bind()
            return
        if ident != self._thread_id:
            global _violations
            _violations += 1
            raise WrongThreadError(
                f"{self.owner} belongs to thread {self._thread_name!r} but was called from "
                f"{threading.current_thread().name!r}; from other threads use "
                f"{self.threadsafe_entry} instead"
            )


class _HasAffinity(Protocol):
    @property
    def affinity(self) -> LoopAffinity: ...


_Self = TypeVar("_Self", bound=_HasAffinity)
_P = ParamSpec("_P")
_R = TypeVar("_R")


def loop_only(
    method: Callable[Concatenate[_Self, _P], _R],
) -> Callable[Concatenate[_Self, _P], _R]:
    """Method decorator: check ``self.affinity`` before running the method."""

    @functools.wraps(method)
    def guarded(self: _Self, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        self.affinity.check()
        return method(self, *args, **kwargs)

    return guarded

"""The ctypes callback path: for native stacks that can only call a function pointer.

The callback runs on the CALLING NATIVE THREAD, holding the GIL (ctypes takes it on
entry). It only validates the event, copies it into a :class:`NativeEvent` and hands
it to ``sink`` (normally a ``Mailbox.put`` through
:func:`lean_p2p.native.ring.mailbox_sink`); the mailbox wakes the loop. It has the
signature of ``lean_p2p_push_fn`` (``bindings/lean_p2p.h``), so a stack written against
the ring can be pointed at it unchanged (the ring argument is ignored).

Costs and caveats, measured by ``lean-p2p bench native`` (docs/bench-native.md):

- Thread state. ctypes makes a Python thread state for a foreign thread on every call
  and destroys it on return. With ``pin_thread_state`` (the default) the first call on
  each native thread takes one extra reference on that thread state, so later calls
  reuse it (a whole call: median 2.4 µs pinned, 8.7-9.9 µs not). A thread that will
  exit should call :attr:`CallbackBridge.detach_address` (``void (*)(void)``) first;
  otherwise its thread state stays allocated until the interpreter exits.
- GIL wait. Every call needs the GIL. While the loop thread runs Python, a call can
  wait up to the interpreter's switch interval (5 ms by default) for it, and the
  native thread is blocked all that time. The C ring (:mod:`lean_p2p.native.ring`)
  never takes the GIL; prefer it wherever the stack can call a C function.
"""

from __future__ import annotations

import ctypes
import itertools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lean_p2p.native.library import EventStruct, function_address
from lean_p2p.native.records import MAX_PEER_ID_LEN, EventKind, NativeEvent, PushResult
from lean_p2p.runtime.mailbox import MailboxClosed

__all__ = ["PUSH_FUNCTION_TYPE", "CallbackBridge", "CallbackStatistics"]

logger = logging.getLogger(__name__)

#: ``lean_p2p_push_fn``: ``int (*)(lean_p2p_ring *, const lean_p2p_event *)``.
PUSH_FUNCTION_TYPE = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.POINTER(EventStruct))
_DETACH_FUNCTION_TYPE = ctypes.CFUNCTYPE(None)

_ensure_thread_state = ctypes.pythonapi.PyGILState_Ensure
_ensure_thread_state.restype = ctypes.c_int
_ensure_thread_state.argtypes = ()
_release_thread_state = ctypes.pythonapi.PyGILState_Release
_release_thread_state.restype = None
_release_thread_state.argtypes = (ctypes.c_int,)

_KINDS = {kind.value: kind for kind in EventKind}


class _Counter:
    """Incremented from many threads without a lock: ``next()`` on ``itertools.count``
    is one C call, so no increment is lost (``x += 1`` on an attribute can be)."""

    __slots__ = ("_count", "increment")

    def __init__(self) -> None:
        self._count = itertools.count()
        self.increment: Callable[[], object] = self._count.__next__

    @property
    def value(self) -> int:
        return int(repr(self._count)[len("count(") : -1])


@dataclass(frozen=True, slots=True)
class CallbackStatistics:
    calls: int
    accepted: int
    sink_rejected: int
    rejected_invalid: int
    rejected_too_large: int
    rejected_closed: int
    errors: int
    pinned_threads: int
    detached_threads: int

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}


class CallbackBridge:
    """A ``lean_p2p_push_fn`` implemented in Python, feeding ``sink``.

    ``sink(event)`` returning False makes the call return ``LEAN_P2P_FULL``; raising
    :class:`~lean_p2p.runtime.mailbox.MailboxClosed` makes it return
    ``LEAN_P2P_ERR_CLOSED``; any other exception is logged and counted and the call
    returns ``LEAN_P2P_ERR_INVALID`` (an exception never escapes into native code).

    Keep the bridge alive as long as native code may call its addresses.
    """

    def __init__(
        self,
        sink: Callable[[NativeEvent], object],
        *,
        max_payload: int = 10 * 1024 * 1024,
        pin_thread_state: bool = True,
    ) -> None:
        self._sink = sink
        self._max_payload = max_payload
        self._pin_thread_state = pin_thread_state
        self._thread = threading.local()
        self._counters = {
            name: _Counter()
            for name in (
                "calls",
                "accepted",
                "sink_rejected",
                "rejected_invalid",
                "rejected_too_large",
                "rejected_closed",
                "errors",
                "pinned_threads",
                "detached_threads",
            )
        }
        # The ctypes function objects must outlive every native call through them.
        self._push_function = PUSH_FUNCTION_TYPE(self._push)
        self._detach_function = _DETACH_FUNCTION_TYPE(self._detach)

    @property
    def function_address(self) -> int:
        """Address of the ``lean_p2p_push_fn`` to hand to native code."""
        return function_address(self._push_function)

    @property
    def detach_address(self) -> int:
        """Address of ``void detach(void)``: a native thread calls it before exiting to
        free the thread state its first push pinned."""
        return function_address(self._detach_function)

    def statistics(self) -> CallbackStatistics:
        return CallbackStatistics(**{name: c.value for name, c in self._counters.items()})

    # -- the calling native thread, with the GIL ----------------------------------------

    def _push(self, _ring: int | None, event_pointer: Any) -> int:
        counters = self._counters
        counters["calls"].increment()
        try:
            if self._pin_thread_state and not hasattr(self._thread, "pinned_state"):
                self._pin()
            result = self._push_event(event_pointer)
        except MailboxClosed:
            result = PushResult.ERR_CLOSED
        except Exception:
            counters["errors"].increment()
            logger.exception("native callback failed")
            return int(PushResult.ERR_INVALID)
        counters[_RESULT_COUNTERS[result]].increment()
        return int(result)

    def _push_event(self, event_pointer: Any) -> PushResult:
        if not event_pointer:
            return PushResult.ERR_INVALID
        raw = event_pointer.contents
        kind = _KINDS.get(raw.kind)
        peer_id_len = raw.peer_id_len
        payload_len = raw.payload_len
        if kind is None or (not raw.peer_id and peer_id_len) or (not raw.payload and payload_len):
            return PushResult.ERR_INVALID
        if peer_id_len > MAX_PEER_ID_LEN or payload_len > self._max_payload:
            return PushResult.ERR_TOO_LARGE
        event = NativeEvent(
            kind,
            raw.channel,
            raw.request_id,
            ctypes.string_at(raw.peer_id, peer_id_len) if peer_id_len else b"",
            ctypes.string_at(raw.payload, payload_len) if payload_len else b"",
        )
        return PushResult.FULL if self._sink(event) is False else PushResult.OK

    def _pin(self) -> None:
        # ctypes holds one reference on this thread's state for the duration of the
        # call; taking a second one keeps the state alive after the call returns, so
        # the next call from this thread reuses it instead of building a new one.
        self._thread.pinned_state = _ensure_thread_state()
        self._counters["pinned_threads"].increment()

    def _detach(self) -> None:
        state = getattr(self._thread, "pinned_state", None)
        if state is None:
            return
        del self._thread.pinned_state
        # Drop our reference; ctypes drops its own when this call returns, and the
        # thread state is destroyed then.
        _release_thread_state(state)
        self._counters["detached_threads"].increment()


_RESULT_COUNTERS = {
    PushResult.OK: "accepted",
    PushResult.FULL: "sink_rejected",
    PushResult.ERR_INVALID: "rejected_invalid",
    PushResult.ERR_TOO_LARGE: "rejected_too_large",
    PushResult.ERR_CLOSED: "rejected_closed",
}

"""Finding and loading the native ring library (``bindings/lean_p2p_ring.c``).

Any thread. The library is a plain C shared library (no Python C API) built by the
package's optional native build into ``lean_p2p/native/liblean_p2p_ring.so``; the
environment variable ``LEAN_P2P_NATIVE_LIB`` names another build to use instead. A ring
function called through :func:`load_library` releases the GIL while it runs
(``ctypes.CDLL``), and none of them calls back into Python. :func:`holding_gil` gives one
that keeps the GIL instead, for calls that never wait: the push of Python producer
threads (:func:`push_holding_gil`, ~35 ns) and the loop thread's drain calls.
"""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

__all__ = [
    "ABI_VERSION",
    "LIBRARY_ENV",
    "LIBRARY_FILENAME",
    "EventStruct",
    "NativeUnavailable",
    "RingStatsStruct",
    "availability",
    "function_address",
    "holding_gil",
    "library_path",
    "load_library",
    "push_holding_gil",
]

#: The ABI version this Python side speaks (``LEAN_P2P_ABI_VERSION`` in lean_p2p.h).
ABI_VERSION = 1
LIBRARY_FILENAME = "liblean_p2p_ring.so"
LIBRARY_ENV = "LEAN_P2P_NATIVE_LIB"

HOW_TO_BUILD = (
    "install a C compiler (e.g. `apt-get install gcc`) and reinstall the package "
    "(`pip install -e .`), or point LEAN_P2P_NATIVE_LIB at a build of "
    "bindings/lean_p2p_ring.c"
)


class NativeUnavailable(RuntimeError):
    """The native ring library is not built or cannot be loaded here."""


class EventStruct(ctypes.Structure):
    """``lean_p2p_event`` of lean_p2p.h."""

    _fields_ = [
        ("kind", ctypes.c_uint32),
        ("channel", ctypes.c_uint32),
        ("request_id", ctypes.c_uint64),
        ("peer_id", ctypes.c_void_p),
        ("peer_id_len", ctypes.c_size_t),
        ("payload", ctypes.c_void_p),
        ("payload_len", ctypes.c_size_t),
    ]


class RingStatsStruct(ctypes.Structure):
    """``lean_p2p_ring_stats`` of lean_p2p.h."""

    _fields_ = [
        ("accepted", ctypes.c_uint64),
        ("drained", ctypes.c_uint64),
        ("refused_full", ctypes.c_uint64),
        ("rejected_invalid", ctypes.c_uint64),
        ("rejected_too_large", ctypes.c_uint64),
        ("rejected_no_memory", ctypes.c_uint64),
        ("rejected_closed", ctypes.c_uint64),
        ("wakeups", ctypes.c_uint64),
        ("queued", ctypes.c_uint64),
    ]


@dataclass(frozen=True, slots=True)
class _Signature:
    restype: type | None
    argtypes: tuple[type, ...]


_VOID_P = ctypes.c_void_p
_SIZE = ctypes.c_size_t
_SIGNATURES: dict[str, _Signature] = {
    "lean_p2p_abi_version": _Signature(ctypes.c_int, ()),
    "lean_p2p_ring_create": _Signature(_VOID_P, (_SIZE, _SIZE)),
    "lean_p2p_ring_destroy": _Signature(None, (_VOID_P,)),
    "lean_p2p_ring_eventfd": _Signature(ctypes.c_int, (_VOID_P,)),
    "lean_p2p_ring_capacity": _Signature(_SIZE, (_VOID_P,)),
    "lean_p2p_ring_max_payload": _Signature(_SIZE, (_VOID_P,)),
    "lean_p2p_ring_stats_read": _Signature(None, (_VOID_P, ctypes.POINTER(RingStatsStruct))),
    "lean_p2p_ring_begin_drain": _Signature(None, (_VOID_P,)),
    "lean_p2p_ring_mark_pending": _Signature(None, (_VOID_P,)),
    "lean_p2p_ring_drain": _Signature(
        _SIZE,
        (_VOID_P, _VOID_P, _SIZE, _SIZE, ctypes.POINTER(_SIZE), ctypes.POINTER(_SIZE)),
    ),
    "lean_p2p_ring_close": _Signature(None, (_VOID_P,)),
    "lean_p2p_ring_is_closed": _Signature(ctypes.c_int, (_VOID_P,)),
    "lean_p2p_ring_push": _Signature(ctypes.c_int, (_VOID_P, ctypes.POINTER(EventStruct))),
    "lean_p2p_result_name": _Signature(ctypes.c_char_p, (ctypes.c_int,)),
}


def library_path() -> Path:
    """Where the library is looked for: ``$LEAN_P2P_NATIVE_LIB``, else next to this file."""
    override = os.environ.get(LIBRARY_ENV)
    if override:
        return Path(override)
    return Path(__file__).with_name(LIBRARY_FILENAME)


@cache
def _load(path: Path) -> ctypes.CDLL:
    if not sys.platform.startswith("linux"):
        raise NativeUnavailable(f"the native ring needs Linux (eventfd), not {sys.platform}")
    if not path.is_file():
        raise NativeUnavailable(
            f"native ring library not built ({path} is missing): {HOW_TO_BUILD}"
        )
    try:
        # RTLD_GLOBAL: a native stack loaded later in this process may link against
        # lean_p2p_ring_push by name instead of being handed its address.
        library = ctypes.CDLL(str(path), mode=ctypes.RTLD_GLOBAL)
    except OSError as error:
        raise NativeUnavailable(f"cannot load {path}: {error}") from error
    for name, signature in _SIGNATURES.items():
        try:
            function = getattr(library, name)
        except AttributeError as error:
            raise NativeUnavailable(f"{path} lacks {name}: rebuild it") from error
        function.restype = signature.restype
        function.argtypes = signature.argtypes
    version = library.lean_p2p_abi_version()
    if version != ABI_VERSION:
        raise NativeUnavailable(f"{path} speaks ABI {version}, this package ABI {ABI_VERSION}")
    return library


PushHoldingGil = Callable[..., int]


@cache
def push_holding_gil() -> PushHoldingGil:
    """``lean_p2p_ring_push`` called *without* releasing the GIL, for Python threads.

    A push never waits (a full ring answers FULL at once), so for a Python caller that
    already holds the GIL, dropping and re-taking it costs more than the push itself, and
    re-taking it can wait a whole switch interval (5 ms) behind a busy loop thread: four
    Python producers pushing through a GIL-releasing call convoy at a few hundred pushes
    per second. Native threads call the C function directly and never touch the GIL.
    """
    return holding_gil("lean_p2p_ring_push")


@cache
def holding_gil(name: str) -> Callable[..., Any]:
    """The ring function ``name`` called *without* releasing the GIL.

    For a call that never waits, made by a thread that holds the GIL: letting the GIL go
    costs more than such a call, and taking it back can wait a whole switch interval
    (5 ms) behind another Python thread. On the loop thread (the drain's
    ``lean_p2p_ring_begin_drain`` and ``lean_p2p_ring_mark_pending``) that wait would be
    every event's. Raises KeyError for a name the library does not export here.
    """
    signature = _SIGNATURES[name]
    prototype = ctypes.PYFUNCTYPE(signature.restype, *signature.argtypes)
    return prototype((name, load_library()))


def function_address(function: Any) -> int:
    """The address of a C function (a ctypes function or callback object), to hand to
    native code; never 0 for a loaded function."""
    address = ctypes.cast(function, ctypes.c_void_p).value
    if address is None:
        raise ValueError(f"{function!r} has no address")
    return address


def load_library() -> ctypes.CDLL:
    """The loaded ring library; raises :class:`NativeUnavailable` with how to get it."""
    return _load(library_path())


def availability() -> str:
    """One line saying whether the native ring can be used here, and if not, why."""
    try:
        load_library()
    except NativeUnavailable as error:
        return f"unavailable: {error}"
    return f"available ({library_path()}, ABI {ABI_VERSION})"

"""Native producers: the C event ring of ``bindings/`` and the ctypes callback path.

Thread map: native threads push into the ring with the C function
``lean_p2p_ring_push`` (no GIL); :class:`NativeRing` drains it on the loop thread
(eventfd + ``loop.add_reader``) into a sink, normally a mailbox (:func:`mailbox_sink`,
which takes each drained batch with one ``Mailbox.put_many`` per lane).
:class:`CallbackBridge` is the fallback for stacks that can only call a function
pointer: its callback runs on the native thread with the GIL and ``put``s each event.

The ring library is built by the package's optional native build; :func:`availability`
says whether it is usable here, and :func:`record_decoder` whether drained records are
decoded in C (the extension module ``lean_p2p.native._records``) or in Python.
Importing this package never fails for lack of either: only constructing a
:class:`NativeRing` raises :class:`NativeUnavailable`.
"""

from lean_p2p.native.callback import PUSH_FUNCTION_TYPE, CallbackBridge, CallbackStatistics
from lean_p2p.native.library import NativeUnavailable, availability, library_path, load_library
from lean_p2p.native.records import (
    PROTOCOL_CODES,
    TOPIC_CODES,
    EventKind,
    NativeEvent,
    PushResult,
    RouteTable,
    UnroutableEvent,
    lean_lane_for,
    record_decoder,
)
from lean_p2p.native.ring import (
    BatchSink,
    DirectRoute,
    MailboxSink,
    NativeRing,
    NativeRingClosed,
    NativeRingStatistics,
    mailbox_sink,
)

__all__ = [
    "PROTOCOL_CODES",
    "PUSH_FUNCTION_TYPE",
    "TOPIC_CODES",
    "BatchSink",
    "CallbackBridge",
    "CallbackStatistics",
    "DirectRoute",
    "EventKind",
    "MailboxSink",
    "NativeEvent",
    "NativeRing",
    "NativeRingClosed",
    "NativeRingStatistics",
    "NativeUnavailable",
    "PushResult",
    "RouteTable",
    "UnroutableEvent",
    "availability",
    "lean_lane_for",
    "library_path",
    "load_library",
    "mailbox_sink",
    "record_decoder",
]

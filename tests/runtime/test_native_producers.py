"""Producers that are native threads (pthread_create) entering Python through ctypes."""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import sys
import threading

import pytest

from lean_p2p.runtime.mailbox import LaneSpec, Mailbox, OverflowPolicy

pytestmark = [
    pytest.mark.stress,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses pthreads via libc"),
]

THREAD_BODY = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p)


def run_native_threads(bodies: list[object]) -> None:
    """Start one pthread per body (a THREAD_BODY callback) and join them all."""
    libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    handles = [ctypes.c_ulong() for _ in bodies]
    for handle, body in zip(handles, bodies, strict=True):
        assert libc.pthread_create(ctypes.byref(handle), None, body, None) == 0
    for handle in handles:
        # ctypes releases the GIL during the call, so the native threads can run Python.
        assert libc.pthread_join(handle, None) == 0


async def test_native_threads_put_exactly_once_in_order() -> None:
    producers, events = 8, 20_000
    received: list[list[int]] = [[] for _ in range(producers)]
    loop_thread = threading.get_ident()
    foreign_handler_calls = 0

    def handler(_lane: str, item: object) -> None:
        nonlocal foreign_handler_calls
        if threading.get_ident() != loop_thread:
            foreign_handler_calls += 1
        assert isinstance(item, tuple)
        producer, sequence = item
        received[producer].append(sequence)

    mailbox = Mailbox([LaneSpec("native", 1 << 20, OverflowPolicy.REJECT_NEWEST, 256)], handler)
    native_idents: set[int] = set()

    def make_body(producer: int) -> object:
        def body(_argument: object) -> None:
            native_idents.add(threading.get_ident())
            # No assert here: an exception in a ctypes callback is only printed. A
            # rejected put shows up as a gap in the order check below.
            for sequence in range(events):
                mailbox.put("native", (producer, sequence))

        return THREAD_BODY(body)

    bodies = [make_body(producer) for producer in range(producers)]  # keep them alive
    await asyncio.to_thread(run_native_threads, bodies)
    await mailbox.aclose()
    assert all(sequences == list(range(events)) for sequences in received)
    assert foreign_handler_calls == 0
    assert loop_thread not in native_idents and len(native_idents) == producers
    stats = mailbox.statistics()
    assert stats.handled == producers * events
    assert stats.wakeups <= stats.drains

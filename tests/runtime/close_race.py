"""The close race shared by the mailbox's tests and the publish step's: producer threads
putting flat out while the loop closes the mailbox."""

from __future__ import annotations

import asyncio
import itertools
import sys
import threading

from lean_p2p.runtime.mailbox import LaneSpec, Mailbox, MailboxClosed, OverflowPolicy


async def race_aclose(yielding: bool, rounds: int = 10) -> tuple[list[object], list[object]]:
    """Four threads put as fast as they can while the loop closes the mailbox, ``rounds``
    times: (the items handled before aclose returned, the items whose put returned
    True). A switch interval of a microsecond makes the interpreter hand the GIL over
    between almost any two bytecodes of a put. Mailboxes take the publish path in force
    (the default ``atomic_publish``: see ``publish_path`` in conftest.py)."""
    handled: list[object] = []
    accepted: list[object] = []
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for round_number in range(rounds):
            handled_in_round, accepted_in_round = await _race_one_close(round_number, yielding)
            handled += handled_in_round
            accepted += accepted_in_round
    finally:
        sys.setswitchinterval(previous)
    return handled, accepted


async def _race_one_close(round_number: int, yielding: bool) -> tuple[list[object], list[object]]:
    handled: list[object] = []
    under_way = asyncio.Event()

    def handle(_lane: str, item: object) -> None:
        handled.append(item)
        if len(handled) == 500:
            under_way.set()

    mailbox = Mailbox([LaneSpec("only", 1_000_000, OverflowPolicy.REJECT_NEWEST, 8)], handle)
    accepted: list[list[object]] = [[] for _ in range(4)]
    started = threading.Barrier(5)

    def produce(index: int) -> None:
        send = mailbox.sender("only", yield_to_loop_s=0.0001 if yielding else 0.0)
        record = accepted[index].append
        started.wait()
        for number in itertools.count():
            item = (round_number, index, number)
            try:
                was_accepted = send(item)
            except MailboxClosed:
                return
            if was_accepted:
                record(item)

    producers = [threading.Thread(target=produce, args=(i,)) for i in range(4)]
    for producer in producers:
        producer.start()
    await asyncio.to_thread(started.wait)
    await under_way.wait()
    await mailbox.aclose()
    handled_by_close = len(handled)  # the contract: handled before aclose returns
    for producer in producers:
        await asyncio.to_thread(producer.join)
    await asyncio.sleep(0)  # a drain a late put scheduled would run now
    return handled[:handled_by_close], [item for items in accepted for item in items]

"""The runtime's public API: every name in __all__ exists and is the real object."""

from __future__ import annotations

from lean_p2p import runtime
from lean_p2p.runtime import actor, affinity, blocking, lanes, mailbox, timers


def test_every_exported_name_exists_and_all_is_sorted() -> None:
    for name in runtime.__all__:
        assert getattr(runtime, name) is not None, name
    assert runtime.__all__ == sorted(runtime.__all__, key=lambda name: (not name.isupper(), name))


def test_the_contract_names_come_from_their_modules() -> None:
    assert runtime.Mailbox is mailbox.Mailbox
    assert runtime.LaneSpec is mailbox.LaneSpec
    assert runtime.OverflowPolicy is mailbox.OverflowPolicy
    assert runtime.LEAN_LANES is lanes.LEAN_LANES
    assert runtime.LoopAffinity is affinity.LoopAffinity
    assert runtime.Actor is actor.Actor
    assert runtime.TimerQueue is timers.TimerQueue
    assert runtime.BlockingMailbox is blocking.BlockingMailbox
    assert {"REJECT_NEWEST", "EVICT_OLDEST"} <= set(runtime.OverflowPolicy.__members__)


def test_every_runtime_module_lists_its_public_names() -> None:
    for module in (actor, affinity, blocking, lanes, mailbox, timers):
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.{name}"

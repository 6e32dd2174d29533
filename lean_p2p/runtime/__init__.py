"""The loop-thread runtime: mailbox, loop-affinity guard, actors and timers.

Thread map: ``Mailbox.put``, ``BlockingMailbox.put`` and ``Actor.send`` are any-thread
entry points; the drain, actors, timers and everything they touch run on the loop
thread.
"""

from lean_p2p.runtime.actor import (
    Actor,
    ActorExit,
    ActorOverloaded,
    ActorState,
    ActorStatistics,
    ActorStopped,
    Supervisor,
)
from lean_p2p.runtime.affinity import LoopAffinity, WrongThreadError, loop_only
from lean_p2p.runtime.blocking import BlockingMailbox, BlockingMailboxStatistics
from lean_p2p.runtime.lanes import LEAN_LANES
from lean_p2p.runtime.mailbox import (
    ATOMIC_PUBLISH_AVAILABLE,
    DEFAULT_BUDGET,
    DEFAULT_TIME_BUDGET_S,
    HandlerFailure,
    LaneSpec,
    LaneStatistics,
    Mailbox,
    MailboxClosed,
    MailboxStatistics,
    OverflowPolicy,
    UnknownLaneError,
)
from lean_p2p.runtime.timers import TimerHandle, TimerQueue, TimerStatistics

__all__ = [
    "ATOMIC_PUBLISH_AVAILABLE",
    "DEFAULT_BUDGET",
    "DEFAULT_TIME_BUDGET_S",
    "LEAN_LANES",
    "Actor",
    "ActorExit",
    "ActorOverloaded",
    "ActorState",
    "ActorStatistics",
    "ActorStopped",
    "BlockingMailbox",
    "BlockingMailboxStatistics",
    "HandlerFailure",
    "LaneSpec",
    "LaneStatistics",
    "LoopAffinity",
    "Mailbox",
    "MailboxClosed",
    "MailboxStatistics",
    "OverflowPolicy",
    "Supervisor",
    "TimerHandle",
    "TimerQueue",
    "TimerStatistics",
    "UnknownLaneError",
    "WrongThreadError",
    "loop_only",
]

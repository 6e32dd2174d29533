"""The P2P actor: a thin shell that runs the sans-IO core on the loop. Loop thread.

:class:`P2PActor` is a :class:`lean_p2p.runtime.Actor`. Its messages are driver events
(:mod:`lean_p2p.net.events`) and chain requests (:mod:`lean_p2p.p2p.chain`); ``send``
them from any thread, or hand :meth:`P2PActor.handle` to a mailbox as its handler.
For each message the shell reads the loop clock once, feeds the core, then

1. hands every command to ``send_command`` (the driver's command sink),
2. hands every chain value to ``deliver`` (the node routes them to the chain),
3. re-arms its one timer for :meth:`P2PCore.next_deadline` if that moved.

The timer is one entry in the actor's :class:`~lean_p2p.runtime.TimerQueue`, which keeps
exactly one ``loop.call_at`` armed; the shell never holds more than one timer.

Death is never silent. If ``send_command`` raises (the driver is gone, its command path
closed) or the driver reports :class:`~lean_p2p.net.events.DriverStopped`, the core is
stopped first — so nothing reschedules itself, in particular no redial — and the actor
exits with :class:`DriverGone` carrying the reason; a :class:`~lean_p2p.runtime.Supervisor`
watching it surfaces that to the node. A bug (the core or ``deliver`` raising) crashes
the actor the same way, with the original exception.
"""

from __future__ import annotations

from collections.abc import Callable

from lean_p2p.net.commands import Command
from lean_p2p.net.events import (
    DialFailed,
    DriverStarted,
    DriverStopped,
    GossipAggregate,
    GossipAttestation,
    GossipBlock,
    InboundRequest,
    PeerConnected,
    PeerDisconnected,
    PublishFailed,
    RequestCompleted,
    RequestFailed,
    ResponseChunk,
)
from lean_p2p.p2p.chain import (
    FetchRoots,
    PublishAggregate,
    PublishAttestation,
    PublishBlock,
    ToChain,
)
from lean_p2p.p2p.core import P2PCore, P2PStatistics
from lean_p2p.runtime.actor import Actor
from lean_p2p.runtime.affinity import loop_only
from lean_p2p.runtime.timers import DeadlineTimer, TimerHandle

__all__ = ["DriverGone", "P2PActor"]

_EVENT_TYPES = (
    DriverStarted,
    DriverStopped,
    PeerConnected,
    PeerDisconnected,
    DialFailed,
    GossipBlock,
    GossipAttestation,
    GossipAggregate,
    InboundRequest,
    ResponseChunk,
    RequestCompleted,
    RequestFailed,
    PublishFailed,
)
_REQUEST_TYPES = (FetchRoots, PublishBlock, PublishAttestation, PublishAggregate)


class DriverGone(RuntimeError):
    """The network driver stopped or its command path closed; the P2P actor ended."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Deadline:
    """The timer message: the core's next deadline has come."""

    __slots__ = ()


_DEADLINE = _Deadline()


class P2PActor(Actor):
    """Runs a :class:`P2PCore`. Construct on the loop thread (inside the running loop)."""

    def __init__(
        self,
        core: P2PCore,
        send_command: Callable[[Command], None],
        deliver: Callable[[ToChain], None],
        *,
        name: str = "p2p",
        capacity: int = 10_000,
    ) -> None:
        super().__init__(name, capacity=capacity)
        self._core = core
        self._send_command = send_command
        self._deliver = deliver
        self._timer: DeadlineTimer[TimerHandle] = DeadlineTimer(self._schedule_deadline)
        self._ignored = 0

    # --- entry points -----------------------------------------------------------------

    def handle(self, lane: str, item: object) -> None:
        """Mailbox-handler adapter: forward ``item`` to this actor (any thread).

        Lets a node's lane mailbox (``Mailbox(LEAN_LANES, handler)``) feed the actor;
        the lanes keep their priorities, this actor keeps its own bounded lane (a full
        lane drops the item and counts it in ``mailbox_rejected``). Raises
        :class:`~lean_p2p.runtime.ActorStopped` once the actor has ended, which the
        mailbox reports as a handler failure.
        """
        self.send(item)

    def receive(self, message: object) -> object:
        now = self._loop.time()
        core = self._core
        if message is _DEADLINE:
            # Forget the handle only if this is its expiry: a newer timer armed after
            # this one fired (and was queued) stays the one and only timer.
            armed = self._timer.handle
            if armed is not None and armed.fired:
                self._timer.forget()
            core.handle_timer(now)
        elif isinstance(message, _EVENT_TYPES):
            core.handle_event(message, now)
        elif isinstance(message, _REQUEST_TYPES):
            core.handle_request(message, now)
        else:
            self._ignored += 1  # not ours: counted in core_statistics()
            return None
        self._flush()
        if core.stopped_reason is not None:
            # Raising crashes the actor: its exit carries the reason to the supervisor.
            raise DriverGone(core.stopped_reason)
        self._rearm()
        return None

    @loop_only
    def core_statistics(self) -> P2PStatistics:
        """The core's sizes and counters (plus messages this shell did not recognise)."""
        stats = self._core.statistics()
        counters = dict(stats.counters)
        if self._ignored:
            counters["shell_unknown_messages"] = self._ignored
        return P2PStatistics(
            peers=stats.peers,
            pending_roots=stats.pending_roots,
            ready_roots=stats.ready_roots,
            requests_in_flight=stats.requests_in_flight,
            deadlines=stats.deadlines,
            deadline_heap=stats.deadline_heap,
            range_sync_active=stats.range_sync_active,
            stopped=stats.stopped,
            counters=counters,
        )

    def on_stop(self) -> None:
        # Whatever ended the actor, the core must not keep state that looks alive.
        self._core.stop(f"actor {self.name!r} stopped")
        for value in self._core.drain_to_chain():
            self._deliver(value)

    # --- internals --------------------------------------------------------------------

    def _flush(self) -> None:
        core = self._core
        for command in core.drain_commands():
            try:
                self._send_command(command)
            except Exception as error:
                # The driver is gone. Stop the core before anything else can schedule
                # work (the reference design kept redialling into a closed channel).
                core.stop(f"driver command path closed: {error!r}")
                break
        for value in core.drain_to_chain():
            self._deliver(value)

    def _rearm(self) -> None:
        """Keep exactly one timer, at the core's next deadline."""
        self._timer.arm(self._core.next_deadline())

    def _schedule_deadline(self, deadline: float) -> TimerHandle:
        return self.send_after(max(0.0, deadline - self._loop.time()), _DEADLINE)

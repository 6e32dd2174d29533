"""Actors: loop-thread state behind a mailbox, with timers and supervision.

Threads: :meth:`Actor.send` and :meth:`Actor.call_threadsafe` run on ANY thread; all
else — :meth:`Actor.receive`, :meth:`Actor.call`, :meth:`Actor.send_after`,
:meth:`Actor.stop`, the :class:`Supervisor` — runs on the loop thread.

An actor owns its state; only its ``receive`` touches it, and ``receive`` runs on the
loop thread, called from the actor's :class:`~lean_p2p.runtime.mailbox.Mailbox` drain.
Messages arrive on two lanes: ``control`` (timer expiries; never dropped) and
``messages`` (``send`` and ``call``; bounded, rejects the newest when full so a flood
cannot grow memory). ``send`` and ``call`` share a lane, so a ``call`` after some
``send`` s from the same thread sees their effect.

Timers: :meth:`Actor.send_after` delivers a message to the actor itself after a delay,
through one :class:`~lean_p2p.runtime.timers.TimerQueue` (one armed ``loop.call_at``
per actor, not a task per timer); the returned handle cancels it.

Supervision: nothing dies silently. ``receive`` raising on a sent or timer message
crashes the actor: its timers and tasks are cancelled, later messages are discarded and
counted (a pending ``call`` fails with :class:`ActorStopped`), and its watchers — the
:class:`Supervisor` — get an :class:`ActorExit` with the error and the message. A task
started with :meth:`Actor.start_task` that fails or is cancelled by someone else crashes
the actor the same way; task handles are kept until they finish. An exception raised
while answering a ``call`` goes back to that caller and the actor carries on.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import enum
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from lean_p2p.runtime.affinity import LoopAffinity, loop_only
from lean_p2p.runtime.mailbox import LaneSpec, Mailbox, MailboxClosed, OverflowPolicy
from lean_p2p.runtime.timers import TimerHandle, TimerQueue

__all__ = [
    "Actor",
    "ActorExit",
    "ActorOverloaded",
    "ActorState",
    "ActorStatistics",
    "ActorStopped",
    "Supervisor",
]

logger = logging.getLogger(__name__)

CONTROL_LANE = "control"
MESSAGE_LANE = "messages"


class ActorStopped(RuntimeError):
    """The actor has stopped or crashed; the message was not handled."""


class ActorOverloaded(RuntimeError):
    """The actor's message lane is full; a ``call`` was not accepted."""


class ActorState(enum.Enum):
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"
    CRASHED = "crashed"


@dataclass(frozen=True, slots=True)
class ActorExit:
    """Why an actor ended. ``expected`` is False for a crash or an unrequested stop."""

    actor: str
    expected: bool
    error: BaseException | None = None
    #: the message being handled when it crashed, if any
    message: object = None


@dataclass(frozen=True, slots=True)
class ActorStatistics:
    name: str
    state: ActorState
    received: int
    call_errors: int
    #: messages that arrived after a crash and were dropped (calls failed)
    discarded: int
    timers_pending: int
    timers_fired: int
    timers_cancelled: int
    timer_arms: int
    tasks: int
    mailbox_rejected: int


@dataclass(frozen=True, slots=True)
class _Call:
    message: object
    reply: asyncio.Future[object] | concurrent.futures.Future[object]


@dataclass(frozen=True, slots=True)
class _TimerExpired:
    message: object


class Actor:
    """Subclass and implement :meth:`receive`. Construct on the loop thread.

    ``capacity`` bounds the ``messages`` lane; a full lane makes ``send`` return False
    (counted in ``mailbox_rejected``) and ``call`` raise :class:`ActorOverloaded`.
    """

    def __init__(self, name: str, *, capacity: int = 10_000, quantum: int = 64) -> None:
        self.name = name
        self._loop = asyncio.get_running_loop()
        self.affinity = LoopAffinity(f"actor {name!r}", f"{type(self).__name__}.send")
        self.affinity.bind()
        self._mailbox = Mailbox(
            [
                LaneSpec(CONTROL_LANE, capacity, OverflowPolicy.NEVER_DROP, quantum),
                LaneSpec(MESSAGE_LANE, capacity, OverflowPolicy.REJECT_NEWEST, quantum),
            ],
            self._dispatch,
            loop=self._loop,
        )
        self._timers = TimerQueue(self._deliver_timer, loop=self._loop)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._watchers: list[Callable[[ActorExit], None]] = []
        self._state = ActorState.RUNNING
        self._exit: ActorExit | None = None
        self._finished = self._loop.create_future()
        self._shutdown_task: asyncio.Task[None] | None = None
        self._received = 0
        self._call_errors = 0
        self._discarded = 0
        self._crash_while_stopping: tuple[BaseException, object] | None = None

    # -- to implement ------------------------------------------------------------------

    def receive(self, message: object) -> object:
        """Handle one message on the loop thread; the return value answers a ``call``."""
        raise NotImplementedError

    def on_stop(self) -> None:
        """Called once on the loop thread when the actor stops or crashes."""

    # -- any thread --------------------------------------------------------------------

    def send(self, message: object) -> bool:
        """Fire-and-forget; any thread. False if the lane is full (counted).

        Raises :class:`ActorStopped` once the actor is stopping, stopped or crashed.
        """
        try:
            return self._mailbox.put(MESSAGE_LANE, message)
        except MailboxClosed as error:
            raise ActorStopped(f"actor {self.name!r} is {self._state.value}") from error

    def call_threadsafe(self, message: object) -> concurrent.futures.Future[object]:
        """Like :meth:`call` from a foreign thread; wait on the returned future."""
        reply: concurrent.futures.Future[object] = concurrent.futures.Future()
        self._enqueue_call(_Call(message, reply))
        return reply

    @property
    def state(self) -> ActorState:
        return self._state

    @property
    def exit(self) -> ActorExit | None:
        return self._exit

    # -- loop thread -------------------------------------------------------------------

    @loop_only
    async def call(self, message: object) -> object:
        """Send ``message`` and await ``receive``'s return value (or its exception)."""
        reply: asyncio.Future[object] = self._loop.create_future()
        self._enqueue_call(_Call(message, reply))
        return await reply

    @loop_only
    def send_after(self, delay: float, message: object) -> TimerHandle:
        """Deliver ``message`` to this actor after ``delay`` seconds; cancel via the handle."""
        if self._state is not ActorState.RUNNING:
            raise ActorStopped(f"actor {self.name!r} is {self._state.value}")
        return self._timers.schedule_after(delay, message)

    @loop_only
    def start_task(self, coroutine: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """Run ``coroutine`` for this actor; its failure crashes the actor (reported)."""
        if self._state is not ActorState.RUNNING:
            coroutine.close()
            raise ActorStopped(f"actor {self.name!r} is {self._state.value}")
        task = self._loop.create_task(coroutine, name=f"{self.name}:{name}")
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    @loop_only
    def watch(self, watcher: Callable[[ActorExit], None]) -> None:
        """Call ``watcher`` (loop thread) when the actor exits; at once if it already has."""
        if self._exit is not None:
            self._loop.call_soon(watcher, self._exit)
        else:
            self._watchers.append(watcher)

    @loop_only
    async def stop(self) -> ActorExit:
        """Stop gracefully: every accepted message is handled first. Idempotent."""
        if self._state is ActorState.RUNNING:
            self._state = ActorState.STOPPING
            self._shutdown_task = self._loop.create_task(
                self._shut_down(expected=True, error=None, message=None),
                name=f"{self.name}:stop",
            )
        return await self.wait_exit()

    async def wait_exit(self) -> ActorExit:
        """Wait until the actor has stopped or crashed and everything is cleaned up."""
        exit_reason: ActorExit = await asyncio.shield(self._finished)
        return exit_reason

    @loop_only
    def statistics(self) -> ActorStatistics:
        timers = self._timers.statistics()
        mailbox = self._mailbox.statistics()
        return ActorStatistics(
            name=self.name,
            state=self._state,
            received=self._received,
            call_errors=self._call_errors,
            discarded=self._discarded,
            timers_pending=timers.pending,
            timers_fired=timers.fired,
            timers_cancelled=timers.cancelled,
            timer_arms=timers.arms,
            tasks=len(self._tasks),
            mailbox_rejected=mailbox.dropped,
        )

    # -- internals ---------------------------------------------------------------------

    def _enqueue_call(self, call: _Call) -> None:
        try:
            accepted = self._mailbox.put(MESSAGE_LANE, call)
        except MailboxClosed as error:
            raise ActorStopped(f"actor {self.name!r} is {self._state.value}") from error
        if not accepted:
            raise ActorOverloaded(f"actor {self.name!r}: message lane full")

    def _deliver_timer(self, message: object) -> None:
        self._mailbox.put(CONTROL_LANE, _TimerExpired(message))

    def _dispatch(self, _lane: str, envelope: object) -> None:
        if self._state is ActorState.CRASHED:
            self._discard(envelope)
            return
        if isinstance(envelope, _Call):
            self._answer(envelope)
            return
        message = envelope.message if isinstance(envelope, _TimerExpired) else envelope
        self._received += 1
        try:
            self.receive(message)
        except Exception as error:
            self._crash(error, message)

    def _answer(self, call: _Call) -> None:
        self._received += 1
        try:
            result = self.receive(call.message)
        except Exception as error:
            self._call_errors += 1
            _settle(call.reply, error=error)
        else:
            _settle(call.reply, result=result)

    def _discard(self, envelope: object) -> None:
        self._discarded += 1
        if isinstance(envelope, _Call):
            _settle(envelope.reply, error=ActorStopped(f"actor {self.name!r} crashed"))

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            if self._state is ActorState.RUNNING:  # not cancelled by our own shutdown
                self._crash(asyncio.CancelledError(f"task {task.get_name()} was cancelled"), None)
            return
        error = task.exception()
        if error is not None:
            self._crash(error, None)

    def _crash(self, error: BaseException, message: object) -> None:
        if self._state is ActorState.STOPPING:
            # A graceful stop is draining the mailbox: it will report this crash.
            self._state = ActorState.CRASHED
            self._crash_while_stopping = (error, message)
            logger.error("actor crashed while stopping", exc_info=error, extra={"actor": self.name})
            return
        if self._state is not ActorState.RUNNING:
            # Already crashed or stopped: still loud, never silent.
            logger.error(
                "actor failed again after exit", exc_info=error, extra={"actor": self.name}
            )
            return
        self._state = ActorState.CRASHED
        logger.error(
            "actor crashed",
            exc_info=error,
            extra={"actor": self.name, "actor_message": repr(message)[:200]},
        )
        self._shutdown_task = self._loop.create_task(
            self._shut_down(expected=False, error=error, message=message),
            name=f"{self.name}:crash",
        )

    async def _shut_down(
        self, *, expected: bool, error: BaseException | None, message: object
    ) -> None:
        try:
            await self._clean_up(expected=expected, error=error, message=message)
        except BaseException as failure:
            if not self._finished.done():
                self._finished.set_exception(failure)
            raise

    async def _clean_up(
        self, *, expected: bool, error: BaseException | None, message: object
    ) -> None:
        self._timers.close()
        # Graceful stop: receive() still handles everything accepted. After a crash the
        # dispatcher discards (and counts) instead, failing pending calls.
        await self._mailbox.aclose()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        try:
            self.on_stop()
        except Exception as stop_error:
            logger.exception("actor on_stop failed", extra={"actor": self.name})
            if error is None:
                expected, error = False, stop_error
        if self._crash_while_stopping is not None and error is None:
            expected = False
            error, message = self._crash_while_stopping
        if self._state is ActorState.STOPPING:
            self._state = ActorState.STOPPED
        exit_reason = ActorExit(self.name, expected=expected, error=error, message=message)
        self._exit = exit_reason
        for watcher in self._watchers:
            try:
                watcher(exit_reason)
            except Exception:
                logger.exception("actor exit watcher failed", extra={"actor": self.name})
        self._finished.set_result(exit_reason)


def _settle(
    reply: asyncio.Future[object] | concurrent.futures.Future[object],
    *,
    result: object = None,
    error: BaseException | None = None,
) -> None:
    # The caller may have given up (cancelled) already: that is its choice, not an error.
    if reply.done():
        return
    if error is not None:
        reply.set_exception(error)
    else:
        reply.set_result(result)


_ActorT = TypeVar("_ActorT", bound=Actor)


class Supervisor:
    """Owns actors on the loop thread and surfaces every unexpected exit.

    ``on_failure`` (loop thread) is called for each crash or unrequested stop; a node
    typically starts its own shutdown there. :meth:`wait_failure` awaits the first one.
    """

    def __init__(self, on_failure: Callable[[ActorExit], None] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        self.affinity = LoopAffinity("Supervisor", "Actor.send")
        self.affinity.bind()
        self._on_failure = on_failure
        self._actors: list[Actor] = []
        self._stopping = False
        self.exits: list[ActorExit] = []
        self._first_failure: asyncio.Future[ActorExit] = self._loop.create_future()

    @loop_only
    def watch(self, actor: _ActorT) -> _ActorT:
        self._actors.append(actor)
        actor.watch(self._on_exit)
        return actor

    @property
    def failures(self) -> list[ActorExit]:
        return [exit_reason for exit_reason in self.exits if not exit_reason.expected]

    async def wait_failure(self) -> ActorExit:
        failure: ActorExit = await asyncio.shield(self._first_failure)
        return failure

    @loop_only
    async def stop_all(self) -> list[ActorExit]:
        """Stop every watched actor (in reverse start order) and return their exits."""
        self._stopping = True
        return [await actor.stop() for actor in reversed(self._actors)]

    def _on_exit(self, exit_reason: ActorExit) -> None:
        self.exits.append(exit_reason)
        if exit_reason.expected and self._stopping:
            return
        if exit_reason.expected:
            # Stopped, but not by us: the owner did not ask for it, so report it too.
            exit_reason = ActorExit(
                exit_reason.actor, expected=False, error=None, message=exit_reason.message
            )
            self.exits[-1] = exit_reason
        if not self._first_failure.done():
            self._first_failure.set_result(exit_reason)
        if self._on_failure is not None:
            self._on_failure(exit_reason)

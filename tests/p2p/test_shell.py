"""The P2P actor shell on a real asyncio loop: commands out, one timer, death reported."""

from __future__ import annotations

import asyncio
import threading

import pytest

from lean_p2p.containers import BlocksByRootRequest, SignedBlock
from lean_p2p.net import (
    Dial,
    Direction,
    DriverStarted,
    DriverStopped,
    GossipAttestation,
    PeerConnected,
    PeerDisconnected,
    ReqRespProtocol,
    RequestCompleted,
    ResponseChunk,
    SendRequest,
)
from lean_p2p.net.commands import Command
from lean_p2p.p2p.chain import BlockReceived, FetchRoots, ToChain
from lean_p2p.p2p.core import P2PCore
from lean_p2p.p2p.shell import DriverGone, P2PActor
from lean_p2p.runtime import ActorState, Supervisor
from lean_p2p.runtime.lanes import LEAN_LANES
from lean_p2p.runtime.mailbox import Mailbox
from lean_p2p.tools.memory_chain import MemoryChain
from tests.p2p.helpers import ADDRESS_A, CHAIN, PEER_A, attestation, peer_status, root

WAIT = 10.0  # generous bound for anything that should happen "soon"


class DriverSink:
    """A fake driver command path: records commands; can be closed to raise."""

    def __init__(self) -> None:
        self.commands: list[Command] = []
        self.closed = False
        self.changed = asyncio.Event()

    def __call__(self, command: Command) -> None:
        if self.closed:
            raise ConnectionError("driver command channel closed")
        self.commands.append(command)
        self.changed.set()

    async def wait_for(self, count: int) -> list[Command]:
        async with asyncio.timeout(WAIT):
            while len(self.commands) < count:
                self.changed.clear()
                await self.changed.wait()
        return self.commands


def make_actor(
    bootnodes: tuple[str, ...] = (), chain: MemoryChain | None = None
) -> tuple[P2PActor, DriverSink, list[ToChain]]:
    sink = DriverSink()
    delivered: list[ToChain] = []
    core = P2PCore(chain or MemoryChain(CHAIN[:10]), bootnodes=bootnodes)
    return P2PActor(core, sink, delivered.append), sink, delivered


async def settle(actor: P2PActor) -> None:
    """Wait until every message sent so far was handled (a call queues behind them)."""
    await actor.call(None)


async def test_events_in_commands_out_and_chain_values_delivered() -> None:
    actor, sink, delivered = make_actor()
    actor.send(PeerConnected(PEER_A, Direction.OUTBOUND, ADDRESS_A))
    [status_request] = await sink.wait_for(1)
    assert isinstance(status_request, SendRequest)
    actor.send(FetchRoots((root(20),)))
    commands = await sink.wait_for(2)
    request = commands[1]
    assert isinstance(request, SendRequest)
    assert request.request == BlocksByRootRequest(roots=(root(20),))
    by_root = ReqRespProtocol.BLOCKS_BY_ROOT
    actor.send(ResponseChunk(PEER_A, request.request_id, by_root, CHAIN[20]))
    actor.send(RequestCompleted(PEER_A, request.request_id, by_root, 1))
    await settle(actor)
    assert [type(v) for v in delivered] == [BlockReceived]
    assert actor.core_statistics().requests_in_flight == 1  # only the Status request
    await actor.stop()


async def test_mailbox_handler_adapter_feeds_the_actor_from_a_foreign_thread() -> None:
    actor, sink, _ = make_actor()
    mailbox = Mailbox(LEAN_LANES, actor.handle)
    producer = threading.Thread(
        target=mailbox.put,
        args=("control", PeerConnected(PEER_A, Direction.INBOUND, ADDRESS_A)),
    )
    producer.start()
    producer.join()
    await sink.wait_for(1)
    await mailbox.aclose()
    await actor.stop()


async def test_one_timer_drives_retries_and_is_rearmed_only_when_deadline_moves() -> None:
    actor, sink, _ = make_actor()
    actor.send(PeerConnected(PEER_A, Direction.OUTBOUND, ADDRESS_A))
    actor.send(ResponseChunk(PEER_A, 1, ReqRespProtocol.STATUS, peer_status(9, root(9))))
    actor.send(RequestCompleted(PEER_A, 1, ReqRespProtocol.STATUS, 1))
    actor.send(FetchRoots((root(20),)))
    commands = await sink.wait_for(2)
    first = commands[1]
    assert isinstance(first, SendRequest)
    # An empty response: the core backs off; the shell's one timer sends the retry.
    actor.send(RequestCompleted(PEER_A, first.request_id, ReqRespProtocol.BLOCKS_BY_ROOT, 0))
    await settle(actor)
    assert actor.statistics().timers_pending == 1
    commands = await sink.wait_for(3)
    retry = commands[2]
    assert isinstance(retry, SendRequest) and retry.request == first.request
    assert actor.statistics().timers_pending == 1  # only ever one
    # Inputs that leave the core's next deadline where it was do not touch the timer.
    arms = actor.statistics().timer_arms
    for index in range(5):
        actor.send(GossipAttestation(PEER_A, b"%d" % index, attestation()))
    await settle(actor)
    assert actor.statistics().timer_arms == arms
    await actor.stop()


async def test_actor_lane_is_bounded_and_overload_counted() -> None:
    sink = DriverSink()
    core = P2PCore(MemoryChain(CHAIN[:3]))
    actor = P2PActor(core, sink, lambda value: None, capacity=4)
    # Nothing drains until this coroutine yields: the fifth send finds the lane full.
    accepted = [actor.send(GossipAttestation(PEER_A, b"m", attestation())) for _ in range(6)]
    assert accepted == [True] * 4 + [False] * 2
    assert actor.statistics().mailbox_rejected == 2
    await actor.stop()


async def test_driver_command_path_closed_stops_actor_and_reports_why() -> None:
    actor, sink, delivered = make_actor(bootnodes=(ADDRESS_A,))
    supervisor = Supervisor()
    supervisor.watch(actor)
    actor.send(DriverStarted("16Uiu2self", ()))
    await sink.wait_for(1)
    sink.closed = True
    # The Status request this connection triggers hits the closed channel.
    actor.send(PeerConnected(PEER_A, Direction.OUTBOUND, ADDRESS_A))
    failure = await asyncio.wait_for(supervisor.wait_failure(), WAIT)
    assert isinstance(failure.error, DriverGone)
    assert "driver command path closed" in failure.error.reason
    assert actor.state is ActorState.CRASHED
    assert actor.statistics().timers_pending == 0  # nothing left to fire: no redial loop
    assert sink.commands == [Dial(ADDRESS_A)]
    assert delivered == []


async def test_driver_stopped_event_surfaces_to_the_supervisor() -> None:
    actor, _, _ = make_actor(bootnodes=(ADDRESS_A,))
    supervisor = Supervisor()
    supervisor.watch(actor)
    actor.send(PeerDisconnected(PEER_A, "closing"))  # would arm a redial timer
    actor.send(DriverStopped("crashed", "OSError: port in use"))
    failure = await asyncio.wait_for(supervisor.wait_failure(), WAIT)
    assert isinstance(failure.error, DriverGone)
    assert failure.error.reason == "driver stopped (crashed): OSError: port in use"
    assert actor.statistics().timers_pending == 0


class ExplodingChain(MemoryChain):
    def get_block(self, root: bytes) -> SignedBlock | None:
        raise RuntimeError("store corrupted")


async def test_core_exception_crashes_actor_loudly_with_the_error() -> None:
    chain = ExplodingChain(CHAIN[:3])
    actor, _, _ = make_actor(chain=chain)
    supervisor = Supervisor()
    supervisor.watch(actor)
    actor.send(FetchRoots((root(20),)))
    failure = await asyncio.wait_for(supervisor.wait_failure(), WAIT)
    assert isinstance(failure.error, RuntimeError) and str(failure.error) == "store corrupted"
    assert failure.message == FetchRoots((root(20),))


async def test_graceful_stop_reports_pending_fetches_to_the_chain() -> None:
    actor, _, delivered = make_actor()
    actor.send(FetchRoots((root(20),)))
    exit_reason = await actor.stop()
    assert exit_reason.expected
    assert [type(v).__name__ for v in delivered] == ["FetchAbandoned"]


async def test_unknown_messages_counted_not_fatal() -> None:
    actor, _, _ = make_actor()
    actor.send("not an event")
    await settle(actor)
    assert actor.core_statistics().counters["shell_unknown_messages"] == 2  # + settle's None
    assert actor.state is ActorState.RUNNING
    await actor.stop()


@pytest.mark.parametrize("message", [None, 42])
async def test_call_with_non_p2p_message_answers_none(message: object) -> None:
    actor, _, _ = make_actor()
    assert await actor.call(message) is None
    await actor.stop()

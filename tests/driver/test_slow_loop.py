"""A stalled loop must not stall the driver: the driver keeps answering pings and
forwarding gossip on its own thread while the loop handler is blocked; events wait in
the mailbox and are all handled once the loop resumes."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest
import trio

from lean_p2p.driver.samples import sample_attestation
from lean_p2p.net.commands import Publish
from lean_p2p.net.events import Event, GossipAttestation
from lean_p2p.net.protocol import GossipTopic
from lean_p2p.runtime import LEAN_LANES, Mailbox
from tests.driver.harness import Node, connect, wait_until

pytestmark = pytest.mark.network


class LoopThread:
    """An asyncio loop on its own thread, owning a mailbox whose handler can stall."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="test-loop")
        self.thread.start()
        self.release = threading.Event()
        self.stalled = threading.Event()
        self.handled: list[Event] = []

        async def make_mailbox() -> Mailbox:  # the mailbox belongs to its loop thread
            return Mailbox(LEAN_LANES, self._handle)

        self.mailbox = asyncio.run_coroutine_threadsafe(make_mailbox(), self.loop).result(10)

    def _handle(self, lane: str, item: object) -> None:
        if isinstance(item, GossipAttestation) and not self.stalled.is_set():
            self.stalled.set()
            self.release.wait(30)  # a pathologically slow handler blocks the loop
        self.handled.append(item)  # type: ignore[arg-type]

    def emit(self, event: Event) -> None:
        lane = "attestations" if isinstance(event, GossipAttestation) else "control"
        self.mailbox.put(lane, event)

    def close(self) -> None:
        self.release.set()

        async def close_mailbox() -> None:  # aclose must be called on the loop thread
            await self.mailbox.aclose()

        asyncio.run_coroutine_threadsafe(close_mailbox(), self.loop).result(20)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(20)
        self.loop.close()


@pytest.fixture
def loop_thread() -> Iterator[LoopThread]:
    loop = LoopThread()
    yield loop
    loop.close()


def _ping(node: Node, peer_id: str) -> list[int]:
    """One libp2p ping from ``node``'s own trio thread (blocks this test thread)."""
    from libp2p.host.ping import PingService
    from libp2p.peer.id import ID

    async def ping() -> list[int]:
        rtts: list[int] = await PingService(node.driver._host).ping(ID.from_base58(peer_id))
        return rtts

    return trio.from_thread.run(ping, trio_token=node.driver._token)


def test_stalled_loop_does_not_stall_pings_or_forwarding(loop_thread: LoopThread) -> None:
    nodes: list[Node] = []
    try:
        a, c = Node().start(), Node().start()
        b = Node(emit=loop_thread.emit).start()
        nodes += [a, b, c]
        connect(a, b, mesh_peers=(1, 1))
        connect(c, b, mesh_peers=(1, 2))

        sent = [sample_attestation(index, 3) for index in range(20)]
        for attestation in sent:
            a.send(Publish(GossipTopic.ATTESTATION, attestation))
        wait_until(loop_thread.stalled.is_set, what="b's loop to stall")
        # b's loop is blocked: b's driver still forwards every message to c ...
        forwarded = [event.attestation for event in c.expect_many(GossipAttestation, 20)]
        assert forwarded == sent
        # ... and still answers pings.
        assert len(_ping(a, b.peer_id)) == 1
        assert not loop_thread.release.is_set()
        loop_thread.release.set()
        wait_until(
            lambda: sum(isinstance(e, GossipAttestation) for e in loop_thread.handled) == 20,
            what="b's loop to catch up",
        )
    finally:
        loop_thread.release.set()
        for node in nodes:
            node.stop()


def test_driver_exits_when_its_mailbox_closes(loop_thread: LoopThread) -> None:
    a = Node().start()
    b = Node(emit=loop_thread.emit).start()
    try:
        connect(a, b)
        loop_thread.release.set()
        asyncio.run_coroutine_threadsafe(_close(loop_thread.mailbox), loop_thread.loop).result(10)
        # b's next event cannot be delivered (MailboxClosed): b's driver shuts down.
        a.send(Publish(GossipTopic.ATTESTATION, sample_attestation(1, 1)))
        assert b.driver.join(20)
        assert b.stats()["driver"]["emit_failures"] >= 1
    finally:
        a.stop()
        b.stop()


async def _close(mailbox: Mailbox) -> None:
    await mailbox.aclose()

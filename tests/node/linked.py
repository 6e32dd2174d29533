"""Nodes linked in memory, for the node's tests: a fake driver each, one manual clock,
and a relay that delivers every published message to the other nodes as gossip would.
Loop thread (the tests' own)."""

from __future__ import annotations

import hashlib

from lean_p2p.containers import SignedAttestation, SignedBlock
from lean_p2p.net.commands import Publish
from lean_p2p.net.events import GossipAggregate, GossipAttestation, GossipBlock
from lean_p2p.node.node import Node
from lean_p2p.node.testing import FakeDriver, ManualClock

GENESIS_TIME = 1_000
INTERVAL = 0.8


def relay(drivers: dict[str, FakeDriver]) -> int:
    """Deliver every published message to the other nodes, as gossip would."""
    moved = 0
    for sender, driver in drivers.items():
        for command in driver.take_sent():
            if not isinstance(command, Publish):
                continue
            message_id = hashlib.sha256(command.message.encode()).digest()[:20]
            for receiver, other in drivers.items():
                if receiver == sender:
                    continue
                match command.message:
                    case SignedBlock():
                        other.inject(GossipBlock(sender, message_id, command.message))
                    case SignedAttestation():
                        other.inject(GossipAttestation(sender, message_id, command.message))
                    case _:
                        other.inject(GossipAggregate(sender, message_id, command.message))
                moved += 1
    return moved


async def run_linked(
    clock: ManualClock, nodes: list[Node], drivers: dict[str, FakeDriver], intervals: int
) -> None:
    for _ in range(intervals):
        clock.set(round(clock.now() + INTERVAL, 6))  # no float drift across many steps
        for _ in range(3):  # a message can trigger another (block -> attestation)
            for node in nodes:
                await node.wait_idle()
            if not relay(drivers):
                break
        for node in nodes:
            await node.wait_idle()

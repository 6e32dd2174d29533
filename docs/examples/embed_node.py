"""Embedding a lean node: run it on your loop, feed it from your own network thread.

Run:  .venv/bin/python docs/examples/embed_node.py            (fake network, manual clock)
      .venv/bin/python docs/examples/embed_node.py --libp2p   (py-libp2p driver, 20 s)

(``.venv/bin/python`` is where ``scripts/setup.sh`` installed lean_p2p.)

The first mode is what an embedder's tests look like: a FakeDriver stands in for the
network (your native stack would call ``node.emit_threadsafe`` from its own threads the
same way), and a ManualClock makes slots pass instantly and deterministically.
"""

from __future__ import annotations

import argparse
import asyncio
import threading
import time

from lean_p2p.net.commands import Publish
from lean_p2p.net.events import Direction, PeerConnected
from lean_p2p.node import GenesisSpec, Node, NodeConfig, NodeKey
from lean_p2p.node.testing import FakeDriver, ManualClock


def make_config(genesis_time: int) -> NodeConfig:
    return NodeConfig(
        name="embedded",
        key=NodeKey.generate(),
        genesis=GenesisSpec.placeholder(genesis_time, validator_count=4),
        validator_indices=(0, 1, 2, 3),  # this node runs every validator
        is_aggregator=True,
    )


async def with_fake_network() -> None:
    genesis_time = 1_700_000_000
    clock = ManualClock(genesis_time)
    driver = FakeDriver()
    async with Node(make_config(genesis_time), driver=driver, clock=clock) as node:
        # A foreign thread (your networking stack) reports a peer: it only enqueues.
        peer = PeerConnected("16Uiu2Example", Direction.OUTBOUND, "/ip4/127.0.0.2/udp/9000/quic-v1")
        thread = threading.Thread(target=driver.inject, args=(peer,))
        thread.start()
        thread.join()
        for step in range(1, 5 * 8 + 1):  # eight slots of five intervals
            clock.set(genesis_time + step * 0.8)
            await node.wait_idle()
        published = [c.message for c in driver.sent if isinstance(c, Publish)]
        report = node.report()
        print(
            f"head slot {report.chain.head_slot}, justified {report.chain.justified_slot}, "
            f"finalized {report.chain.finalized_slot}, peers {report.peers}, "
            f"published {len(published)} messages"
        )
    print(f"stopped: handled {report.handled} events, lost {node.report().lost_events}")


async def with_libp2p(seconds: float) -> None:
    genesis_time = int(time.time()) + 2
    async with Node(make_config(genesis_time)) as node:  # py-libp2p driver, wall clock
        await asyncio.sleep(seconds)
        report = node.report()
        print(f"head slot {report.chain.head_slot}, finalized {report.chain.finalized_slot}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--libp2p", action="store_true", help="use the real network driver")
    args = parser.parse_args()
    asyncio.run(with_libp2p(20.0) if args.libp2p else with_fake_network())


if __name__ == "__main__":
    main()

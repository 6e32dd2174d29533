"""Checkpoint sync: a node started from another node's finalized state, over its API."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
from aiohttp import web

from lean_p2p.containers import SignedBlock
from lean_p2p.net.commands import Publish
from lean_p2p.net.events import GossipBlock
from lean_p2p.node.checkpoint_sync import CheckpointSyncError, fetch_anchor
from lean_p2p.node.config import GenesisSpec, NodeConfig
from lean_p2p.node.node import Node
from lean_p2p.node.testing import FakeDriver, ManualClock
from lean_p2p.wire.keys import NodeKey

GENESIS_TIME = 1_000
INTERVAL = 0.8
GENESIS = GenesisSpec.placeholder(GENESIS_TIME, 4)


def _config(name: str, **extra: object) -> NodeConfig:
    return NodeConfig(name=name, key=NodeKey.generate(), genesis=GENESIS, **extra)  # type: ignore[arg-type]


async def _run(clock: ManualClock, node: Node, intervals: int) -> None:
    for _ in range(intervals):
        clock.set(round(clock.now() + INTERVAL, 6))
        await node.wait_idle()


@pytest.fixture
async def source() -> AsyncIterator[tuple[Node, FakeDriver, ManualClock, str]]:
    """A lone node with every validator, 12 slots in (finalized well past genesis),
    serving its API on a free port."""
    clock = ManualClock(GENESIS_TIME)
    driver = FakeDriver()
    config = _config("source", validator_indices=(0, 1, 2, 3), is_aggregator=True, api_port=0)
    async with Node(config, driver=driver, clock=clock) as node:
        await _run(clock, node, 5 * 12)
        assert node.report().chain.finalized_slot >= 5
        yield node, driver, clock, f"http://127.0.0.1:{node.api_ports[0]}"


async def test_a_node_starts_from_the_finalized_state_and_follows_on(
    source: tuple[Node, FakeDriver, ManualClock, str],
) -> None:
    node, driver, clock, url = source
    served = node.report().chain
    anchor = await asyncio.to_thread(fetch_anchor, url, GENESIS)
    assert (anchor.slot, anchor.root) == (served.finalized_slot, served.finalized_root)
    assert anchor.source == url
    follower_driver = FakeDriver()
    config = _config("follower", checkpoint_sync_url=url, api_port=0)
    follower = await Node.create(config, driver=follower_driver, clock=clock)
    async with follower:
        start = follower.chain.summary()
        assert (start.head_slot, start.head_root) == (anchor.slot, anchor.root)
        assert follower.chain.finalized().root == anchor.root
        # The blocks after the anchor, as gossip would bring them: it follows on.
        for command in driver.take_sent():
            block = command.message if isinstance(command, Publish) else None
            if isinstance(block, SignedBlock) and block.block.slot > anchor.slot:
                message_id = hashlib.sha256(block.encode()).digest()[:20]
                follower_driver.inject(GossipBlock("source", message_id, block))
        await follower.wait_idle()
        assert follower.chain.summary().head_root == node.chain.summary().head_root
        # Its own API serves its finalized checkpoint in turn: the next node can start
        # from it (the anchor itself, or later if the blocks it imported finalized more).
        own_url = f"http://127.0.0.1:{follower.api_ports[0]}"
        again = await asyncio.to_thread(fetch_anchor, own_url, GENESIS)
        assert again.root == follower.chain.finalized().root
        assert again.slot >= anchor.slot


async def test_a_node_of_another_network_is_refused(
    source: tuple[Node, FakeDriver, ManualClock, str],
) -> None:
    _, _, _, url = source
    later = GenesisSpec.placeholder(GENESIS_TIME + 1, 4)
    with pytest.raises(CheckpointSyncError, match="another network: genesis time 1000, ours 1001"):
        await asyncio.to_thread(fetch_anchor, url, later)
    more = GenesisSpec.placeholder(GENESIS_TIME, 5)
    with pytest.raises(CheckpointSyncError, match="its 4 validator keys differ"):
        await asyncio.to_thread(fetch_anchor, url, more)


@pytest.fixture
async def not_a_node() -> AsyncIterator[str]:
    """A server that answers the state path with garbage and the block path with 404."""

    async def garbage(request: web.Request) -> web.Response:
        return web.Response(body=b"\x01\x02\x03 not ssz")

    app = web.Application()
    app.router.add_get("/lean/v0/states/finalized", garbage)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_what_cannot_be_an_anchor_is_named(not_a_node: str) -> None:
    with pytest.raises(CheckpointSyncError, match=r"blocks/finalized: HTTP 404"):
        await asyncio.to_thread(fetch_anchor, not_a_node, GENESIS)
    with pytest.raises(CheckpointSyncError, match="cannot fetch"):
        await asyncio.to_thread(fetch_anchor, "http://127.0.0.1:1", GENESIS, timeout=5)


async def test_garbage_state_bytes_are_named(
    source: tuple[Node, FakeDriver, ManualClock, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from lean_p2p.node import checkpoint_sync

    _, _, _, url = source
    real_get = checkpoint_sync._get

    def corrupt_state(address: str, timeout: float) -> bytes:
        body = real_get(address, timeout)
        return body[:-7] if address.endswith("states/finalized") else body

    monkeypatch.setattr(checkpoint_sync, "_get", corrupt_state)
    with pytest.raises(CheckpointSyncError, match="states/finalized: not an SSZ state"):
        await asyncio.to_thread(fetch_anchor, url, GENESIS)


def test_a_node_with_a_url_needs_its_anchor_fetched_first() -> None:
    config = _config("eager", checkpoint_sync_url="http://127.0.0.1:1")
    with pytest.raises(ValueError, match=r"await Node.create\(config\)"):
        Node(config, driver=FakeDriver(), clock=ManualClock(GENESIS_TIME))
    assert replace(config, checkpoint_sync_url=None).checkpoint_sync_url is None

"""A load generator for ``lean-p2p profile --network``: a lean peer in its own process.

``python -m lean_p2p.tools.loadgen --genesis-time T --validators N [--own-validators K]``
runs a whole lean node (QUIC on loopback, the first K validators of an N-validator
placeholder genesis, aggregating), so the node under test follows a real chain: its
blocks, votes and aggregates. A validator proposes at the slots ``slot % N`` names, so
with K < N blocks come for the first K slots only (K = 64: 4 min 16 s of 4-second
slots), which covers a profile; votes and aggregates go on every slot. On top, at the
rate and mix the parent asks for, it publishes more gossip and sends Status requests,
like a busy network:

- attestations: the latest vote data this node signed, signed for each of the other
  N - K validators in turn, then again with another placeholder signature (one of 256),
  so every message has distinct bytes and gossipsub deduplicates none. The first
  N - K of a slot are new votes for the node under test: it validates each against its
  chain and stores it. Beyond them, a validator's second vote in a slot is what the node
  ignores early; a registry of 4,096 (the most the state holds) bounds new votes at
  about 1,000 a second, on any network;
- aggregates: the latest aggregate with a counter after its placeholder proof (still
  accepted as the mocked prover's; each is a new proof for the pool);
- blocks: the latest block with a counter after its proof: a new message, but a block
  root the node knows (it decodes and checks it, and finds it known). A real network
  carries one new block a slot, and this node publishes it;
- requests: Status, answered by the node under test.

Protocol: one JSON object per line. Out (stdout): ``{"ready": ADDRESS}`` once the node
listens, then a reply per command. In (stdin): ``{"rate": R, "mix": {...}}`` sets the
load (0 pauses it); ``{"report": true}`` answers the counts so far (sent per kind, the
node's own gossip published, publish failures, requests answered and failed, scheduled
messages skipped because no template existed yet, and how far the pacing fell behind);
``{"stop": true}`` ends.

Threads. The node, the pacing task and the command reader run on this process's loop
thread; the driver runs on its trio thread. The driver's events pass through
:class:`_Tap` on the trio thread, which keeps this generator's own request replies from
the node (they are not its requests) and counts them in plain integers, read by the
loop only for reports.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import itertools
import json
import logging
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from lean_p2p.containers import (
    SignedAggregatedAttestation,
    SignedAttestation,
    SignedBlock,
    Status,
)
from lean_p2p.driver.samples import sample_signature
from lean_p2p.net import (
    Command,
    DriverStarted,
    Event,
    GossipTopic,
    PeerConnected,
    PeerDisconnected,
    Publish,
    PublishFailed,
    RequestCompleted,
    RequestFailed,
    ResponseChunk,
    SendRequest,
)
from lean_p2p.node.config import GenesisSpec, NodeConfig
from lean_p2p.node.node import Node

__all__ = ["KINDS", "main"]

KINDS = ("attestation", "aggregate", "block", "request")
_SIGNATURES = 256
#: request ids from here up are this generator's own (the node's P2P core counts from 1)
_OWN_REQUESTS = 1 << 48
_TICK_S = 0.001
_SENDER_COUNTERS = ("published", "publish_no_peers", "queue_full_drops")
_REQUEST_COUNTERS = ("requests_sent", "requests_completed", "requests_failed")
_FLOOD_TOPICS = tuple(
    topic.topic_string()
    for topic in (GossipTopic.ATTESTATION, GossipTopic.AGGREGATION, GossipTopic.BLOCK)
)
#: at most this many messages in one tick: a stalled loop does not catch up in a burst
_BURST = 200
logger = logging.getLogger(__name__)


class _Tap:
    """The node's driver, with this generator's own traffic taken out (loop + trio)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.address: asyncio.Future[str] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.templates: dict[str, Any] = {}
        # Trio thread writes, loop reads (plain ints: a report may be an event stale).
        self.answered = 0
        self.failed = 0
        self.publish_failed = 0
        self.peer: str | None = None  # the node under test, once connected
        self.own_published = 0  # loop thread: the node's own gossip, not the flood's
        self.last_failure = ""  # the latest failed request's reason
        self.disconnects = 0  # times the node under test went away

    # loop thread
    def start(self, emit: Callable[[Event], None]) -> None:
        self._loop = asyncio.get_running_loop()
        self.address = self._loop.create_future()

        def tapped(event: Event) -> None:  # the trio thread
            match event:
                case DriverStarted():
                    self._loop.call_soon_threadsafe(self._listening, event)  # type: ignore[union-attr]
                case RequestCompleted() | RequestFailed() | ResponseChunk() if (
                    event.request_id >= _OWN_REQUESTS
                ):
                    if isinstance(event, RequestCompleted):
                        self.answered += 1
                    elif isinstance(event, RequestFailed):
                        self.failed += 1
                        self.last_failure = f"{event.failure.value}: {event.message}"
                    return
                case PublishFailed():
                    self.publish_failed += 1
                case PeerConnected():
                    self.peer = event.peer_id
                case PeerDisconnected() if event.peer_id == self.peer:
                    self.peer = None
                    self.disconnects += 1
            emit(event)

        self._inner.start(tapped)

    def _listening(self, event: DriverStarted) -> None:
        if self.address is not None and not self.address.done() and event.listen_addresses:
            self.address.set_result(event.listen_addresses[0])

    def send(self, command: Command) -> None:
        if isinstance(command, Publish):
            # The node's own messages: the latest of each kind is the flood's template.
            kind = _kind_of(command.message)
            if kind is not None:
                self.templates[kind] = command.message
            self.own_published += 1
        self._inner.send(command)

    def send_past_templates(self, command: Command) -> None:
        """Send without taking a published message as a template (the flood's own)."""
        self._inner.send(command)

    async def stop(self) -> None:
        await self._inner.stop()

    def statistics(self) -> dict[str, object]:
        stats: dict[str, object] = self._inner.statistics()
        return stats


def _kind_of(message: object) -> str | None:
    match message:
        case SignedAttestation():
            return "attestation"
        case SignedAggregatedAttestation():
            return "aggregate"
        case SignedBlock():
            return "block"
    return None


class Flood:
    """Paced publishing on the loop thread."""

    def __init__(self, node: Node, tap: _Tap, voters: range) -> None:
        self._node = node
        self._tap = tap
        self._voters = voters
        self._signatures = [sample_signature(seed) for seed in range(_SIGNATURES)]
        self.rate = 0.0
        self._schedule: list[str] = []
        self._cycle: itertools.cycle[str] = itertools.cycle(["attestation"])
        self._paced_from = 0.0
        self._paced = 0
        self.sent: Counter[str] = Counter()
        self.not_ready = 0
        self.behind_max = 0
        self._sequence = itertools.count()

    def set_load(self, rate: float, mix: Mapping[str, int]) -> None:
        kinds = [kind for kind in KINDS for _ in range(int(mix.get(kind, 0)))]
        self._cycle = itertools.cycle(kinds or ["attestation"])
        self.rate = max(0.0, rate)
        self._paced_from = time.perf_counter()
        self._paced = 0

    async def run(self) -> None:
        while True:
            await asyncio.sleep(_TICK_S)
            if self.rate <= 0:
                continue
            due = int((time.perf_counter() - self._paced_from) * self.rate) - self._paced
            self.behind_max = max(self.behind_max, due - _BURST)
            for _ in range(min(due, _BURST)):
                self._send(next(self._cycle))
            self._paced += due  # what could not be sent in time is skipped, not queued

    def _send(self, kind: str) -> None:
        n = next(self._sequence)
        driver = self._tap
        if kind == "request":
            peer = driver.peer
            if peer is None:
                self.not_ready += 1
                return
            chain = self._node.chain
            status = Status(finalized=chain.finalized(), head=chain.head())
            driver.send(SendRequest(peer, _OWN_REQUESTS + n, status))
            self.sent[kind] += 1
            return
        template = driver.templates.get(kind)
        if template is None:
            self.not_ready += 1
            return
        counter = n.to_bytes(8, "little")
        match template:
            case SignedAttestation():
                message: Any = dataclasses.replace(
                    template,
                    validator_index=self._voters[n % len(self._voters)],
                    signature=self._signatures[(n // len(self._voters)) % _SIGNATURES],
                )
                topic = GossipTopic.ATTESTATION
            case SignedAggregatedAttestation():
                proof = dataclasses.replace(template.proof, proof=template.proof.proof + counter)
                message = dataclasses.replace(template, proof=proof)
                topic = GossipTopic.AGGREGATION
            case _:
                assert isinstance(template, SignedBlock)
                proof_ = dataclasses.replace(template.proof, proof=template.proof.proof + counter)
                message = dataclasses.replace(template, proof=proof_)
                topic = GossipTopic.BLOCK
        driver.send_past_templates(Publish(topic, message))
        self.sent[kind] += 1

    def report(self) -> dict[str, Any]:
        statistics = self._tap.statistics()
        gossip: Any = statistics.get("gossipsub", {})
        requests: Any = statistics.get("reqresp", {})
        topics: Any = statistics.get("topics", {})
        return {
            # where published gossip may have stopped on this side
            "gossipsub": {key: gossip.get(key, 0) for key in _SENDER_COUNTERS},
            "reqresp": {key: requests.get(key, 0) for key in _REQUEST_COUNTERS},
            "sent": dict(self.sent),
            "not_ready": self.not_ready,
            "behind_max": self.behind_max,
            "publish_failed": self._tap.publish_failed,
            "own_published": self._tap.own_published,
            "answered": self._tap.answered,
            "request_failed": self._tap.failed,
            "connected": self._tap.peer is not None,
            "disconnects": self._tap.disconnects,
            # the fewest mesh peers over the topics the flood publishes on: 0 means a
            # publish there reaches nobody until the mesh forms again
            "mesh": min(
                (topics.get(topic, (0, 0))[1] for topic in _FLOOD_TOPICS),
                default=0,
            ),
            "last_request_failure": self._tap.last_failure,
            "templates": sorted(self._tap.templates),
        }


def _reply(document: Mapping[str, Any]) -> None:
    sys.stdout.write(json.dumps(document) + "\n")
    sys.stdout.flush()


async def _serve(args: argparse.Namespace) -> None:
    from lean_p2p.node.libp2p_driver import LibP2PDriver
    from lean_p2p.wire.keys import NodeKey

    genesis = GenesisSpec.placeholder(args.genesis_time, args.validators)
    config = NodeConfig(
        name="load",
        key=NodeKey.generate(),
        genesis=genesis,
        validator_indices=tuple(range(args.own_validators)),
        is_aggregator=True,
        gc_freeze=True,
    )
    tap = _Tap(LibP2PDriver(config))
    node = Node(config, driver=tap, serve_api=False)
    await node.start()
    assert tap.address is not None
    _reply({"ready": await tap.address})
    # The flood votes for the validators this node does not run: their first vote in a
    # slot is a new vote for the node under test, not a second one it ignores.
    others = range(args.own_validators, args.validators)
    flood = Flood(node, tap, others or range(args.validators))
    pacing = asyncio.create_task(flood.run())
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    try:
        while line := await reader.readline():
            command = json.loads(line)
            if "rate" in command:
                flood.set_load(float(command["rate"]), command.get("mix") or {})
                _reply({"rate": flood.rate})
            elif command.get("report"):
                _reply(flood.report())
            elif command.get("stop"):
                break
    finally:
        pacing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pacing
        await node.stop()
        _reply({"stopped": True})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lean_p2p.tools.loadgen")
    parser.add_argument("--genesis-time", type=int, required=True)
    parser.add_argument("--validators", type=int, required=True)
    parser.add_argument("--own-validators", type=int, default=64)
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="uvloop")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR, stream=sys.stderr)
    from lean_p2p.tools.running import run_loop

    try:
        run_loop(lambda _stop: _serve(args), use_uvloop=args.loop == "uvloop")
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())

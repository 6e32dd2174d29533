"""A driver in this process against a driver in another process, over loopback QUIC."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from lean_p2p.driver import codec
from lean_p2p.driver.samples import sample_attestation, sample_status
from lean_p2p.net import (
    GossipAttestation,
    GossipTopic,
    PeerConnected,
    PeerDisconnected,
    Publish,
    RequestCompleted,
    ResponseChunk,
    SendRequest,
)
from lean_p2p.wire.gossip import gossip_message_id
from lean_p2p.wire.keys import NodeKey
from tests.driver.harness import Node, connect_to_address, meshed, wait_until

pytestmark = pytest.mark.network

REPOSITORY = Path(__file__).resolve().parents[2]


class PeerProcess:
    """A driver in a child process (see peer_process.py); its address once ready."""

    def __init__(self, *arguments: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.driver.peer_process", *arguments],
            cwd=REPOSITORY,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert line, "peer process exited before it was ready"
        self.address: str = json.loads(line)["address"]

    def stop(self) -> int:
        assert self.process.stdin is not None and self.process.stdout is not None
        try:
            self.process.stdin.close()
            return self.process.wait(30)
        finally:
            self.kill()

    def kill(self) -> None:
        """SIGKILL: the peer vanishes without closing its connections."""
        assert self.process.stdin is not None and self.process.stdout is not None
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.process.stdin.close()
        self.process.stdout.close()


@pytest.fixture
def peer_process() -> Iterator[str]:
    peer = PeerProcess()
    try:
        yield peer.address
    finally:
        assert peer.stop() == 0


def test_gossip_and_status_across_processes(peer_process: str) -> None:
    node = Node().start()
    try:
        peer_id = connect_to_address(node, peer_process)
        node.send(SendRequest(peer_id, 1, sample_status(1)))
        assert node.expect(ResponseChunk).payload == sample_status(42)
        assert node.expect(RequestCompleted).chunks == 1

        sent = [sample_attestation(index, 5) for index in range(10)]
        for attestation in sent:
            node.send(Publish(GossipTopic.ATTESTATION, attestation))
        echoes = node.expect_many(GossipAttestation, len(sent))
        assert [e.attestation.validator_index for e in echoes] == [i + 1000 for i in range(10)]
        topic = GossipTopic.ATTESTATION.topic_string()
        for echo in echoes:
            assert echo.peer_id == peer_id
            assert echo.message_id == gossip_message_id(
                topic, codec.encode_gossip(echo.attestation)
            )
    finally:
        node.stop()


def _echo_works(node: Node, peer_id: str, index: int) -> None:
    node.send(Publish(GossipTopic.ATTESTATION, sample_attestation(index, 7)))
    echo = node.expect(GossipAttestation, lambda e: e.attestation.validator_index == index + 1000)
    assert echo.peer_id == peer_id


def test_peer_restarting_with_the_same_identity_rejoins_gossip() -> None:
    # The restarted peer dials in while our old connection to it is dead but far from
    # its idle timeout: the driver must notice and move gossip to the new connection.
    node = Node().start()
    key = NodeKey.generate()
    peer_id = key.peer_id
    first = PeerProcess(key.to_hex(), node.address)
    second: PeerProcess | None = None
    try:
        node.expect(PeerConnected, lambda e: e.peer_id == peer_id)
        wait_until(lambda: meshed(node, 1), what="mesh with the first process")
        _echo_works(node, peer_id, 1)
        first.kill()
        second = PeerProcess(key.to_hex(), node.address)
        node.expect(PeerDisconnected, lambda e: e.peer_id == peer_id)
        node.expect(PeerConnected, lambda e: e.peer_id == peer_id)
        wait_until(lambda: meshed(node, 1), what="mesh with the restarted process")
        _echo_works(node, peer_id, 2)
        node.send(SendRequest(peer_id, 9, sample_status(1)))
        assert node.expect(RequestCompleted).chunks == 1
    finally:
        first.kill()
        if second is not None:
            assert second.stop() == 0
        node.stop()


def test_peer_that_vanishes_is_detected_before_the_idle_timeout() -> None:
    # SIGKILL sends no CONNECTION_CLOSE: only the liveness probes can tell (the QUIC
    # idle timeout is 60 s, far beyond this test's wait).
    node = Node(liveness_interval=0.5, liveness_timeout=1.0).start()
    peer = PeerProcess(NodeKey.generate().to_hex(), node.address)
    try:
        connected = node.expect(PeerConnected)
        peer.kill()
        gone = node.expect(PeerDisconnected, lambda e: e.peer_id == connected.peer_id, 10)
        assert gone.reason
        assert node.stats()["connected_peers"] == 0
    finally:
        peer.kill()
        node.stop()

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
    Publish,
    RequestCompleted,
    ResponseChunk,
    SendRequest,
)
from lean_p2p.wire.gossip import gossip_message_id
from tests.driver.harness import Node, connect_to_address

pytestmark = pytest.mark.network

REPOSITORY = Path(__file__).resolve().parents[2]


@pytest.fixture
def peer_process() -> Iterator[str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.driver.peer_process"],
        cwd=REPOSITORY,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line, "peer process exited before it was ready"
        yield json.loads(line)["address"]
    finally:
        assert process.stdin is not None and process.stdout is not None
        process.stdin.close()
        try:
            assert process.wait(30) == 0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(10)
            process.stdout.close()


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

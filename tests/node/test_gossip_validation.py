"""Validation before forwarding, end to end: two real nodes on loopback QUIC and a hostile
peer that floods the first with votes no honest node accepts. Nothing the loop does not
accept is forwarded to the second node, the invalid ones count against the sender until
it is graylisted, and every message is accounted for."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from typing import Any

import pytest

from lean_p2p.containers import AttestationData, Checkpoint, SignedAttestation
from lean_p2p.containers.xmss import signature_from_parts
from lean_p2p.net import Dial, GossipTopic, PeerConnected, Publish
from lean_p2p.node.config import GenesisSpec, NodeConfig
from lean_p2p.node.node import Node
from lean_p2p.tools.devnet import free_ports
from lean_p2p.wire.keys import NodeKey
from tests.driver.harness import Node as BareDriver

pytestmark = pytest.mark.network

UNKNOWN_VOTES = 60
FORGED_VOTES = 40


async def _settle(condition: Callable[[], bool], what: str) -> None:
    """Yield to the loop (the nodes run on it) until ``condition`` holds (30 s at most)."""
    deadline = time.monotonic() + 30.0
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def _gossip(node: Node) -> dict[str, Any]:
    gossip: dict[str, Any] = node.report().driver["gossipsub"]
    return gossip


def _meshed(node: Node, peers: int) -> bool:
    topics = node.report().driver.get("topics", {})
    return bool(topics.get(GossipTopic.ATTESTATION.topic_string()) == (peers, peers))


async def test_a_flood_of_votes_the_loop_refuses_is_never_forwarded() -> None:
    # Genesis an hour away: no duties, so every vote on the wire is the attacker's.
    genesis = GenesisSpec.placeholder(int(time.time()) + 3600, 4)
    quic = free_ports(2, socket.SOCK_DGRAM)
    first_key, second_key = NodeKey.generate(), NodeKey.generate()
    first_address = f"/ip4/127.0.0.1/udp/{quic[0]}/quic-v1/p2p/{first_key.peer_id}"
    first = Node(NodeConfig("first", first_key, genesis, quic_port=quic[0]), serve_api=False)
    second = Node(
        NodeConfig("second", second_key, genesis, quic_port=quic[1], bootnodes=(first_address,)),
        serve_api=False,
    )
    attacker = BareDriver()
    async with first, second:
        attacker.start()
        try:
            attacker.send(Dial(first_address))
            await _settle(lambda: _meshed(first, 2), "the first node's mesh of two")
            assert any(isinstance(e, PeerConnected) for e in attacker.drain())
            genesis_root = first.chain.anchor_root
            origin = Checkpoint(root=genesis_root, slot=0)
            # Votes for blocks nobody has (IGNORE: another node may have them), then
            # votes for genesis that prove themselves invalid (REJECT, penalized): by
            # validators 0-3 with signatures that cannot be signatures, and by validators
            # the registry does not have.
            for index in range(UNKNOWN_VOTES):
                nowhere = Checkpoint(root=(index + 1).to_bytes(32, "little"), slot=0)
                data = AttestationData(slot=0, head=nowhere, target=nowhere, source=nowhere)
                vote = SignedAttestation(index % 4, data, signature_from_parts(rho=b"\x01"))
                attacker.send(Publish(GossipTopic.ATTESTATION, vote))
            data = AttestationData(slot=0, head=origin, target=origin, source=origin)
            for index in range(FORGED_VOTES):
                vote = SignedAttestation(index, data, signature_from_parts())
                attacker.send(Publish(GossipTopic.ATTESTATION, vote))
            sent = UNKNOWN_VOTES + FORGED_VOTES

            def accounted() -> bool:
                # judged by the loop, or timed out waiting (a loaded machine), or dropped
                # unread once the attacker was graylisted
                gossip = _gossip(first)
                judged: int = gossip["validation_ignored"] + gossip["validation_rejected"]
                judged += gossip["validation_timeouts"] + gossip["graylisted_dropped"]
                return judged == sent

            await _settle(accounted, "every flooded vote judged or dropped")
            gossip = _gossip(first)
            assert gossip["forwarded"] == 0
            assert gossip["validation_accepted"] == 0
            assert gossip["validations_pending"] == 0
            # 16 rejections graylist the attacker; what arrives after that is dropped
            # unread (how many were held for the loop by then depends on timing)
            assert gossip["peers_graylisted"] == 1
            assert gossip["peers_penalized"] == gossip["validation_rejected"] >= 16
            read = FORGED_VOTES - gossip["graylisted_dropped"]
            await _settle(
                lambda: first.chain.counters["attestations_rejected"] == UNKNOWN_VOTES + read,
                "the chain's verdict on every vote it was given",
            )
            counters = first.chain.counters
            assert counters["attestation_rejected_unknown_source_block"] == UNKNOWN_VOTES
            assert counters["attestation_rejected_invalid_signature"] == 4
            assert counters["attestation_rejected_validator_not_in_state"] == read - 4
            # the second node, whose only peer is the first, heard none of it
            assert second.report().p2p_counters.get("gossip_attestations", 0) == 0
        finally:
            attacker.driver.stop()
            attacker.driver.join(20)
    assert first.report().lost_events == second.report().lost_events == 0

"""Spectest plug-in: ``gossipsub_handler`` vectors, run against our gossipsub router.

Runs on the spectest's thread, inside its own short ``trio.run``: the router is built
for the driver's trio thread, so each vector gets a trio run of its own.

A vector gives a router's mesh parameters, an initial state (our subscriptions; peers
with their subscriptions, backoffs, IDONTWANT ids and whether an outbound stream is
open; meshes; seen ids; cached messages), ONE inbound RPC from a peer at time ``now``,
and what must follow: the RPCs sent to each peer and the meshes of the subscribed
topics. We seed :class:`~lean_p2p.driver.gossipsub.LeanGossipsub` with that state, feed
the RPC as protobuf bytes through :meth:`~LeanGossipsub.handle_rpc` (the code the
inbound stream calls) with the clock at ``now``, and read what the router queued for
each peer.

Semantics taken from leanSpec's filler where the JSON leaves them open:

- ``sentRpcs`` is in send order, stably sorted by recipient name (the filler's order
  between mesh peers is set-driven); each entry is one RPC, and lists only the groups
  that carry something.
- ``meshAfter`` holds one sorted list per subscribed topic (empty when no mesh).
- a peer without an outbound stream receives nothing in leanSpec (its send is skipped);
  our router keeps such RPCs queued until the stream opens, so they are not counted as
  sent, and every RPC we queued to a peer with a stream must be expected.

Every RPC we send is compared on every field, including groups the vectors cannot
express (IHAVE, a message's from/seqno/signature/key): producing one is a failure.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import trio

from lean_p2p.driver import codec
from lean_p2p.driver.gossipsub import PROTOCOL_IDS, GossipParams, LeanGossipsub, Verdict
from lean_p2p.tools.spectest.formats._gossipsub_rpc import decode_rpc, normalize_json, rpc_from_json
from lean_p2p.tools.spectest.formats._json import from_hex
from lean_p2p.tools.spectest.runner import VectorFailure
from lean_p2p.wire.errors import WireError
from lean_p2p.wire.varint import decode_varint

__all__ = ["FORMAT", "run_vector"]

FORMAT: Final = "gossipsub_handler"

#: Every leanSpec peer speaks gossipsub v1.2 (IDONTWANT).
_PROTOCOL: Final = PROTOCOL_IDS[0]


def run_vector(test_id: str, fixture: Mapping[str, Any]) -> None:
    sent, mesh_after = trio.run(_run_handler, fixture)
    expected = fixture["expected"]
    _compare_sent(sent, expected["sentRpcs"])
    if mesh_after != expected["meshAfter"]:
        raise VectorFailure(f"mesh after {mesh_after}, expected {expected['meshAfter']}")


async def _run_handler(
    fixture: Mapping[str, Any],
) -> tuple[list[dict[str, Any]], dict[str, list[str]]]:
    now = float(fixture["now"])
    router = LeanGossipsub(
        codec.gossip_message_id, _accept_all, _params(fixture["params"]), clock=lambda: now
    )
    state = fixture["initialState"]
    # Subscriptions are seeded directly, not through subscribe(): that would announce
    # them and graft peers, and the vector gives the meshes explicitly.
    for topic in state["subscriptions"]:
        router.subscriptions.add(topic)
        router.mesh[topic] = set()
    queues: dict[str, trio.MemoryReceiveChannel[bytes]] = {}
    with_stream: dict[str, bool] = {}
    for name, peer_state in state["peers"].items():
        queues[name] = router.open_peer_queue(name, _PROTOCOL)
        with_stream[name] = bool(peer_state["withStream"])
        peer = router.peers[name]
        peer.topics.update(peer_state["subscriptions"])
        peer.dont_want.update(from_hex(mid) for mid in peer_state["dontWantIds"])
        for topic, until in peer_state["backoff"].items():
            router.set_backoff(name, topic, float(until))
    for topic, members in state["meshes"].items():
        router.mesh.setdefault(topic, set()).update(members)
    for message_id in state["seenMessageIds"]:
        router.seen.add(from_hex(message_id), now)
    for cached in state["cachedMessages"]:
        router.mcache.put(from_hex(cached["messageId"]), cached["topic"], from_hex(cached["data"]))
    # open_peer_queue announced our subscriptions to every peer: seeding, not handling.
    for queue in queues.values():
        _drain(queue)

    event = fixture["event"]
    sender = event["fromPeer"]
    if sender not in router.peers:
        raise VectorFailure(f"the event comes from {sender!r}, not a registered peer")
    router.handle_rpc(sender, _event_rpc(event), _PROTOCOL)

    sent = [
        _sent_json(name, frame)
        for name in sorted(queues)  # the filler's stable sort by recipient name
        if with_stream[name]
        for frame in _drain(queues[name])
    ]
    mesh_after = {topic: sorted(router.mesh.get(topic, ())) for topic in router.subscriptions}
    # meshAfter lists subscribed topics only; a mesh the event created for any other
    # topic (a GRAFT for a topic we do not join) would otherwise go unnoticed.
    created = set(router.mesh) - router.subscriptions - set(state["meshes"])
    if created:
        raise VectorFailure(f"meshes created for unsubscribed topics {sorted(created)}")
    return sent, mesh_after


def _params(params: Mapping[str, Any]) -> GossipParams:
    # graft_reject_capacity gives D=4 above D_high=3 to put a 3-peer mesh at capacity.
    # GossipParams refuses D > D_high (the heartbeat would graft to D and prune right
    # back); D is read only by the heartbeat, subscribe and fanout, never while
    # handling an RPC, so lowering it to D_high changes nothing a vector checks.
    degree_high = int(params["dHigh"])
    return GossipParams(
        mesh_degree=min(int(params["d"]), degree_high),
        mesh_degree_low=int(params["dLow"]),
        mesh_degree_high=degree_high,
        gossip_degree=int(params["dLazy"]),
    )


def _accept_all(peer_id: str, topic: str, message_id: bytes, prepared: object) -> Verdict:
    # leanSpec's handler delivers every new message on a subscribed topic (validation
    # happens above it), so the vectors' messages are all valid.
    return Verdict.ACCEPT


def _event_rpc(event: Mapping[str, Any]) -> bytes:
    """The inbound RPC as protobuf bytes, built from the vector's JSON."""
    publish = [
        {"topic": message.get("topic", ""), "data": message.get("data") or "0x"}
        for message in event.get("publish", [])
    ]
    control = {
        group: event.get(group, []) for group in ("graft", "prune", "ihave", "iwant", "idontwant")
    }
    normal = normalize_json({"publish": publish, "control": control})
    body: bytes = rpc_from_json(normal).SerializeToString()
    return body


def _drain(queue: trio.MemoryReceiveChannel[bytes]) -> list[bytes]:
    frames: list[bytes] = []
    while True:
        try:
            frames.append(queue.receive_nowait())
        except trio.WouldBlock:
            return frames


def _sent_json(name: str, frame: bytes) -> dict[str, Any]:
    """One queued frame in the vector's ``sentRpcs`` shape (camelCase, 0x hex,
    groups present only when non-empty), plus any group the vector cannot express."""
    try:
        length, offset = decode_varint(frame)
    except WireError as error:
        raise VectorFailure(f"frame to {name} has a bad length prefix: {error}") from None
    if len(frame) != offset + length:
        raise VectorFailure(
            f"frame to {name}: prefix says {length} bytes, body has {len(frame) - offset}"
        )
    rpc = decode_rpc(frame[offset:])
    out: dict[str, Any] = {"toPeer": name}
    if rpc.subscriptions:
        out["subscriptions"] = [
            {"subscribe": s.subscribe, "topicId": s.topicid} for s in rpc.subscriptions
        ]
    if rpc.publish:
        out["publish"] = [_message_json(message) for message in rpc.publish]
    control = _control_json(rpc.control)
    if control:
        out["control"] = control
    return out


def _message_json(message: Any) -> dict[str, Any]:
    topics = list(message.topicIDs)
    out: dict[str, Any] = {
        "topic": topics[0] if len(topics) == 1 else topics,
        "data": _hex(message.data),
    }
    for name in ("from_id", "seqno", "signature", "key"):
        if message.HasField(name):  # anonymous messages carry none of these
            out[name] = _hex(getattr(message, name))
    return out


def _control_json(control: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if control.graft:
        out["graft"] = [{"topicId": graft.topicID} for graft in control.graft]
    if control.prune:
        out["prune"] = [
            {"topicId": prune.topicID, "backoff": prune.backoff} for prune in control.prune
        ]
        if any(prune.peers for prune in control.prune):
            out["prunePeers"] = [[_hex(p.peerID) for p in prune.peers] for prune in control.prune]
    if control.ihave:
        out["ihave"] = [
            {"topicId": ihave.topicID, "messageIds": [_hex(m) for m in ihave.messageIDs]}
            for ihave in control.ihave
        ]
    for group in ("iwant", "idontwant"):
        entries = getattr(control, group)
        if entries:
            out[group] = [{"messageIds": [_hex(m) for m in entry.messageIDs]} for entry in entries]
    return out


def _hex(raw: bytes) -> str:
    return "0x" + raw.hex()


def _compare_sent(sent: list[dict[str, Any]], expected: list[Mapping[str, Any]]) -> None:
    if len(sent) != len(expected):
        raise VectorFailure(f"sent {len(sent)} RPCs, expected {len(expected)}: {sent}")
    for index, (ours, theirs) in enumerate(zip(sent, expected, strict=True)):
        if ours != theirs:
            raise VectorFailure(f"RPC {index}: sent {ours}, expected {theirs}")

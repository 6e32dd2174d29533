"""Gossipsub RPC vectors, checked against py-libp2p's protobuf schema. Any thread.

lean_p2p does not frame gossipsub RPCs itself: the py-libp2p host does, with the
``rpc_pb2`` messages used here. These checks make sure that stack reads leanSpec's
bytes as the vector describes them, and that what it writes reads back the same.
Protobuf leaves the encoding of default-valued fields open (leanSpec omits an empty
topic in GRAFT but writes it in a subscription), so equality is on decoded content.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lean_p2p.tools.spectest.formats._json import from_hex
from lean_p2p.wire.errors import WireError

__all__ = ["decode_rpc", "normalize_json", "normalize_message", "rpc_from_json"]

Normal = dict[str, Any]


def _rpc_module() -> Any:
    from libp2p.pubsub.pb import rpc_pb2

    return rpc_pb2


def decode_rpc(raw: bytes) -> Any:
    """Parse an RPC; malformed protobuf raises :class:`WireError`."""
    from google.protobuf.message import DecodeError

    try:
        return _rpc_module().RPC.FromString(raw)
    except DecodeError as error:
        raise WireError(f"malformed gossipsub RPC: {error}") from None


def normalize_json(codec: Mapping[str, Any]) -> Normal:
    control = codec.get("control") or {}
    return {
        "subscriptions": [
            (bool(s.get("subscribe", False)), s.get("topicId", ""))
            for s in codec.get("subscriptions", [])
        ],
        "publish": [
            (
                from_hex(m.get("fromPeer", "0x")),
                from_hex(m.get("data", "0x")),
                from_hex(m.get("seqno", "0x")),
                [m["topic"]] if m.get("topic") else [],
                from_hex(m.get("signature", "0x")),
                from_hex(m.get("key", "0x")),
            )
            for m in codec.get("publish", [])
        ],
        "ihave": [
            (i.get("topicId", ""), [from_hex(x) for x in i.get("messageIds", [])])
            for i in control.get("ihave", [])
        ],
        "iwant": [[from_hex(x) for x in i.get("messageIds", [])] for i in control.get("iwant", [])],
        "graft": [g.get("topicId", "") for g in control.get("graft", [])],
        "prune": [
            (p.get("topicId", ""), int(p.get("backoff", 0))) for p in control.get("prune", [])
        ],
        "idontwant": [
            [from_hex(x) for x in i.get("messageIds", [])] for i in control.get("idontwant", [])
        ],
    }


def normalize_message(rpc: Any) -> Normal:
    control = rpc.control
    return {
        "subscriptions": [(s.subscribe, s.topicid) for s in rpc.subscriptions],
        "publish": [
            (m.from_id, m.data, m.seqno, [t for t in m.topicIDs if t], m.signature, m.key)
            for m in rpc.publish
        ],
        "ihave": [(i.topicID, list(i.messageIDs)) for i in control.ihave],
        "iwant": [list(i.messageIDs) for i in control.iwant],
        "graft": [g.topicID for g in control.graft],
        "prune": [(p.topicID, p.backoff) for p in control.prune],
        "idontwant": [list(i.messageIDs) for i in control.idontwant],
    }


def rpc_from_json(normal: Normal) -> Any:
    """An ``rpc_pb2.RPC`` holding the normalized content."""
    pb = _rpc_module()
    rpc = pb.RPC()
    for subscribe, topic in normal["subscriptions"]:
        rpc.subscriptions.add(subscribe=subscribe, topicid=topic)
    for from_id, data, seqno, topics, signature, key in normal["publish"]:
        message = rpc.publish.add(topicIDs=topics)
        for name, value in (
            ("from_id", from_id),
            ("data", data),
            ("seqno", seqno),
            ("signature", signature),
            ("key", key),
        ):
            if value:
                setattr(message, name, value)
    control = pb.ControlMessage()
    for topic, ids in normal["ihave"]:
        control.ihave.add(topicID=topic, messageIDs=ids)
    for ids in normal["iwant"]:
        control.iwant.add(messageIDs=ids)
    for topic in normal["graft"]:
        control.graft.add(topicID=topic)
    for topic, backoff in normal["prune"]:
        control.prune.add(topicID=topic, backoff=backoff)
    for ids in normal["idontwant"]:
        control.idontwant.add(messageIDs=ids)
    if control.ListFields():
        rpc.control.CopyFrom(control)
    return rpc

"""Gossipsub RPC frames: length-prefixed protobuf on a stream. Trio driver thread.

Encoding (:func:`encode_rpc`: anonymous messages, data and topic only), reading with the
size limit checked from the declared length before the body is buffered
(:class:`FrameReader`), and coalescing queued frames into one stream write
(:func:`coalesce`). The router (:mod:`lean_p2p.driver.gossipsub`) decides what to send.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import trio

from lean_p2p.driver.streams import read_chunk

__all__ = [
    "COALESCE_BYTES",
    "FrameReader",
    "FrameTooLarge",
    "coalesce",
    "decode_uvarint",
    "encode_rpc",
    "encode_uvarint",
]

COALESCE_BYTES = 256 * 1024


def coalesce(first: bytes, frames: trio.MemoryReceiveChannel[bytes]) -> bytes:
    """``first`` plus whatever frames are already queued, up to ~256 KiB: one stream
    write (and one QUIC transmit) per batch instead of per message under load."""
    if len(first) >= COALESCE_BYTES:
        return first
    batch = [first]
    size = len(first)
    while size < COALESCE_BYTES:
        try:
            frame = frames.receive_nowait()
        except (trio.WouldBlock, trio.EndOfChannel):
            break
        batch.append(frame)
        size += len(frame)
    return first if len(batch) == 1 else b"".join(batch)


class FrameTooLarge(Exception):
    pass


class FrameReader:
    """Reads uvarint-length-prefixed frames from a stream, refusing oversized ones
    from the declared length, before buffering the body."""

    __slots__ = ("_buffer", "_limit", "_stream")

    def __init__(self, stream: Any, limit: int) -> None:
        self._stream = stream
        self._limit = limit
        self._buffer = bytearray()

    async def next_frame(self) -> bytes | None:
        while True:
            length, header = decode_uvarint(self._buffer)
            if header:
                if length > self._limit:
                    raise FrameTooLarge(length)
                if len(self._buffer) >= header + length:
                    frame = bytes(self._buffer[header : header + length])
                    del self._buffer[: header + length]
                    return frame
            elif len(self._buffer) > 10:
                raise FrameTooLarge(-1)  # a varint longer than 10 bytes
            chunk = await read_chunk(self._stream)
            if chunk is None:
                return None
            self._buffer += chunk


def decode_uvarint(buffer: bytearray) -> tuple[int, int]:
    """(value, bytes used); bytes used is 0 while the varint is incomplete."""
    value = 0
    for index, byte in enumerate(buffer[:10]):
        value |= (byte & 0x7F) << (7 * index)
        if not byte & 0x80:
            return value, index + 1
    return 0, 0


def encode_uvarint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def encode_rpc(
    *,
    subscriptions: Iterable[tuple[str, bool]] = (),
    publish: Iterable[tuple[str, bytes]] = (),
    ihave: Iterable[tuple[str, list[bytes]]] = (),
    iwant: list[bytes] | None = None,
    graft: list[str] | None = None,
    prune: list[str] | None = None,
    backoff: int = 0,
    idontwant: list[bytes] | None = None,
) -> bytes:
    """Encode one length-prefixed RPC frame. Messages are anonymous: data and topic
    only (no from, seqno, signature or key)."""
    from libp2p.pubsub.pb import rpc_pb2

    rpc = rpc_pb2.RPC()
    for topic, subscribe in subscriptions:
        rpc.subscriptions.add(subscribe=subscribe, topicid=topic)
    for topic, data in publish:
        rpc.publish.add(data=data, topicIDs=[topic])
    control = rpc.control
    for topic, ids in ihave:
        control.ihave.add(topicID=topic, messageIDs=ids)
    if iwant:
        control.iwant.add(messageIDs=iwant)
    for topic in graft or ():
        control.graft.add(topicID=topic)
    for topic in prune or ():
        control.prune.add(topicID=topic, backoff=backoff)
    if idontwant:
        control.idontwant.add(messageIDs=idontwant)
    if not (control.ihave or control.iwant or control.graft or control.prune or control.idontwant):
        rpc.ClearField("control")
    body = rpc.SerializeToString()
    return encode_uvarint(len(body)) + body

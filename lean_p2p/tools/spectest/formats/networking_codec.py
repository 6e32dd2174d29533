"""The ``networking_codec`` fixture format. Any thread.

Each fixture names a ``codec.kind``; encode vectors give an input and the expected
``output``; ``decode_failure`` vectors give ``rawBytes`` that the named decoder must
refuse with the vector's ``rejectionReason``.

Snappy compression is not canonical, so where a vector shows compressed bytes we
require what interoperability needs: our decoder reads the vector's bytes back to the
input exactly; our encoder's bytes decode to the input (with our decoder and, for
frames, with cramjam's independent frame decoder); and our frames have the same
chunking (chunk types and CRCs) and the same uncompressed prefixes (varint lengths,
result codes) as the vector's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

import cramjam

from lean_p2p.tools.spectest.formats import _gossipsub_rpc as gossipsub_rpc
from lean_p2p.tools.spectest.formats._json import from_hex
from lean_p2p.tools.spectest.runner import VectorFailure, VectorSkipped
from lean_p2p.wire.enr import EnrRecord
from lean_p2p.wire.errors import WireError
from lean_p2p.wire.gossip import Topic, TopicKind, compute_message_id
from lean_p2p.wire.peer_id import KeyType, encode_public_key, peer_id
from lean_p2p.wire.reqresp import (
    ResponseChunk,
    decode_request,
    decode_response,
    encode_request,
    encode_response_chunk,
)
from lean_p2p.wire.snappy import (
    STREAM_IDENTIFIER,
    compress_block,
    compress_frames,
    decompress_block,
    decompress_frames,
)
from lean_p2p.wire.varint import decode_varint, encode_varint

__all__ = ["FORMAT", "KINDS", "run_vector"]

FORMAT: Final = "networking_codec"

Codec = Mapping[str, Any]


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise VectorFailure(message)


def _frame_chunks(stream: bytes) -> list[tuple[int, bytes]]:
    """(chunk type, stored CRC) of every chunk after the identifier."""
    chunks = []
    position = len(STREAM_IDENTIFIER)
    while position < len(stream):
        length = int.from_bytes(stream[position + 1 : position + 4], "little")
        chunks.append((stream[position], stream[position + 4 : position + 8]))
        position += 4 + length
    return chunks


def _same_frames(ours: bytes, theirs: bytes, data: bytes) -> None:
    """``ours`` and ``theirs`` are frame streams of ``data`` with the same chunking."""
    _expect(decompress_frames(theirs) == data, "our decoder misreads the vector's frames")
    _expect(decompress_frames(ours) == data, "our frames do not decode to the input")
    _expect(bytes(cramjam.snappy.decompress(ours)) == data, "cramjam rejects our frames")
    _expect(ours.startswith(STREAM_IDENTIFIER), "our frames lack the stream identifier")
    _expect(
        _frame_chunks(ours) == _frame_chunks(theirs),
        f"chunking differs: {_frame_chunks(ours)} vs {_frame_chunks(theirs)}",
    )


def _varint(codec: Codec, output: Codec) -> None:
    value = int(codec["value"])
    expected = from_hex(output["encoded"])
    _expect(encode_varint(value) == expected, f"encode {value} != {expected.hex()}")
    _expect(len(expected) == output["byteLength"], "byteLength")
    _expect(decode_varint(expected) == (value, len(expected)), "decode")


def _snappy_block(codec: Codec, output: Codec) -> None:
    data = from_hex(codec["data"])
    theirs = from_hex(output["compressed"])
    _expect(len(data) == output["uncompressedLength"], "uncompressedLength")
    _expect(len(theirs) == output["compressedLength"], "compressedLength")
    _expect(decompress_block(theirs) == data, "our decoder misreads the vector's block")
    ours = compress_block(data)
    _expect(decompress_block(ours) == data, "our block does not decode to the input")
    _expect(decode_varint(ours)[0] == decode_varint(theirs)[0], "length preambles differ")


def _snappy_frame(codec: Codec, output: Codec) -> None:
    data = from_hex(codec["data"])
    theirs = from_hex(output["framed"])
    _expect(len(data) == output["uncompressedLength"], "uncompressedLength")
    _expect(len(theirs) == output["framedLength"], "framedLength")
    _same_frames(compress_frames(data), theirs, data)


def _split_prefix(stream: bytes, with_code: bool) -> tuple[bytes, bytes]:
    """(code and varint prefix, frames) of a single request or response chunk."""
    start = 1 if with_code else 0
    _, end = decode_varint(stream, start)
    return stream[:end], stream[end:]


def _reqresp_request(codec: Codec, output: Codec) -> None:
    ssz = from_hex(codec["sszData"])
    theirs = from_hex(output["encoded"])
    ours = encode_request(ssz)
    _expect(decode_request(theirs) == ssz, "our decoder misreads the vector's request")
    _expect(decode_request(ours) == ssz, "our request does not decode")
    our_prefix, our_frames = _split_prefix(ours, with_code=False)
    their_prefix, their_frames = _split_prefix(theirs, with_code=False)
    _expect(our_prefix == their_prefix, f"prefix {our_prefix.hex()} != {their_prefix.hex()}")
    _same_frames(our_frames, their_frames, ssz)


def _response_chunk(code: int, ssz: bytes, theirs: bytes) -> None:
    ours = encode_response_chunk(code, ssz)
    our_prefix, our_frames = _split_prefix(ours, with_code=True)
    their_prefix, their_frames = _split_prefix(theirs, with_code=True)
    _expect(our_prefix == their_prefix, f"prefix {our_prefix.hex()} != {their_prefix.hex()}")
    _same_frames(our_frames, their_frames, ssz)


def _reqresp_response(codec: Codec, output: Codec) -> None:
    code = int(codec["responseCode"])
    ssz = from_hex(codec["sszData"])
    theirs = from_hex(output["encoded"])
    expected = [ResponseChunk(code, ssz)]
    _expect(decode_response(theirs) == expected, "our decoder misreads the vector's chunk")
    _response_chunk(code, ssz, theirs)


def _reqresp_response_stream(codec: Codec, output: Codec) -> None:
    expected = [
        ResponseChunk(int(chunk["responseCode"]), from_hex(chunk["sszData"]))
        for chunk in codec["chunks"]
    ]
    theirs = from_hex(output["encoded"])
    _expect(len(expected) == output["chunkCount"], "chunkCount")
    decoded = decode_response(theirs)
    _expect(decoded == expected, f"decoded {decoded} != {expected}")
    # Every split of the stream into two feeds decodes to the same chunks.
    ours = b"".join(encode_response_chunk(c.raw_code, c.payload) for c in expected)
    _expect(decode_response(ours) == expected, "our stream does not decode")


def _gossip_message_id(codec: Codec, output: Codec) -> None:
    message_id = compute_message_id(
        from_hex(codec["domain"]), from_hex(codec["topic"]), from_hex(codec["data"])
    )
    expected = from_hex(output["messageId"])
    _expect(message_id == expected, f"{message_id.hex()} != {expected.hex()}")


def _gossip_topic(codec: Codec, output: Codec) -> None:
    kind = TopicKind(codec["topicKind"])
    subnet = codec.get("subnetId")
    topic = Topic(kind, codec["networkName"], None if subnet is None else int(subnet))
    _expect(str(topic) == output["topicString"], f"{topic} != {output['topicString']}")
    parsed = Topic.parse(output["topicString"])
    _expect(parsed == topic, f"parsed {parsed} != {topic}")
    if "expectedNetworkName" in codec:
        valid = parsed.matches_network(codec["expectedNetworkName"])
        _expect(valid == output["forkValid"], f"forkValid {valid} != {output['forkValid']}")


def _gossipsub_rpc(codec: Codec, output: Codec) -> None:
    expected = gossipsub_rpc.normalize_json(codec)
    theirs = from_hex(output["encoded"])
    decoded = gossipsub_rpc.normalize_message(gossipsub_rpc.decode_rpc(theirs))
    _expect(decoded == expected, f"decoded {decoded} != {expected}")
    ours = gossipsub_rpc.rpc_from_json(expected).SerializeToString()
    reread = gossipsub_rpc.normalize_message(gossipsub_rpc.decode_rpc(ours))
    _expect(reread == expected, f"our encoding reads back as {reread}")


def _peer_id(codec: Codec, output: Codec) -> None:
    key_type = KeyType[codec["keyType"].upper()]
    public_key = from_hex(codec["publicKey"])
    encoded = encode_public_key(key_type, public_key)
    _expect(encoded == from_hex(output["protobufEncoded"]), f"protobuf {encoded.hex()}")
    text = peer_id(key_type, public_key)
    _expect(text == output["peerId"], f"peer id {text} != {output['peerId']}")


def _enr(codec: Codec, output: Codec) -> None:
    record = EnrRecord.from_text(codec["enrString"])
    raw = from_hex(output["rlp"])
    _expect(record.encode() == raw, "re-encoded RLP differs")
    _expect(EnrRecord.decode(raw) == record, "decoding the RLP gives another record")
    eth2 = record.eth2
    node_id = record.node_id()
    found: dict[str, Any] = {
        "seq": record.seq,
        "identityScheme": record.identity_scheme,
        "nodeId": None if node_id is None else "0x" + node_id.hex(),
        "publicKey": None if record.public_key is None else "0x" + record.public_key.hex(),
        "ip4": record.ip4,
        "udpPort": record.udp_port,
        "quicPort": record.quic_port,
        "multiaddr": record.multiaddr,
        "eth2Data": None
        if eth2 is None
        else {
            "forkDigest": "0x" + eth2.fork_digest.hex(),
            "nextForkVersion": "0x" + eth2.next_fork_version.hex(),
            "nextForkEpoch": eth2.next_fork_epoch,
        },
        "attestationSubnets": record.attestation_subnets,
        "isAggregator": record.is_aggregator,
        "signatureValid": record.signature_valid(),
        "isValid": record.is_valid(),
    }
    for key, value in found.items():
        _expect(output.get(key) == value, f"{key}: {value!r} != {output.get(key)!r}")
    unchecked = set(output) - set(found) - {"rlp"}
    _expect(not unchecked, f"unchecked outputs {sorted(unchecked)}")


_DECODERS: Final[dict[str, Callable[[bytes], object]]] = {
    "varint": decode_varint,
    "snappy_frame": decompress_frames,
    "snappy_block": decompress_block,
    "reqresp_request": decode_request,
    "reqresp_response": decode_response,
    "gossipsub_rpc": gossipsub_rpc.decode_rpc,
    "enr": EnrRecord.decode,
}


def _decode_failure(codec: Codec, reason: str) -> None:
    decoder = _DECODERS.get(codec["decoder"])
    if decoder is None:
        raise VectorSkipped(f"no decoder {codec['decoder']!r}")
    raw = from_hex(codec["rawBytes"])
    try:
        decoded = decoder(raw)
    except WireError as error:
        _expect(error.reason.value == reason, f"rejected as {error.reason}, want {reason}")
        return
    raise VectorFailure(f"{codec['decoder']} accepted {raw.hex()[:80]}: {decoded!r}"[:300])


KINDS: Final[dict[str, Callable[[Codec, Codec], None]]] = {
    "varint": _varint,
    "snappy_block": _snappy_block,
    "snappy_frame": _snappy_frame,
    "reqresp_request": _reqresp_request,
    "reqresp_response": _reqresp_response,
    "reqresp_response_stream": _reqresp_response_stream,
    "gossip_message_id": _gossip_message_id,
    "gossip_topic": _gossip_topic,
    "gossipsub_rpc": _gossipsub_rpc,
    "peer_id": _peer_id,
    "enr": _enr,
}


def run_vector(test_id: str, fixture: Mapping[str, Any]) -> None:
    codec = fixture["codec"]
    kind = codec["kind"]
    reason = fixture.get("rejectionReason")
    if kind == "decode_failure":
        if reason is None:
            raise VectorFailure("a decode_failure vector without rejectionReason")
        _decode_failure(codec, reason)
        return
    handler = KINDS.get(kind)
    if handler is None:
        raise VectorSkipped(f"unsupported codec kind {kind!r}")
    handler(codec, fixture["output"])

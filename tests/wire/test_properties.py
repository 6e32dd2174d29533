"""Property tests: decoders raise only WireError; any split of a stream decodes the same."""

from __future__ import annotations

import base64
import contextlib
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lean_p2p.wire.enr import EnrRecord, rlp_encode
from lean_p2p.wire.errors import WireError
from lean_p2p.wire.gossip import Topic
from lean_p2p.wire.reqresp import (
    RequestDecoder,
    ResponseChunk,
    ResponseDecoder,
    decode_request,
    decode_response,
    encode_request,
    encode_response_chunk,
)
from lean_p2p.wire.snappy import (
    compress_block,
    compress_frames,
    decompress_block,
    decompress_frames,
)
from lean_p2p.wire.varint import decode_varint

PROPERTY_SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

DECODERS: dict[str, Callable[[bytes], object]] = {
    "varint": decode_varint,
    "snappy_block": decompress_block,
    "snappy_frames": decompress_frames,
    "request": decode_request,
    "response": decode_response,
    "topic": lambda raw: Topic.parse(raw.decode("utf-8", errors="replace")),
    "enr": EnrRecord.decode,
    "enr_text": lambda raw: EnrRecord.from_text("enr:" + raw.decode("latin-1")),
}

ENCODERS: dict[str, Callable[[bytes], bytes]] = {
    "varint": lambda payload: encode_request(payload)[:3],
    "snappy_block": compress_block,
    "snappy_frames": compress_frames,
    "request": encode_request,
    "response": lambda payload: encode_response_chunk(0, payload) * 2,
    "topic": lambda payload: b"/leanconsensus/12345678/block/ssz_snappy",
    "enr": lambda payload: rlp_encode([b"\x00" * 64, b"\x01", b"id", b"v4", b"ip", payload[:4]]),
    "enr_text": lambda payload: base64.urlsafe_b64encode(
        rlp_encode([b"\x00" * 64, b"\x01", b"id", b"v4", b"udp", payload[:2]])
    ),
}

PAYLOADS = st.one_of(st.binary(max_size=300), st.binary(max_size=8).map(lambda b: b * 50))
CHUNKS = st.lists(
    st.builds(ResponseChunk, st.integers(0, 255), st.binary(max_size=300)),
    max_size=5,
).map(
    lambda chunks: [
        c if c.raw_code == 0 else ResponseChunk(c.raw_code, c.payload[:256]) for c in chunks
    ]
)


def _only_wire_errors(decoder: Callable[[bytes], object], raw: bytes) -> None:
    with contextlib.suppress(WireError):
        decoder(raw)


@pytest.mark.parametrize("name", DECODERS)
@PROPERTY_SETTINGS
@given(raw=st.binary(max_size=400))
def test_random_bytes_raise_only_wire_errors(name: str, raw: bytes) -> None:
    _only_wire_errors(DECODERS[name], raw)


@pytest.mark.parametrize("name", DECODERS)
@PROPERTY_SETTINGS
@given(payload=PAYLOADS, data=st.data())
def test_mutated_encodings_raise_only_wire_errors(
    name: str, payload: bytes, data: st.DataObject
) -> None:
    encoded = bytearray(ENCODERS[name](payload))
    for _ in range(data.draw(st.integers(1, 3))):
        if encoded and data.draw(st.booleans()):
            index = data.draw(st.integers(0, len(encoded) - 1))
            encoded[index] ^= data.draw(st.integers(1, 255))
        else:
            index = data.draw(st.integers(0, len(encoded)))
            del encoded[index : index + data.draw(st.integers(0, 5))]
    _only_wire_errors(DECODERS[name], bytes(encoded))


@PROPERTY_SETTINGS
@given(chunks=CHUNKS, data=st.data())
def test_any_split_of_a_response_stream_decodes_to_the_same_chunks(
    chunks: list[ResponseChunk], data: st.DataObject
) -> None:
    stream = b"".join(encode_response_chunk(c.raw_code, c.payload) for c in chunks)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    decoder = ResponseDecoder()
    decoded: list[ResponseChunk] = []
    for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        decoded += decoder.feed(stream[start:end])
    decoder.finish()
    assert decoded == chunks


@PROPERTY_SETTINGS
@given(payload=PAYLOADS, data=st.data())
def test_any_split_of_a_request_decodes_to_the_same_bytes(
    payload: bytes, data: st.DataObject
) -> None:
    stream = encode_request(payload)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=6)))
    decoder = RequestDecoder()
    for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        decoder.feed(stream[start:end])
    assert decoder.finish() == payload


@PROPERTY_SETTINGS
@given(payload=PAYLOADS)
def test_snappy_round_trips(payload: bytes) -> None:
    assert decompress_block(compress_block(payload)) == payload
    assert decompress_frames(compress_frames(payload)) == payload

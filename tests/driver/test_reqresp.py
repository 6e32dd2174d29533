"""Req/resp against misbehaving peers on real loopback streams: a responder that sends
oversized, corrupt or too many chunks, a requester that sends garbage, and limits."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
import trio

from lean_p2p.driver import codec
from lean_p2p.driver.reqresp import ReqRespLimits, read_some
from lean_p2p.driver.samples import sample_status
from lean_p2p.net.commands import SendRequest
from lean_p2p.net.events import InboundRequest, RequestFailed, RequestFailure
from lean_p2p.net.protocol import ReqRespProtocol, ResultCode
from lean_p2p.wire.varint import encode_varint
from tests.driver.harness import Node, connect, wait_until

pytestmark = pytest.mark.network


@pytest.fixture
def nodes() -> Iterator[list[Node]]:
    started: list[Node] = []
    yield started
    for node in started:
        node.stop()


def _pair(nodes: list[Node], **responder_config: Any) -> tuple[Node, Node]:
    a, b = Node().start(), Node(**responder_config).start()
    nodes += [a, b]
    connect(a, b)
    return a, b


def _on_driver_thread(node: Node, function: Callable[[], Awaitable[Any]]) -> Any:
    """Run ``function`` on the node's own trio thread (test-only access)."""
    return trio.from_thread.run(function, trio_token=node.driver._token)


def _replace_status_handler(node: Node, handler: Callable[[Any], Awaitable[None]]) -> None:
    from libp2p.custom_types import TProtocol

    async def install() -> None:
        node.driver._host.set_stream_handler(TProtocol(ReqRespProtocol.STATUS.value), handler)

    _on_driver_thread(node, install)


async def _drain_request(stream: Any) -> None:
    while await read_some(stream) is not None:
        pass


@pytest.mark.parametrize(
    ("response", "reason"),
    [
        (b"\x00" + encode_varint(10 * 1024 * 1024 + 1), "over the limit"),
        (b"\x00" + encode_varint(80) + b"\xff\x06\x00\x00garbage!", "snappy"),
        (codec.encode_success_chunk(sample_status(1)) * 2, "more than 1"),
    ],
    ids=["oversized", "corrupt", "too-many-chunks"],
)
def test_bad_responses_fail_the_request_as_protocol_errors(
    nodes: list[Node], response: bytes, reason: str
) -> None:
    a, b = _pair(nodes)

    async def misbehave(stream: Any) -> None:
        await _drain_request(stream)
        await stream.write(response)
        await stream.close()

    _replace_status_handler(b, misbehave)
    a.send(SendRequest(b.peer_id, 1, sample_status()))
    failed = a.expect(RequestFailed)
    assert failed.failure is RequestFailure.PROTOCOL_ERROR
    assert reason in failed.message
    assert a.stats()["reqresp"]["outbound_in_flight"] == 0


def test_empty_status_response_is_a_protocol_error(nodes: list[Node]) -> None:
    a, b = _pair(nodes)

    async def say_nothing(stream: Any) -> None:
        await _drain_request(stream)
        await stream.close()

    _replace_status_handler(b, say_nothing)
    a.send(SendRequest(b.peer_id, 2, sample_status()))
    failed = a.expect(RequestFailed)
    assert (failed.failure, failed.message) == (
        RequestFailure.PROTOCOL_ERROR,
        "empty status response",
    )


def _raw_exchange(node: Node, peer_id: str, payload: bytes) -> bytes:
    """Open a Status stream from ``node`` and send raw bytes; return the raw answer."""
    from libp2p.custom_types import TProtocol
    from libp2p.peer.id import ID

    async def exchange() -> bytes:
        stream = await node.driver._host.new_stream(
            ID.from_base58(peer_id), [TProtocol(ReqRespProtocol.STATUS.value)]
        )
        await stream.write(payload)
        await stream.close_write()
        answer = b""
        while (chunk := await read_some(stream)) is not None:
            answer += chunk
        return answer

    answer: bytes = _on_driver_thread(node, exchange)
    return answer


def test_garbage_request_is_answered_with_invalid_request(nodes: list[Node]) -> None:
    a, b = _pair(nodes)
    answer = _raw_exchange(a, b.peer_id, b"\x50not a framed status request")
    [(code, message)] = codec.ResponseChunkDecoder(ReqRespProtocol.STATUS).feed(answer)
    assert code is ResultCode.INVALID_REQUEST
    assert message
    assert b.stats()["reqresp"]["inbound_invalid"] == 1
    assert not any(isinstance(event, InboundRequest) for event in b.drain())


def test_inbound_requests_beyond_the_limit_get_resource_unavailable(nodes: list[Node]) -> None:
    a, b = _pair(nodes, reqresp=ReqRespLimits(max_inbound_in_flight=1))
    a.send(SendRequest(b.peer_id, 1, sample_status()))
    b.expect(InboundRequest)  # left unanswered: the one slot stays taken
    a.send(SendRequest(b.peer_id, 2, sample_status()))
    failed = a.expect(RequestFailed, lambda e: e.request_id == 2)
    assert failed.failure is RequestFailure.ERROR_RESPONSE
    assert failed.result_code is ResultCode.RESOURCE_UNAVAILABLE
    assert b.stats()["reqresp"]["inbound_rejected_busy"] == 1


def test_duplicate_request_id_in_flight_is_refused_and_counted(nodes: list[Node]) -> None:
    a, b = _pair(nodes)
    a.send(SendRequest(b.peer_id, 5, sample_status()))
    a.send(SendRequest(b.peer_id, 5, sample_status()))
    b.expect(InboundRequest)
    wait_until(lambda: a.stats()["reqresp"]["duplicate_request_ids"] == 1)
    assert a.stats()["reqresp"]["requests_sent"] == 1

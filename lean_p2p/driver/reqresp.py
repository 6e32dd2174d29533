"""Lean req/resp on raw py-libp2p streams, as requester and responder. Trio driver thread.

Framing (see :mod:`lean_p2p.driver.codec`): the requester writes one request and
half-closes; the responder writes zero or more ``result ‖ varint ‖ snappy-frames``
chunks and closes. py-libp2p's request/response helper frames differently (no result
byte, no half-close), so streams are driven directly here.

Requester contract: every ``SendRequest`` ends in exactly one terminal event —
:class:`RequestCompleted` or :class:`RequestFailed` — after any number of
:class:`ResponseChunk` events; :meth:`ReqResp.fail_all` settles whatever is still in
flight when the driver stops, so nothing is left pending.

Responder contract: an :class:`InboundRequest` carries a driver-allocated
``request_id``; the loop answers with ``SendResponseChunk`` commands and exactly one
``SendResponseEnd`` or ``SendResponseError``. After that the id is spent: later
commands for it are refused, counted and logged. A loop that does not answer within
``response_timeout`` gets the stream reset (counted).
"""

from __future__ import annotations

import enum
import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import trio

from lean_p2p.driver import codec
from lean_p2p.driver.streams import reset_quietly
from lean_p2p.net.commands import (
    SendRequest,
    SendResponseChunk,
    SendResponseEnd,
    SendResponseError,
)
from lean_p2p.net.events import (
    Event,
    InboundRequest,
    RequestCompleted,
    RequestFailed,
    RequestFailure,
    ResponseChunk,
)
from lean_p2p.net.protocol import ReqRespProtocol, ResultCode
from lean_p2p.wire.errors import WireError

__all__ = ["ReqResp", "ReqRespLimits", "ReqRespStatistics", "StreamResetError", "read_some"]

logger = logging.getLogger(__name__)

_READ_SIZE = 256 * 1024
_MAX_REQUEST_STREAM_BYTES = 64 * 1024  # the largest request (1024 roots) is ~33 KB


class StreamResetError(Exception):
    """The peer reset the stream or the connection went away mid-exchange."""


@dataclass(frozen=True, slots=True)
class ReqRespLimits:
    request_timeout: float = 10.0  # whole outbound exchange, open to last chunk
    request_read_timeout: float = 5.0  # inbound: peer must finish its request
    response_timeout: float = 15.0  # inbound: the loop must finish its answer
    max_inbound_in_flight: int = 256
    max_response_chunks: int = 1024 + 1


@dataclass(slots=True)
class ReqRespStatistics:
    requests_sent: int = 0
    requests_completed: int = 0
    requests_failed: int = 0
    duplicate_request_ids: int = 0
    inbound_requests: int = 0
    inbound_rejected_busy: int = 0
    inbound_invalid: int = 0
    inbound_read_timeouts: int = 0
    responses_timed_out: int = 0
    response_commands_unknown_id: int = 0
    response_chunks_oversized: int = 0
    response_chunks_overflow: int = 0
    response_write_errors: int = 0


@dataclass(slots=True)
class _Outbound:
    peer_id: str
    protocol: ReqRespProtocol
    scope: trio.CancelScope
    settled: bool = False


@dataclass(slots=True)
class _Inbound:
    peer_id: str
    send: trio.MemorySendChannel[bytes | None]  # None: end of response
    closed: bool = False
    chunks: int = field(default=0)


async def read_some(stream: Any) -> bytes | None:
    """Next bytes from a stream; None at a clean end; :class:`StreamResetError` if reset.

    py-libp2p's QUIC stream reports reading a stream whose both sides are closed as a
    *reset*; the underlying QUIC stream knows whether a RESET frame really arrived, so
    ask it. A closed connection is a reset too (the peer went away mid-exchange).
    """
    from libp2p.network.stream.exceptions import StreamEOF, StreamError

    from lean_p2p.driver.quic import take_data_left_at_end

    try:
        data: bytes = await stream.read(_READ_SIZE)
    except StreamEOF:
        data = take_data_left_at_end(stream)  # py-libp2p may report the end early
    except StreamError as error:
        muxed = getattr(stream, "muxed_stream", None)
        is_reset = getattr(muxed, "is_reset", None)
        if not callable(is_reset) or is_reset() or _connection_closed(stream):
            raise StreamResetError(repr(error)) from None
        data = take_data_left_at_end(stream)
    except Exception as error:  # connection-level failures surface as other types
        raise StreamResetError(repr(error)) from None
    if data:
        return data
    if _connection_closed(stream):
        raise StreamResetError("connection closed")
    return None


def _connection_closed(stream: Any) -> bool:
    connection = getattr(stream, "muxed_conn", None)
    is_closed = getattr(connection, "is_closed", None)
    if callable(is_closed):
        return bool(is_closed())
    return bool(is_closed)


class ReqResp:
    """Requester and responder for the three lean protocols on one host."""

    def __init__(
        self,
        emit: Callable[[Event], None],
        limits: ReqRespLimits | None = None,
    ) -> None:
        self._emit = emit
        self.limits = limits or ReqRespLimits()
        self.statistics = ReqRespStatistics()
        self._host: Any = None
        self._outbound: dict[int, _Outbound] = {}
        self._inbound: dict[int, _Inbound] = {}
        self._inbound_ids = itertools.count(1)
        self._stopping = False

    @property
    def in_flight(self) -> tuple[int, int]:
        """(outbound requests, inbound requests) not yet settled."""
        return len(self._outbound), len(self._inbound)

    def attach(self, host: Any) -> None:
        from libp2p.custom_types import TProtocol

        self._host = host
        for protocol in ReqRespProtocol:
            host.set_stream_handler(TProtocol(protocol.value), self._handle_inbound)

    # ---------------------------------------------------------------- requester

    def start_request(self, nursery: trio.Nursery, command: SendRequest) -> None:
        protocol = codec.request_protocol(command.request)
        if command.request_id in self._outbound:
            self.statistics.duplicate_request_ids += 1
            logger.warning(
                "duplicate request id refused",
                extra={"request_id": command.request_id, "peer": command.peer_id},
            )
            return
        entry = _Outbound(command.peer_id, protocol, trio.CancelScope())
        self._outbound[command.request_id] = entry
        self.statistics.requests_sent += 1
        nursery.start_soon(self._run_request, command, entry)

    def refuse_request(self, command: SendRequest, reason: str) -> None:
        """Settle a request that arrived while the driver is stopping."""
        self.statistics.requests_failed += 1
        self._emit(
            RequestFailed(
                command.peer_id,
                command.request_id,
                codec.request_protocol(command.request),
                RequestFailure.DRIVER_STOPPED,
                None,
                reason,
            )
        )

    async def _run_request(self, command: SendRequest, entry: _Outbound) -> None:
        request_id = command.request_id
        failure: RequestFailed | None = None
        chunks = 0
        with entry.scope:
            try:
                with trio.fail_after(self.limits.request_timeout):
                    chunks = await self._exchange(command, entry)
            except trio.TooSlowError:
                failure = self._failure(entry, request_id, RequestFailure.TIMEOUT, "timed out")
            except _RequestError as error:
                failure = self._failure(
                    entry, request_id, error.failure, error.message, error.result_code
                )
        if failure is None and not entry.scope.cancelled_caught:
            self._settle(
                request_id,
                RequestCompleted(command.peer_id, request_id, entry.protocol, chunks),
            )
        elif failure is not None:
            self._settle(request_id, failure)
        # Cancelled by fail_all: it has already settled this request.

    def _failure(
        self,
        entry: _Outbound,
        request_id: int,
        failure: RequestFailure,
        message: str,
        result_code: ResultCode | None = None,
    ) -> RequestFailed:
        return RequestFailed(
            entry.peer_id, request_id, entry.protocol, failure, result_code, message
        )

    def _settle(self, request_id: int, event: RequestCompleted | RequestFailed) -> None:
        entry = self._outbound.pop(request_id, None)
        if entry is None or entry.settled:
            return
        entry.settled = True
        if isinstance(event, RequestCompleted):
            self.statistics.requests_completed += 1
        else:
            self.statistics.requests_failed += 1
        self._emit(event)

    async def _exchange(self, command: SendRequest, entry: _Outbound) -> int:
        from libp2p.custom_types import TProtocol
        from libp2p.peer.id import ID

        try:
            peer = ID.from_base58(command.peer_id)
        except Exception:
            raise _RequestError(RequestFailure.UNKNOWN_PEER, "malformed peer id") from None
        if not self._host.get_network().get_connections(peer):
            raise _RequestError(RequestFailure.UNKNOWN_PEER, "not connected")
        try:
            stream = await self._host.new_stream(peer, [TProtocol(entry.protocol.value)])
        except Exception as error:
            raise _RequestError(RequestFailure.DIAL_FAILED, repr(error)) from None
        try:
            return await self._converse(stream, command, entry)
        finally:
            with trio.CancelScope(shield=True):
                await _close_quietly(stream)

    async def _converse(self, stream: Any, command: SendRequest, entry: _Outbound) -> int:
        try:
            await stream.write(codec.encode_request(command.request))
            await stream.close_write()
        except Exception as error:
            raise _RequestError(RequestFailure.STREAM_RESET, repr(error)) from None
        decoder = codec.ResponseChunkDecoder(entry.protocol)
        limit = _chunk_limit(command)
        chunks = 0
        while True:
            try:
                data = await read_some(stream)
            except StreamResetError as error:
                raise _RequestError(RequestFailure.STREAM_RESET, str(error)) from None
            try:
                if data is None:
                    decoder.finish()
                    break
                decoded = decoder.feed(data)
            except WireError as error:
                raise _RequestError(RequestFailure.PROTOCOL_ERROR, str(error)) from None
            for result_code, payload in decoded:
                if result_code is not ResultCode.SUCCESS:
                    raise _RequestError(RequestFailure.ERROR_RESPONSE, str(payload), result_code)
                chunks += 1
                if chunks > limit:
                    raise _RequestError(
                        RequestFailure.PROTOCOL_ERROR, f"more than {limit} response chunks"
                    )
                assert not isinstance(payload, str)
                self._emit(
                    ResponseChunk(entry.peer_id, command.request_id, entry.protocol, payload)
                )
        if entry.protocol is ReqRespProtocol.STATUS and chunks == 0:
            raise _RequestError(RequestFailure.PROTOCOL_ERROR, "empty status response")
        return chunks

    def fail_all(self, reason: str) -> None:
        """Settle every request in flight (driver stopping) and refuse new ones."""
        self._stopping = True
        for request_id, entry in list(self._outbound.items()):
            entry.scope.cancel()
            self._settle(
                request_id,
                RequestFailed(
                    entry.peer_id,
                    request_id,
                    entry.protocol,
                    RequestFailure.DRIVER_STOPPED,
                    None,
                    reason,
                ),
            )
        for inbound in self._inbound.values():
            inbound.closed = True
            inbound.send.close()

    # ---------------------------------------------------------------- responder

    def respond(self, command: SendResponseChunk | SendResponseEnd | SendResponseError) -> bool:
        """Queue the loop's answer for an inbound request; False when refused."""
        entry = self._inbound.get(command.request_id)
        if entry is None or entry.closed:
            self.statistics.response_commands_unknown_id += 1
            logger.warning(
                "response for an unknown or finished request refused",
                extra={"request_id": command.request_id},
            )
            return False
        if isinstance(command, SendResponseChunk):
            frame: bytes | None
            try:
                frame = codec.encode_success_chunk(command.payload)
            except WireError:
                # Over the 10 MiB limit: the peer would reject it; skip this chunk.
                self.statistics.response_chunks_oversized += 1
                logger.warning(
                    "oversized response chunk not sent",
                    extra={"request_id": command.request_id, "peer": entry.peer_id},
                )
                return False
            entry.chunks += 1
        elif isinstance(command, SendResponseError):
            frame = codec.encode_error_chunk(command.result_code, command.message)
        else:
            frame = None
        return self._queue(
            entry, command.request_id, frame, final=not isinstance(command, SendResponseChunk)
        )

    def _queue(self, entry: _Inbound, request_id: int, frame: bytes | None, *, final: bool) -> bool:
        try:
            if frame is not None:
                entry.send.send_nowait(frame)
            if final:
                entry.closed = True
                entry.send.send_nowait(None)
        except trio.WouldBlock:
            self.statistics.response_chunks_overflow += 1
            logger.warning("response queue overflow", extra={"request_id": request_id})
            entry.closed = True
            entry.send.close()  # the writer resets the stream
            return False
        return True

    async def _handle_inbound(self, stream: Any) -> None:
        protocol = ReqRespProtocol(str(stream.get_protocol()))
        peer_id = str(stream.muxed_conn.peer_id)
        if self._stopping or len(self._inbound) >= self.limits.max_inbound_in_flight:
            self.statistics.inbound_rejected_busy += 1
            await _write_and_close(
                stream, codec.encode_error_chunk(ResultCode.RESOURCE_UNAVAILABLE, "busy")
            )
            return
        try:
            request = await self._read_request(stream, protocol)
        except _InboundRejected as rejected:
            if rejected.reply is not None:
                await _write_and_close(stream, rejected.reply)
            else:
                await reset_quietly(stream)
            return
        request_id = next(self._inbound_ids)
        send, receive = trio.open_memory_channel[bytes | None](self.limits.max_response_chunks + 1)
        self._inbound[request_id] = _Inbound(peer_id, send)
        self.statistics.inbound_requests += 1
        try:
            self._emit(InboundRequest(peer_id, request_id, protocol, request))
            end, detail = await self._write_response(stream, receive)
        finally:
            self._inbound.pop(request_id, None)
        # The entry is gone before any counter says how the response ended, so whoever
        # reads an outcome counter never also sees that request still in flight.
        if end is _ResponseEnd.FINISHED:
            await _close_quietly(stream)
            return
        if end is _ResponseEnd.TIMED_OUT:
            self.statistics.responses_timed_out += 1
            logger.warning("loop did not answer in time", extra={"request_id": request_id})
        elif end is _ResponseEnd.WRITE_FAILED:
            self.statistics.response_write_errors += 1
            logger.info("response write failed", extra={"request_id": request_id, "error": detail})
        await reset_quietly(stream)

    async def _read_request(self, stream: Any, protocol: ReqRespProtocol) -> codec.Request:
        buffer = bytearray()
        try:
            with trio.fail_after(self.limits.request_read_timeout):
                while (data := await read_some(stream)) is not None:
                    buffer += data
                    if len(buffer) > _MAX_REQUEST_STREAM_BYTES:
                        self.statistics.inbound_invalid += 1
                        raise _InboundRejected(
                            codec.encode_error_chunk(
                                ResultCode.INVALID_REQUEST, "request too large"
                            )
                        )
        except trio.TooSlowError:
            self.statistics.inbound_read_timeouts += 1
            raise _InboundRejected(None) from None
        except StreamResetError:
            self.statistics.inbound_invalid += 1
            raise _InboundRejected(None) from None
        try:
            return codec.decode_request(protocol, bytes(buffer))
        except WireError as error:
            self.statistics.inbound_invalid += 1
            logger.info("invalid request", extra={"protocol": protocol.value, "error": str(error)})
            raise _InboundRejected(
                codec.encode_error_chunk(ResultCode.INVALID_REQUEST, error.detail)
            ) from None

    async def _write_response(
        self, stream: Any, frames: trio.MemoryReceiveChannel[bytes | None]
    ) -> tuple[_ResponseEnd, str]:
        """Write the loop's frames to ``stream`` until the loop ends the response, a
        write fails, or the response timeout passes; say which (counted by the caller)."""
        end = _ResponseEnd.TIMED_OUT, ""  # unless the loop below gets to say otherwise
        with trio.move_on_after(self.limits.response_timeout):
            try:
                async for frame in frames:
                    if frame is None:
                        end = _ResponseEnd.FINISHED, ""
                        break
                    await stream.write(frame)
                else:
                    end = _ResponseEnd.ABANDONED, ""  # the driver closed the channel
            except Exception as error:
                end = _ResponseEnd.WRITE_FAILED, repr(error)
        return end


class _RequestError(Exception):
    def __init__(
        self, failure: RequestFailure, message: str, result_code: ResultCode | None = None
    ) -> None:
        super().__init__(message)
        self.failure = failure
        self.message = message
        self.result_code = result_code


class _ResponseEnd(enum.Enum):
    """How an inbound request's response ended."""

    FINISHED = enum.auto()  # the loop ended it: the stream is closed cleanly
    WRITE_FAILED = enum.auto()  # the peer's side failed under a write: reset
    TIMED_OUT = enum.auto()  # the loop did not end it within response_timeout: reset
    ABANDONED = enum.auto()  # the driver is stopping: reset, not counted as a failure


class _InboundRejected(Exception):
    def __init__(self, reply: bytes | None) -> None:
        super().__init__()
        self.reply = reply


def _chunk_limit(command: SendRequest) -> int:
    request = command.request
    if codec.request_protocol(request) is ReqRespProtocol.STATUS:
        return 1
    roots = getattr(request, "roots", None)
    if roots is not None:
        return len(roots)
    count: int = getattr(request, "count", 0)
    return count


async def _write_and_close(stream: Any, data: bytes) -> None:
    try:
        await stream.write(data)
    except Exception:
        await reset_quietly(stream)
        return
    await _close_quietly(stream)


async def _close_quietly(stream: Any) -> None:
    try:
        await stream.close()
    except Exception:
        logger.debug("stream close failed", exc_info=True)

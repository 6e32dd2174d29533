"""Answers to peers' req/resp requests, served from the store. Loop thread.

Pure: :func:`answer` reads the store through :class:`~lean_p2p.p2p.chain.ChainReader`
and returns the commands to send; the core counts, logs and records the peer's Status.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lean_p2p.net.commands import Command, SendResponseChunk, SendResponseEnd, SendResponseError
from lean_p2p.net.events import InboundRequest
from lean_p2p.net.protocol import ReqRespProtocol, ResultCode
from lean_p2p.p2p.backoff import MAX_BLOCKS_PER_REQUEST, MAX_ROOTS_PER_REQUEST
from lean_p2p.p2p.chain import ChainReader

if TYPE_CHECKING:
    from lean_p2p.containers import SignedBlock, Status

__all__ = ["Answer", "answer"]


@dataclass(frozen=True, slots=True)
class Answer:
    """The commands answering one request, and what the core should note about it."""

    commands: tuple[Command, ...]
    #: the counter to bump: ``served_status``, ``served_by_root``, ``served_by_range`` or
    #: ``inbound_requests_refused``
    counter: str
    #: why the request was refused (answered INVALID_REQUEST), None when served
    refused: str | None = None
    #: the Status the peer sent with a Status request, to record
    peer_status: Status | None = None


def answer(event: InboundRequest, chain: ChainReader, our_status: Status) -> Answer:
    """Serve ``event``: Status answered with ours; blocks by root (unknown roots skipped)
    and by range (count 1..1,024), from the store; anything else refused."""
    from lean_p2p.containers import BlocksByRangeRequest, BlocksByRootRequest, Status

    request = event.request
    request_id = event.request_id
    match event.protocol:
        case ReqRespProtocol.STATUS if isinstance(request, Status):
            commands = (SendResponseChunk(request_id, our_status), SendResponseEnd(request_id))
            return Answer(commands, "served_status", peer_status=request)
        case ReqRespProtocol.BLOCKS_BY_ROOT if isinstance(request, BlocksByRootRequest):
            if len(request.roots) > MAX_ROOTS_PER_REQUEST:
                return _refuse(request_id, f"more than {MAX_ROOTS_PER_REQUEST} roots")
            found = [chain.get_block(root) for root in request.roots]
            return Answer(
                _blocks(request_id, [b for b in found if b is not None]), "served_by_root"
            )
        case ReqRespProtocol.BLOCKS_BY_RANGE if isinstance(request, BlocksByRangeRequest):
            if not 1 <= request.count <= MAX_BLOCKS_PER_REQUEST:
                return _refuse(request_id, f"count must be 1..{MAX_BLOCKS_PER_REQUEST}")
            blocks = chain.blocks_by_range(request.start_slot, request.count)
            return Answer(_blocks(request_id, blocks[: request.count]), "served_by_range")
        case _:
            return _refuse(request_id, "request type does not match protocol")


def _blocks(request_id: int, blocks: Sequence[SignedBlock]) -> tuple[Command, ...]:
    return (
        *(SendResponseChunk(request_id, block) for block in blocks),
        SendResponseEnd(request_id),
    )


def _refuse(request_id: int, reason: str) -> Answer:
    error = SendResponseError(request_id, ResultCode.INVALID_REQUEST, reason)
    return Answer((error,), "inbound_requests_refused", refused=reason)

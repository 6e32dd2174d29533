"""The node's HTTP API (``/lean/v0/...``) and Prometheus ``/metrics``, on aiohttp. Loop thread.

The server runs on the node's loop, so a handler reads the chain directly: it runs
between two mailbox batches, never concurrently with one, and needs no lock. Handlers
see the chain only through :class:`ApiSource`, a small read-mostly interface the node
implements over its store (tests implement it over a genesis store).

Endpoints (as the leanSpec ``api_endpoint`` vectors describe them):

- ``GET /lean/v0/health`` -> ``{"status": "healthy", "service": "lean-rpc-api"}``
- ``GET /lean/v0/states/finalized`` -> SSZ of the finalized state (octet-stream)
- ``GET /lean/v0/blocks/finalized`` -> SSZ of the finalized signed block (404 if absent)
- ``GET /lean/v0/checkpoints/justified`` -> ``{"slot", "root"}``
- ``GET /lean/v0/fork_choice`` -> the fork-choice tree with weights
- ``GET|POST /lean/v0/admin/aggregator`` -> read or toggle the aggregator role
- ``GET /metrics`` -> Prometheus text exposition
- ``GET /lean_p2p/v0/report`` -> this implementation's node report (progress of a devnet)
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from aiohttp import web

from lean_p2p.node.metrics import CONTENT_TYPE, NodeMetrics

__all__ = [
    "ApiServer",
    "ApiSource",
    "CheckpointView",
    "ForkChoiceNode",
    "ForkChoiceView",
    "build_app",
]

logger = logging.getLogger(__name__)

HEALTH_BODY = {"status": "healthy", "service": "lean-rpc-api"}
_MAX_REQUEST_BYTES = 4096  # the only request body is {"enabled": bool}


@dataclass(frozen=True, slots=True)
class CheckpointView:
    slot: int
    root: bytes

    def to_json(self) -> dict[str, Any]:
        return {"slot": self.slot, "root": _hex(self.root)}


@dataclass(frozen=True, slots=True)
class ForkChoiceNode:
    root: bytes
    slot: int
    parent_root: bytes
    proposer_index: int
    weight: int


@dataclass(frozen=True, slots=True)
class ForkChoiceView:
    nodes: tuple[ForkChoiceNode, ...]
    head: bytes
    justified: CheckpointView
    finalized: CheckpointView
    safe_target: bytes
    validator_count: int

    def to_json(self) -> dict[str, Any]:
        return {
            "nodes": [
                {
                    "root": _hex(node.root),
                    "slot": node.slot,
                    "parent_root": _hex(node.parent_root),
                    "proposer_index": node.proposer_index,
                    "weight": node.weight,
                }
                for node in self.nodes
            ],
            "head": _hex(self.head),
            "justified": self.justified.to_json(),
            "finalized": self.finalized.to_json(),
            "safe_target": _hex(self.safe_target),
            "validator_count": self.validator_count,
        }


class ApiSource(Protocol):
    """What the API reads from (and the one thing it changes on) the node."""

    def finalized_state_ssz(self) -> bytes | None: ...

    def finalized_block_ssz(self) -> bytes | None: ...

    def justified_checkpoint(self) -> CheckpointView: ...

    def fork_choice(self) -> ForkChoiceView: ...

    def is_aggregator(self) -> bool: ...

    def set_aggregator(self, enabled: bool) -> None: ...


def _hex(value: bytes) -> str:
    return "0x" + value.hex()


def _json_response(body: object) -> web.Response:
    return web.Response(body=json.dumps(body).encode(), content_type="application/json")


def _ssz_response(body: bytes | None, what: str) -> web.Response:
    if body is None:
        raise web.HTTPNotFound(reason=f"{what} not available")
    return web.Response(body=body, content_type="application/octet-stream")


_SOURCE = web.AppKey("source", ApiSource)
_METRICS = web.AppKey("metrics", NodeMetrics)
ReportFunction = Callable[[], Mapping[str, Any]]
_REPORT: web.AppKey[ReportFunction] = web.AppKey("report")


async def _health(_request: web.Request) -> web.Response:
    return _json_response(HEALTH_BODY)


async def _finalized_state(request: web.Request) -> web.Response:
    return _ssz_response(request.app[_SOURCE].finalized_state_ssz(), "finalized state")


async def _finalized_block(request: web.Request) -> web.Response:
    return _ssz_response(request.app[_SOURCE].finalized_block_ssz(), "finalized block")


async def _justified(request: web.Request) -> web.Response:
    return _json_response(request.app[_SOURCE].justified_checkpoint().to_json())


async def _fork_choice(request: web.Request) -> web.Response:
    return _json_response(request.app[_SOURCE].fork_choice().to_json())


async def _aggregator_status(request: web.Request) -> web.Response:
    return _json_response({"is_aggregator": request.app[_SOURCE].is_aggregator()})


async def _aggregator_toggle(request: web.Request) -> web.Response:
    raw = await request.content.read(_MAX_REQUEST_BYTES + 1)
    if len(raw) > _MAX_REQUEST_BYTES:
        raise web.HTTPRequestEntityTooLarge(
            max_size=_MAX_REQUEST_BYTES, actual_size=len(raw), reason="body too large"
        )
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise web.HTTPBadRequest(reason=f"body is not JSON: {error}") from error
    enabled = body.get("enabled") if isinstance(body, dict) else None
    if not isinstance(enabled, bool):
        raise web.HTTPBadRequest(reason='body must be {"enabled": true|false}')
    source = request.app[_SOURCE]
    previous = source.is_aggregator()
    source.set_aggregator(enabled)
    logger.info("aggregator role set", extra={"enabled": enabled, "previous": previous})
    return _json_response({"is_aggregator": source.is_aggregator(), "previous": previous})


async def _metrics(request: web.Request) -> web.Response:
    return web.Response(body=request.app[_METRICS].scrape(), headers={"Content-Type": CONTENT_TYPE})


async def _report(request: web.Request) -> web.Response:
    return _json_response(dict(request.app[_REPORT]()))


def build_app(
    source: ApiSource, metrics: NodeMetrics, report: ReportFunction | None = None
) -> web.Application:
    app = web.Application(client_max_size=_MAX_REQUEST_BYTES)
    app[_SOURCE] = source
    app[_METRICS] = metrics
    if report is not None:
        app[_REPORT] = report
        app.router.add_get("/lean_p2p/v0/report", _report)
    app.router.add_get("/lean/v0/health", _health)
    app.router.add_get("/lean/v0/states/finalized", _finalized_state)
    app.router.add_get("/lean/v0/blocks/finalized", _finalized_block)
    app.router.add_get("/lean/v0/checkpoints/justified", _justified)
    app.router.add_get("/lean/v0/fork_choice", _fork_choice)
    app.router.add_get("/lean/v0/admin/aggregator", _aggregator_status)
    app.router.add_post("/lean/v0/admin/aggregator", _aggregator_toggle)
    app.router.add_get("/metrics", _metrics)
    return app


class ApiServer:
    """Serves :func:`build_app` on one or more ports of the running loop."""

    def __init__(
        self,
        source: ApiSource,
        metrics: NodeMetrics,
        host: str = "127.0.0.1",
        report: ReportFunction | None = None,
    ) -> None:
        self._runner = web.AppRunner(build_app(source, metrics, report), access_log=None)
        self._host = host
        self.ports: list[int] = []

    async def start(self, ports: Sequence[int]) -> list[int]:
        """Listen on ``ports`` (0 picks a free port); returns the bound ports."""
        await self._runner.setup()
        # The same fixed port twice is one site; each 0 asks the OS for another port.
        wanted = [port for i, port in enumerate(ports) if port == 0 or port not in ports[:i]]
        for port in wanted:
            site = web.TCPSite(self._runner, self._host, port)
            await site.start()
            server = site._server  # the bound socket is the only way to learn port 0's port
            sockets = getattr(server, "sockets", None) or []
            self.ports.append(sockets[0].getsockname()[1] if sockets else port)
        return self.ports

    async def stop(self) -> None:
        await self._runner.cleanup()

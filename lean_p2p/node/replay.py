"""Replay a recording into a fresh node, deterministically. Loop thread.

The node under replay is built from the recording's header (genesis, duties, role) with
``live=False``: it schedules no ticks and no timers and has no driver, so its only
inputs are the recorded items, handled in recorded order at their recorded ``now``.
Commands it produces go nowhere. Because every state change of the recorded node went
through its mailbox, the replayed store ends identical: :class:`ReplayResult` carries
the store fingerprint and head to compare.

``speed="max"`` replays as fast as the loop allows (yielding to the loop every batch);
``speed="recorded"`` keeps the recorded spacing between items.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from lean_p2p.node.config import GenesisSpec, NodeConfig
from lean_p2p.node.node import Node
from lean_p2p.node.recording import Recording, RecordingError, read_recording
from lean_p2p.wire.keys import NodeKey

__all__ = ["ReplayResult", "config_from_header", "replay_recording"]

logger = logging.getLogger(__name__)

_YIELD_EVERY = 256  # items between yields to the loop at maximum speed


@dataclass(frozen=True, slots=True)
class ReplayResult:
    items: int
    truncated: bool
    recorded_seconds: float  # node-clock span of the recording
    wall_seconds: float  # how long the replay took
    head_root: bytes
    head_slot: int
    justified_slot: int
    finalized_slot: int
    fingerprint: bytes
    handler_errors: int

    @property
    def speedup(self) -> float:
        """Recorded time over replay time (how many times faster than real time)."""
        return self.recorded_seconds / self.wall_seconds if self.wall_seconds else float("inf")

    def as_dict(self) -> dict[str, Any]:
        return {
            "items": self.items,
            "truncated": self.truncated,
            "recorded_seconds": self.recorded_seconds,
            "wall_seconds": self.wall_seconds,
            "speedup": self.speedup,
            "head_root": "0x" + self.head_root.hex(),
            "head_slot": self.head_slot,
            "justified_slot": self.justified_slot,
            "finalized_slot": self.finalized_slot,
            "fingerprint": "0x" + self.fingerprint.hex(),
            "handler_errors": self.handler_errors,
        }


def config_from_header(header: Mapping[str, Any]) -> NodeConfig:
    """The configuration of the recorded node (a fresh identity key: it never dials)."""
    try:
        keys = tuple(
            (bytes.fromhex(attestation), bytes.fromhex(proposal))
            for attestation, proposal in header["validator_keys"]
        )
        return NodeConfig(
            name=f"replay-of-{header['node']}",
            key=NodeKey.generate(),
            genesis=GenesisSpec(int(header["genesis_time"]), keys),
            validator_indices=tuple(int(i) for i in header["validator_indices"]),
            is_aggregator=bool(header["is_aggregator"]),
            bootnodes=tuple(header.get("bootnodes", ())),
            # Verification results were recorded; the replay takes them from the file.
            verification=str(header.get("verification", "mocked")),
        )
    except (KeyError, TypeError, ValueError) as error:
        raise RecordingError(f"recording header lacks the node configuration: {error}") from error


async def replay_recording(
    source: Path | Recording, *, speed: Literal["max", "recorded"] = "max"
) -> ReplayResult:
    recording = source if isinstance(source, Recording) else read_recording(source)
    node = Node(config_from_header(recording.header), live=False, fail_fast=False)
    await node.start()
    started = time.perf_counter()
    first_time = recording.items[0].time if recording.items else 0.0
    try:
        for count, record in enumerate(recording.items, start=1):
            if speed == "recorded":
                due = started + (record.time - first_time)
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            elif count % _YIELD_EVERY == 0:
                await asyncio.sleep(0)
            try:
                node.replay_item(record.lane, record.item, record.time)
            except Exception:
                # The recorded node failed here too (fail-fast): report, keep going.
                logger.exception("replayed item failed", extra={"lane": record.lane})
                node.metrics.handler_errors.labels(lane=record.lane).inc()
        wall = time.perf_counter() - started
    finally:
        await node.stop()
    summary = node.chain.summary()
    errors = sum(
        sample.value
        for metric in node.metrics.handler_errors.collect()
        for sample in metric.samples
        if sample.name.endswith("_total")
    )
    return ReplayResult(
        items=len(recording.items),
        truncated=recording.truncated,
        recorded_seconds=recording.duration,
        wall_seconds=wall,
        head_root=summary.head_root,
        head_slot=summary.head_slot,
        justified_slot=summary.justified_slot,
        finalized_slot=summary.finalized_slot,
        fingerprint=node.chain.fingerprint(),
        handler_errors=int(errors),
    )

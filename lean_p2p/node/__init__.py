"""The node: the only package that composes every other one. Loop thread (see node.py).

``async with Node(config) as node:`` runs a lean node on the current asyncio loop: the
network driver on its own thread, the mailbox, the P2P core and the chain (store,
parked blocks, validator duties), the HTTP API and metrics. Configuration comes from
arguments (:class:`NodeConfig`) or from devnet files (:func:`load_node_config`).
Test doubles for embedders live in :mod:`lean_p2p.node.testing`.

Imports here are the curated public API; the py-libp2p driver is imported only when a
node starts without a driver of its own.
"""

from lean_p2p.node.chain import ChainService, ChainSummary
from lean_p2p.node.clock import Clock, SystemClock
from lean_p2p.node.config import (
    DevnetConfigError,
    GenesisSpec,
    NodeConfig,
    load_devnet,
    load_node_config,
    write_devnet,
)
from lean_p2p.node.control import IntervalTick, SetAggregator, TimerExpired
from lean_p2p.node.node import DriverPort, Node, NodeFailed, NodeReport, lane_for_event
from lean_p2p.node.recording import Recording, RecordingError, read_recording
from lean_p2p.node.replay import ReplayResult, replay_recording
from lean_p2p.wire.keys import KeyFileError, NodeKey

__all__ = [
    "ChainService",
    "ChainSummary",
    "Clock",
    "DevnetConfigError",
    "DriverPort",
    "GenesisSpec",
    "IntervalTick",
    "KeyFileError",
    "Node",
    "NodeConfig",
    "NodeFailed",
    "NodeKey",
    "NodeReport",
    "Recording",
    "RecordingError",
    "ReplayResult",
    "SetAggregator",
    "SystemClock",
    "TimerExpired",
    "lane_for_event",
    "load_devnet",
    "load_node_config",
    "read_recording",
    "replay_recording",
    "write_devnet",
]

"""Prometheus metrics of one node. Loop thread.

Every node owns its own :class:`prometheus_client.CollectorRegistry` (several nodes can
share a process in tests and in the profiler). The lean metric names a compliant node
must expose (the ``api_endpoint`` metrics vector lists them) are all registered; values
that are state (slots, peers, lane depths) are read at scrape time from callbacks, which
run on the loop thread because the HTTP server serving ``/metrics`` runs there too.
Values that are events (processing times, counts) are observed by the node as it
handles them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from lean_p2p import __version__

__all__ = [
    "CONTENT_TYPE",
    "LEAN_METRIC_NAMES",
    "ChainGauges",
    "LaneCounters",
    "NodeMetrics",
]

#: The Prometheus text exposition content type the lean API serves.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

#: Metric names a lean node exposes (from the leanSpec metrics scrape contract).
LEAN_METRIC_NAMES = (
    "lean_node_info",
    "lean_node_start_time_seconds",
    "lean_head_slot",
    "lean_current_slot",
    "lean_safe_target_slot",
    "lean_fork_choice_block_processing_time_seconds",
    "lean_attestations_valid_total",
    "lean_attestations_invalid_total",
    "lean_attestation_validation_time_seconds",
    "lean_fork_choice_reorgs_total",
    "lean_fork_choice_reorg_depth",
    "lean_attestation_aggregate_coverage_validators",
    "lean_attestation_aggregate_coverage_subnets",
    "lean_attestation_aggregate_coverage_diff_validators",
    "lean_latest_justified_slot",
    "lean_latest_finalized_slot",
    "lean_state_transition_time_seconds",
    "lean_validators_count",
    "lean_connected_peers",
)

_FAST_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


@dataclass(frozen=True, slots=True)
class ChainGauges:
    """The chain's state-like numbers at one moment."""

    head_slot: int
    current_slot: int
    safe_target_slot: int
    justified_slot: int
    finalized_slot: int
    connected_peers: int


@dataclass(frozen=True, slots=True)
class LaneCounters:
    """One mailbox lane's numbers at one moment."""

    depth: int
    accepted: int
    dropped: int
    handled: int


class _LaneCollector(Collector):
    """Reads the mailbox's lanes at scrape time."""

    def __init__(
        self,
        lanes: Callable[[], Mapping[str, LaneCounters]],
        wakeups: Callable[[], int],
    ) -> None:
        self._lanes = lanes
        self._wakeups = wakeups

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        depth = GaugeMetricFamily(
            "lean_p2p_mailbox_lane_depth", "Items waiting in a mailbox lane", labels=["lane"]
        )
        accepted = CounterMetricFamily(
            "lean_p2p_mailbox_accepted", "Items a mailbox lane accepted", labels=["lane"]
        )
        dropped = CounterMetricFamily(
            "lean_p2p_mailbox_dropped", "Items a mailbox lane dropped (overflow)", labels=["lane"]
        )
        handled = CounterMetricFamily(
            "lean_p2p_mailbox_handled", "Items handled from a mailbox lane", labels=["lane"]
        )
        for lane, counters in self._lanes().items():
            depth.add_metric([lane], counters.depth)
            accepted.add_metric([lane], counters.accepted)
            dropped.add_metric([lane], counters.dropped)
            handled.add_metric([lane], counters.handled)
        wakeups = CounterMetricFamily(
            "lean_p2p_mailbox_wakeups", "Loop wakeups that drained the mailbox"
        )
        wakeups.add_metric([], self._wakeups())
        yield from (depth, accepted, dropped, handled, wakeups)


class _ChainCollector(Collector):
    def __init__(self, gauges: Callable[[], ChainGauges]) -> None:
        self._gauges = gauges

    def collect(self) -> Iterator[GaugeMetricFamily]:
        values = self._gauges()
        for name, value, help_text in (
            ("lean_head_slot", values.head_slot, "Slot of the fork-choice head"),
            ("lean_current_slot", values.current_slot, "Current slot by the clock"),
            ("lean_safe_target_slot", values.safe_target_slot, "Slot of the safe target"),
            ("lean_latest_justified_slot", values.justified_slot, "Latest justified slot"),
            ("lean_latest_finalized_slot", values.finalized_slot, "Latest finalized slot"),
            ("lean_connected_peers", values.connected_peers, "Connected peers"),
        ):
            yield GaugeMetricFamily(name, help_text, value=value)


class NodeMetrics:
    """A node's registry: lean metrics plus the mailbox and handler metrics."""

    def __init__(
        self,
        *,
        node_name: str,
        validator_count: int,
        chain_gauges: Callable[[], ChainGauges],
        lane_counters: Callable[[], Mapping[str, LaneCounters]],
        wakeups: Callable[[], int],
    ) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        info = Gauge("lean_node_info", "Node information", ["name", "version"], registry=registry)
        info.labels(name=node_name, version=__version__).set(1)
        Gauge("lean_node_start_time_seconds", "Unix time the node started", registry=registry).set(
            time.time()
        )
        Gauge("lean_validators_count", "Validators in the registry", registry=registry).set(
            validator_count
        )
        self.block_processing_seconds = Histogram(
            "lean_fork_choice_block_processing_time_seconds",
            "Time to import a block into fork choice",
            buckets=_FAST_BUCKETS,
            registry=registry,
        )
        self.state_transition_seconds = Histogram(
            "lean_state_transition_time_seconds",
            "Time of a block's state transition",
            buckets=_FAST_BUCKETS,
            registry=registry,
        )
        self.attestation_validation_seconds = Histogram(
            "lean_attestation_validation_time_seconds",
            "Time to validate an attestation",
            buckets=_FAST_BUCKETS,
            registry=registry,
        )
        self.attestations_valid = Counter(
            "lean_attestations_valid", "Attestations accepted", registry=registry
        )
        self.attestations_invalid = Counter(
            "lean_attestations_invalid", "Attestations rejected", registry=registry
        )
        self.reorgs = Counter("lean_fork_choice_reorgs", "Head reorgs", registry=registry)
        self.reorg_depth = Histogram(
            "lean_fork_choice_reorg_depth",
            "Depth of head reorgs in slots",
            buckets=(1, 2, 3, 5, 8, 13, 21),
            registry=registry,
        )
        self.aggregate_coverage_validators = Gauge(
            "lean_attestation_aggregate_coverage_validators",
            "Validators covered by the latest aggregate",
            registry=registry,
        )
        self.aggregate_coverage_subnets = Gauge(
            "lean_attestation_aggregate_coverage_subnets",
            "Subnets covered by the latest aggregate",
            registry=registry,
        )
        self.aggregate_coverage_diff_validators = Gauge(
            "lean_attestation_aggregate_coverage_diff_validators",
            "Validators the latest aggregate added over the previous one",
            registry=registry,
        )
        self.handler_seconds = Histogram(
            "lean_p2p_handler_seconds",
            "Loop-thread time to handle one mailbox item, by lane",
            ["lane"],
            buckets=_FAST_BUCKETS,
            registry=registry,
        )
        self.handler_errors = Counter(
            "lean_p2p_handler_errors",
            "Mailbox items whose handler raised, by lane",
            ["lane"],
            registry=registry,
        )
        self.chain_events = Counter(
            "lean_p2p_chain_events",
            "Chain outcomes by kind: imports, rejections by reason, parked, dropped",
            ["event"],
            registry=registry,
        )
        self.storage_commit_seconds = Histogram(
            "lean_p2p_storage_commit_seconds",
            "Duration of one chain-database commit on the writer thread (fsync included)",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=registry,
        )
        self.storage_commit_blocks = Histogram(
            "lean_p2p_storage_commit_blocks",
            "Blocks in one chain-database commit (the writer's batch size)",
            buckets=(0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
            registry=registry,
        )
        self.storage_queue_depth = Gauge(
            "lean_p2p_storage_queue_depth",
            "Hand-overs waiting for the storage writer thread",
            registry=registry,
        )
        self.storage_pending_blocks = Gauge(
            "lean_p2p_storage_pending_blocks",
            "Blocks waiting on the loop side for room in the storage queue",
            registry=registry,
        )
        self.storage_blocks_dropped = Gauge(
            "lean_p2p_storage_blocks_dropped",
            "Block writes dropped because the disk was behind (cumulative)",
            registry=registry,
        )
        self.storage_write_errors = Gauge(
            "lean_p2p_storage_write_errors",
            "Chain-database commits that failed (cumulative)",
            registry=registry,
        )
        registry.register(_ChainCollector(chain_gauges))
        registry.register(_LaneCollector(lane_counters, wakeups))

    def scrape(self) -> bytes:
        """The text exposition of every metric (call on the loop thread)."""
        exposition: bytes = generate_latest(self.registry)
        return exposition

"""The node's interpreter policy and its garbage-collection pause monitor."""

from __future__ import annotations

import gc
import logging
from collections.abc import Iterator

import pytest

from lean_p2p.node import runtime_policy
from lean_p2p.node.config import GenesisSpec, NodeConfig
from lean_p2p.node.node import Node
from lean_p2p.node.runtime_policy import GcPauses, apply_runtime_policy
from lean_p2p.node.testing import FakeDriver, ManualClock
from lean_p2p.wire.keys import NodeKey


@pytest.fixture
def fresh_process(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """As if no node had frozen the heap yet; unfrozen afterwards."""
    monkeypatch.setattr(runtime_policy, "_frozen_in_this_process", False)
    gc.unfreeze()
    yield
    gc.unfreeze()


@pytest.mark.usefixtures("fresh_process")
def test_the_policy_freezes_the_heap_once_per_process_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="lean_p2p.node.runtime_policy"):
        apply_runtime_policy(gc_freeze=True, node="a")
        frozen = gc.get_freeze_count()
        apply_runtime_policy(gc_freeze=True, node="b")
    assert frozen > 0
    # The second node did not freeze again (frozen objects freed since may lower it).
    assert gc.get_freeze_count() <= frozen
    messages = [
        record.getMessage() for record in caplog.records if "GIL" not in record.getMessage()
    ]
    assert "heap frozen after start-up" in messages[0]
    assert "switch interval unchanged" in messages[0]
    assert "already frozen by an earlier node" in messages[1]


def test_the_policy_says_whether_the_network_thread_yields_the_gil(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="lean_p2p.node.runtime_policy"):
        apply_runtime_policy(gc_freeze=False, node="a", yield_to_loop_s=0.0005)
        apply_runtime_policy(gc_freeze=False, node="b", yield_to_loop_s=0.0)
    said = [record.getMessage() for record in caplog.records if "GIL" in record.getMessage()]
    assert said == [
        "runtime policy: the network's thread yields the GIL to the loop, for up to "
        "0.5 ms, after a hand-off that wakes it",
        "runtime policy: the network's thread does not yield the GIL to the loop "
        "(yield_to_loop_s 0)",
    ]


@pytest.mark.usefixtures("fresh_process")
def test_an_embedder_can_opt_out(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="lean_p2p.node.runtime_policy"):
        apply_runtime_policy(gc_freeze=False, node="a")
    assert gc.get_freeze_count() == 0
    assert "left as it was" in caplog.text


def test_gc_pauses_counts_collections_by_generation_until_removed() -> None:
    pauses = GcPauses()
    pauses.install()
    try:
        gc.collect(0)
        gc.collect(2)
        gc.collect(2)
        seen = pauses.as_dict()
    finally:
        pauses.remove()
    by_generation = {entry["generation"]: entry for entry in seen["by_generation"]}
    # Other collections may run meanwhile (allocations trigger them): at least these.
    assert by_generation[0]["collections"] >= 1
    assert by_generation[2]["collections"] >= 2
    assert seen["collections"] == sum(entry["collections"] for entry in seen["by_generation"])
    assert seen["pause_max_ms"] >= by_generation[2]["pause_max_ms"] > 0
    assert seen["pause_total_ms"] >= seen["pause_max_ms"]
    gc.collect(2)
    assert pauses.as_dict()["collections"] == seen["collections"]  # removed: not counted
    pauses.remove()  # idempotent


@pytest.mark.usefixtures("fresh_process")
@pytest.mark.parametrize("gc_freeze", [True, False])
async def test_a_started_node_applies_its_policy_and_reports_its_collections(
    gc_freeze: bool,
) -> None:
    config = NodeConfig(
        name="policy",
        key=NodeKey.generate(),
        genesis=GenesisSpec.placeholder(1_000, 4),
        gc_freeze=gc_freeze,
    )
    async with Node(config, driver=FakeDriver(), clock=ManualClock(1_000)) as node:
        assert (gc.get_freeze_count() > 0) is gc_freeze
        gc.collect()
        report = node.report().as_dict()
    assert report["gc"]["collections"] >= 1
    assert report["gc"]["by_generation"][2]["collections"] >= 1
    # Stopped: its monitor no longer runs on every collection of the process.
    assert node._gc_pauses._on_collection not in gc.callbacks

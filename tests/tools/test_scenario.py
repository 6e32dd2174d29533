"""Scenario files: parsing with clear errors, the checks, the plot, and the shipped files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from lean_p2p.tools.faultnet import LinkFaults
from lean_p2p.tools.scenario import (
    Scenario,
    ScenarioError,
    evaluate,
    finality_lag,
    load_scenario,
    parse_scenario,
    plot_svg,
)

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


def parse(text: str) -> Scenario:
    return parse_scenario(yaml.safe_load(text), name="test", where="test.yaml")


def test_a_scenario_reads_its_events_in_slot_order_with_their_faults() -> None:
    scenario = parse(
        """
        nodes: 4
        slots: 30
        seed: 3
        links: {delay_ms: 100, jitter_ms: 20, loss: 0.05}
        events:
          - {slot: 18, heal: true}
          - {slot: 8, partition: [[0, 1], [2, 3]]}
          - {slot: 10, link: {between: [0, 2], loss: 0.5}}
          - {slot: 12, kill: 3}
          - {slot: 17, restart: 3}
        expect: {finality_resumes_within: 3, one_head: true, back_at_head_within: 5}
        """
    )
    assert scenario.validators == 4 and scenario.seed == 3 and scenario.clock_skew == {}
    assert parse("{nodes: 2, slots: 8, clock_skew: {1: -0.5}}").clock_skew == {1: -0.5}
    assert scenario.signatures == "real"
    assert parse("{nodes: 2, slots: 8, signatures: mocked}").signatures == "mocked"
    assert scenario.links == LinkFaults(delay_ms=100, jitter_ms=20, loss=0.05)
    assert [event.slot for event in scenario.events] == [8, 10, 12, 17, 18]
    assert [event.describe() for event in scenario.events] == [
        "partition 0,1 | 2,3",
        "link 0-2: {'loss': 0.5}",
        "kill 3",
        "restart 3",
        "heal",
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[1, 2]", "expected a mapping at the top"),
        ("{nodes: 1, slots: 10}", "nodes: expected an integer >= 2"),
        ("{nodes: 4, slots: 10, colour: red}", "unknown keys \\['colour'\\]"),
        ("{nodes: 4, slots: 10, links: {los: 0.1}}", "links: unknown fields \\['los'\\]"),
        ("{nodes: 4, slots: 10, links: {loss: 2}}", "links: loss is a probability"),
        ("{nodes: 4, slots: 10, events: [{slot: 10, heal: true}]}", "slot: expected an integer"),
        ("{nodes: 4, slots: 10, events: [{slot: 1, kill: 4}]}", "expected a node index 0..3"),
        ("{nodes: 4, slots: 10, events: [{slot: 1}]}", "exactly one of"),
        ("{nodes: 4, slots: 10, events: [{slot: 1, heal: 1}]}", "write 'heal: true'"),
        (
            "{nodes: 4, slots: 10, events: [{slot: 1, partition: [[0, 1], [1, 2]]}]}",
            "no node twice",
        ),
        (
            "{nodes: 4, slots: 10, events: [{slot: 1, link: {between: [2, 2]}}]}",
            "two different nodes",
        ),
        ("{nodes: 4, slots: 10, expect: {one_head: 1}}", "expect.one_head: expected bool"),
        ("{nodes: 4, slots: 10, expect: {finality_soon: true}}", "unknown 'finality_soon'"),
        ("{nodes: 4, slots: 10, expect: {finality_resumes_within: 3}}", "needs a partition"),
        ("{nodes: 4, slots: 10, expect: {back_at_head_within: 3}}", "needs a restart"),
        ("{nodes: 4, slots: 10, clock_skew: {4: 1.0}}", "expected a node index 0..3"),
        ("{nodes: 4, slots: 10, clock_skew: {0: 100}}", "within ±60"),
        ("{nodes: 4, slots: 10, signatures: fake}", "signatures: expected real or mocked"),
    ],
)
def test_a_bad_scenario_is_refused_naming_the_file_and_the_field(text: str, message: str) -> None:
    with pytest.raises(ScenarioError, match=message) as refused:
        parse(text)
    assert str(refused.value).startswith("test.yaml")


def test_an_unreadable_or_malformed_file_is_refused_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="cannot read it"):
        load_scenario(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("nodes: [4\n")
    with pytest.raises(ScenarioError, match="not YAML"):
        load_scenario(broken)


@pytest.mark.parametrize("path", sorted(SCENARIOS.glob("*.yaml")), ids=lambda path: path.stem)
def test_every_shipped_scenario_reads(path: Path) -> None:
    scenario = load_scenario(path)
    assert scenario.description and scenario.expect


def _view(head: int, justified: int, finalized: int, root: str = "aa") -> dict[str, Any]:
    return {
        "head_slot": head,
        "head_root": root,
        "justified_slot": justified,
        "finalized_slot": finalized,
        "finalized_root": "ff",
        "lost_events": 0,
    }


def _summary(timeline: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "scenario": "test",
        "nodes": 2,
        "slots": 20,
        "timeline": timeline,
        "events": [{"slot": 5, "at": 20.1, "event": "partition 0 | 1"}],
        "final_views": [_view(19, 17, 16), _view(19, 17, 16)],
        "exit_codes": [0, 0],
        "reports_missing": [],
        "lost_events": 0,
        "killed": [],
        "restarts": [],
        "rss_peak_bytes": [100_000_000, 100_000_000],
        "finality_lag": finality_lag(timeline),
        "clean": None,
        "network": {
            "a->b": {
                "received": 10, "forwarded": 7, "lost": 1, "partitioned": 1,
                "queue_dropped": 0, "in_flight": 1,
            },
        },
    }  # fmt: skip
    summary.update(extra)
    return summary


def _timeline(finalized_by_slot: dict[int, int]) -> list[dict[str, Any]]:
    return [
        {"slot": float(slot), "nodes": [_view(slot, finalized + 1, finalized)] * 2}
        for slot, finalized in sorted(finalized_by_slot.items())
    ]


def test_the_checks_judge_a_partition_and_its_heal() -> None:
    scenario = parse(
        """
        nodes: 2
        slots: 20
        events: [{slot: 5, partition: [[0], [1]]}, {slot: 10, heal: true}]
        expect: {finality_stalls_during_partition: true, finality_resumes_within: 3,
                 one_head: true}
        """
    )
    stalled = {slot: min(slot - 1, 4) if slot < 12 else slot - 2 for slot in range(1, 20)}
    checks = {c["check"]: c["passed"] for c in evaluate(scenario, _summary(_timeline(stalled)))}
    assert checks == {
        "no_crashes": True,
        "no_lost_events": True,
        "network_reconciles": True,
        "finality_stalls_during_partition": True,
        "finality_resumes_within": True,
        "one_head": True,
    }
    # Finality that went on through the split, and came back too late after it.
    moving = {slot: slot - 1 if slot < 10 else 8 if slot < 16 else slot - 2 for slot in range(20)}
    summary = _summary(_timeline(moving), final_views=[_view(19, 17, 16), _view(18, 17, 16, "bb")])
    checks = {c["check"]: c["passed"] for c in evaluate(scenario, summary)}
    assert checks["finality_stalls_during_partition"] is False
    assert checks["finality_resumes_within"] is False
    assert checks["one_head"] is False


def test_a_node_the_scenario_killed_for_good_is_no_crash_but_any_other_is() -> None:
    scenario = parse("{nodes: 2, slots: 20, events: [{slot: 3, kill: 1}]}")
    timeline = _timeline({slot: 0 for slot in range(1, 20)})
    killed = _summary(timeline, exit_codes=[0, -9], reports_missing=[1], killed=[1])
    assert all(c["passed"] for c in evaluate(scenario, killed))
    crashed = _summary(timeline, exit_codes=[1, 0])
    assert not evaluate(scenario, crashed)[0]["passed"]
    lost = _summary(timeline, lost_events=2)
    assert not evaluate(scenario, lost)[1]["passed"]


def test_a_restarted_node_is_judged_by_when_it_reached_the_head_again() -> None:
    scenario = parse(
        "{nodes: 2, slots: 20, events: [{slot: 3, kill: 1}, {slot: 6, restart: 1}],"
        " expect: {back_at_head_within: 4}}"
    )
    timeline = [
        {"slot": float(slot), "nodes": [_view(slot, 0, 0), _view(min(slot, 3 + slot // 4), 0, 0)]}
        for slot in range(1, 20)
    ]
    summary = _summary(timeline, killed=[1], restarts=[{"node": 1, "slot": 6}])
    [check] = [c for c in evaluate(scenario, summary) if c["check"].startswith("back_at_head")]
    assert check["passed"] is False and "never" in check["detail"]


def test_the_plot_is_an_svg_with_a_line_per_node_and_the_events_marked() -> None:
    summary = _summary(_timeline({slot: max(slot - 3, 0) for slot in range(1, 20)}))
    svg = plot_svg(summary)
    assert svg.startswith("<svg") and svg.rstrip().endswith("</svg>")
    assert svg.count("<polyline") == 4  # justified and finalized, two nodes
    assert "partition 0 | 1" in svg


def test_a_nodes_cpu_is_its_increases_over_the_time_they_span() -> None:
    from lean_p2p.tools.scenario import _cpu_percent, _Sample

    samples = [
        _Sample(-1.0, -0.25, [None], [None], [0.1]),  # before genesis: left out
        _Sample(0.0, 0.0, [None], [None], [0.2]),
        _Sample(1.0, 0.25, [None], [None], [0.5]),  # +0.3 in 1 s
        _Sample(2.0, 0.5, [None], [None], [0.1]),  # restarted: its count began again
        _Sample(3.0, 0.75, [None], [None], [0.2]),  # +0.1 in 1 s
    ]
    assert _cpu_percent(samples, 0) == 20.0


def test_a_scenario_can_be_judged_against_its_clean_twin() -> None:
    scenario = parse(
        "{nodes: 2, slots: 20, links: {loss: 0.05},"
        " expect: {finality_lag_beyond_clean: 2, rss_beyond_clean: 1.5}}"
    )
    assert scenario.expect["rss_beyond_clean"] == 1.5
    # Finalized trails the head by 3 here.
    timeline = _timeline({slot: max(slot - 3, 0) for slot in range(1, 20)})
    assert finality_lag(timeline) == 3
    clean = {"finality_lag": 2, "rss_peak_bytes": [90_000_000, 70_000_000]}

    def judged(**extra: Any) -> dict[str, bool]:
        summary = _summary(timeline, clean=clean, **extra)
        return {c["check"]: c["passed"] for c in evaluate(scenario, summary)}

    assert judged() == {
        "no_crashes": True,
        "no_lost_events": True,
        "network_reconciles": True,
        "finality_lag_beyond_clean": True,  # 3 <= 2 + 2
        "rss_beyond_clean": True,  # 100 <= 1.5 * 70
    }
    assert judged(finality_lag=5)["finality_lag_beyond_clean"] is False
    assert judged(rss_peak_bytes=[100_000_000, 110_000_000])["rss_beyond_clean"] is False
    no_twin = {c["check"]: c["passed"] for c in evaluate(scenario, _summary(timeline))}
    assert no_twin["finality_lag_beyond_clean"] is False  # nothing to compare: not a pass
    assert finality_lag(_timeline({slot: 0 for slot in range(1, 20)})) is None


def test_the_command_refuses_a_bad_scenario_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from lean_p2p.cli import main

    bad = tmp_path / "bad.yaml"
    bad.write_text("nodes: 4\nslots: 10\nevents: [{slot: 2, kill: 9}]\n")
    assert main(["devnet", "--scenario", str(bad)]) == 2
    out = capsys.readouterr().out
    assert out.strip() == (
        f"lean-p2p devnet: {bad}: events[0]: kill: expected a node index 0..3, got 9"
    )


def test_datagrams_the_relays_cannot_account_for_fail_the_run() -> None:
    scenario = parse("{nodes: 2, slots: 20}")
    timeline = _timeline({slot: 0 for slot in range(1, 20)})
    counts = {"received": 10, "forwarded": 7, "lost": 1, "partitioned": 0}
    broken = _summary(timeline, network={"a->b": {**counts, "queue_dropped": 0, "in_flight": 0}})
    [check] = [c for c in evaluate(scenario, broken) if c["check"] == "network_reconciles"]
    assert check["passed"] is False and "a->b" in check["detail"]


def test_one_head_needs_one_finalized_root_too() -> None:
    scenario = parse("{nodes: 2, slots: 20, expect: {one_head: true}}")
    timeline = _timeline({slot: 0 for slot in range(1, 20)})
    split = _view(19, 17, 16)
    split["finalized_root"] = "ee"
    summary = _summary(timeline, final_views=[_view(19, 17, 16), split])
    [check] = [c for c in evaluate(scenario, summary) if c["check"] == "one_head"]
    assert check["passed"] is False and "2 finalized roots" in check["detail"]

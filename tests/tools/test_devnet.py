"""``lean-p2p devnet`` pieces, and a real two-process devnet over loopback QUIC."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

from lean_p2p.tools.devnet import (
    DevnetOptions,
    devnet_failures,
    devnet_succeeded,
    free_ports,
    run_devnet,
)


def test_free_ports_are_distinct_and_bindable() -> None:
    ports = free_ports(4, socket.SOCK_DGRAM)
    assert len(set(ports)) == 4
    for port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", port))


def _summary(**changes: Any) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "nodes": 2,
        "node_reports": [{}, {}],
        "directory": "devnet-dir",
        "head_agreement": True,
        "lost_events": 0,
        "justified_slot": 4,
        "head_slot": 6,
        "finalized_slot": 3,
        "exit_codes": [0, 0],
    }
    summary.update(changes)
    return summary


@pytest.mark.parametrize(
    "changes",
    [
        {"head_agreement": False},
        {"lost_events": 1},
        {"finalized_slot": 0},
        {"exit_codes": [0, 1]},
        {"exit_codes": [0, None]},
    ],
    ids=["heads-disagree", "lost", "no-finality", "crashed", "killed"],
)
def test_devnet_fails_on_any_shortfall(changes: dict[str, Any]) -> None:
    assert devnet_succeeded(_summary())
    assert not devnet_succeeded(_summary(**changes))


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"head_agreement": False}, "heads differ"),
        ({"lost_events": 2}, "2 accepted events were lost"),
        ({"finalized_slot": 0}, "nothing was finalized (justified slot 4, head slot 6)"),
        ({"exit_codes": [0, -9]}, "exited uncleanly: 1 (-9)"),
        (
            {"node_reports": [{}]},
            "1 of 2 nodes wrote no final report (their logs are in devnet-dir)",
        ),
    ],
)
def test_a_failed_devnet_says_why(changes: dict[str, Any], reason: str) -> None:
    assert devnet_failures(_summary()) == []
    reasons = devnet_failures(_summary(**changes))
    assert len(reasons) == 1
    assert reason in reasons[0]


@pytest.mark.network
async def test_two_node_devnet_finalizes_over_loopback(tmp_path: Path) -> None:
    lines: list[str] = []
    options = DevnetOptions(
        nodes=2, validators=2, duration=22.0, directory=tmp_path, genesis_delay=8.0
    )
    summary = await run_devnet(options, show=lines.append)
    assert devnet_succeeded(summary), (summary, _logs(tmp_path))
    assert summary["head_agreement"] is True
    assert summary["finalized_roots_agree"] is True
    assert summary["lost_events"] == 0
    assert summary["finalized_slot"] >= 1
    assert summary["handled_events"] > 0
    assert any("peers=1" in line for line in lines)  # each saw the other while running
    assert all(report["handler_errors"] == 0 for report in summary["node_reports"])


def _logs(directory: Path) -> dict[str, str]:
    return {path.name: path.read_text()[-2000:] for path in directory.glob("*.log")}


def test_finality_cadence() -> None:
    from lean_p2p.tools.devnet import finality_cadence

    history = [(0.0, 0), (1.0, 0), (4.0, 1), (8.0, 2), (9.0, 2), (20.0, 3)]
    assert finality_cadence(history) == (3, 12.0)
    assert finality_cadence([(0.0, 0), (5.0, 0)]) == (0, None)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"duration": 2000.0}, "signs 256 slots"),
        ({"signatures": "some"}, "'real' or 'mocked'"),
        ({"scheme": "prod"}, "scheme must be one of"),
    ],
)
def test_signing_options_that_cannot_run_are_named(changes: dict[str, Any], reason: str) -> None:
    from dataclasses import replace

    from lean_p2p.tools.devnet import DevnetOptions, check_signing_options

    problem = check_signing_options(replace(DevnetOptions(), **changes))
    assert problem is not None and reason in problem
    assert check_signing_options(DevnetOptions()) is None
    # mocked signatures need no key, whatever the length
    assert check_signing_options(DevnetOptions(duration=2000.0, signatures="mocked")) is None

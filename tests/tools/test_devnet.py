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


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"leanspec": -1}, "below zero"),
        ({"leanspec": 1, "signatures": "mocked"}, "drop --mocked-signatures"),
        ({"leanspec": 1, "scheme": "production"}, "test scheme only"),
    ],
)
def test_mixed_devnet_options_that_cannot_run_are_named(
    changes: dict[str, Any], reason: str
) -> None:
    from dataclasses import replace

    from lean_p2p.tools.devnet import check_signing_options

    problem = check_signing_options(replace(DevnetOptions(), **changes))
    assert problem is not None and reason in problem
    assert check_signing_options(DevnetOptions(leanspec=2)) is None


def _view(
    head: int, justified: int, finalized: int, root: str = "ab", weight: int = 2
) -> dict[str, Any]:
    return {
        "head_slot": head,
        "head_root": "cd",
        "justified_slot": justified,
        "justified_root": "ef",
        "finalized_slot": finalized,
        "finalized_root": root,
        "proposers": [0, 1],
        "max_weight": weight,
    }


def test_a_mixed_progress_line_shows_every_node() -> None:
    from lean_p2p.tools.devnet import _format_progress, _progress_row

    report = {
        "current_slot": 7,
        "peers": 2,
        "dropped": 0,
        "handled": 10,
        "head_slot": 7,
        "head_root": "0xcd",
        "justified_slot": 5,
        "finalized_slot": 4,
        "finalized_root": "0xab",
    }
    views = [
        ("lean_p2p_0", _view(7, 5, 4)),
        ("lean_p2p_1", _view(6, 5, 4)),
        ("lean_spec_0", _view(7, 5, 3)),
        ("lean_spec_1", None),
    ]
    row = _progress_row(20.0, [report, report], 12.0, views)
    assert row["up"] == 3  # of four: one leanSpec node did not answer
    assert (row["head"], row["justified"], row["finalized"]) == ("6-7", 5, 3)
    line = _format_progress(row)
    assert line.endswith("nodes=p0:7/5/4 p1:6/5/4 s0:7/5/3 s1:down")
    # a plain devnet's line has no per-node part
    plain = _format_progress(_progress_row(20.0, [report], 1.0))
    assert "head=7-7  justified=5  finalized=4" in plain and "nodes=" not in plain


class _StubLeanSpec:
    def __init__(self, name: str, errors: list[str]) -> None:
        self.name = name
        self.exit_code = 0
        self._errors = errors

    def errors(self) -> tuple[list[str], list[str]]:
        return self._errors, ["shutdown complaint"]


def _ours() -> dict[str, Any]:
    return {"finalized_slot": 9, "justified_slot": 10, "head_agreement": True}


def _mixed(views: list[tuple[str, dict[str, Any] | None]]) -> dict[str, Any]:
    """Two validators: 0 on lean_p2p_0, 1 on lean_spec_0."""
    from lean_p2p.tools.devnet import CrossImports, _mixed_summary

    cross = CrossImports()
    cross.add(views)
    return _mixed_summary(
        [_StubLeanSpec("lean_spec_0", [])],  # type: ignore[list-item]
        views,
        _ours(),
        cross=cross,
        leanspec_validators={1},
        validators=2,
    )


def test_implementations_agree_only_on_one_finalized_root_from_every_node() -> None:
    from lean_p2p.tools.devnet import nodes_table_text

    summary = _mixed([("lean_p2p_0", _view(12, 10, 9)), ("lean_spec_0", _view(12, 10, 9))])
    assert summary["implementations_agree"] and summary["head_agreement"]
    assert summary["finalized_slot"] == 9 and summary["justified_slot"] == 10
    assert [row["implementation"] for row in summary["nodes_table"]] == ["lean_p2p", "leanSpec"]
    assert summary["leanspec_explained_error_lines"] == ["lean_spec_0: shutdown complaint"]
    assert "lean_spec_0        leanSpec" in nodes_table_text(summary)
    forked = _mixed([("lean_p2p_0", _view(12, 10, 9)), ("lean_spec_0", _view(12, 10, 9, "99"))])
    assert not forked["implementations_agree"]
    quiet = _mixed([("lean_p2p_0", _view(12, 10, 9)), ("lean_spec_0", None)])
    assert not quiet["implementations_agree"] and not quiet["head_agreement"]
    assert quiet["finalized_slot"] == 0
    behind = _mixed([("lean_p2p_0", _view(12, 10, 9)), ("lean_spec_0", _view(10, 10, 9))])
    assert not behind["head_agreement"]


def test_cross_imports_need_blocks_and_votes_from_both_sides() -> None:
    both = _mixed([("lean_p2p_0", _view(5, 3, 2)), ("lean_spec_0", _view(5, 3, 2))])
    assert both["proposals_imported_both_ways"] and both["votes_counted_both_ways"]
    assert [(r["proposers_lean_p2p"], r["proposers_leanSpec"]) for r in both["nodes_table"]] == [
        (1, 1),
        (1, 1),
    ]
    only_ours = {**_view(5, 3, 2), "proposers": [0]}
    one_sided = _mixed([("lean_p2p_0", _view(5, 3, 2)), ("lean_spec_0", only_ours)])
    assert not one_sided["proposals_imported_both_ways"]
    # One validator each side: a weight of 1 is a node's own side's vote alone. Half
    # the validators is under two thirds, so a justified checkpoint needed the other
    # side's votes too; without one, nothing shows they were counted.
    short = _mixed([("lean_p2p_0", _view(5, 3, 2, weight=1)), ("lean_spec_0", _view(5, 3, 2))])
    assert short["votes_counted_both_ways"]
    unjustified = _mixed(
        [("lean_p2p_0", _view(5, 0, 0, weight=1)), ("lean_spec_0", _view(5, 3, 2))]
    )
    assert not unjustified["votes_counted_both_ways"]
    theirs_short = _mixed(
        [("lean_p2p_0", _view(5, 3, 2)), ("lean_spec_0", _view(5, 0, 0, weight=1))]
    )
    assert not theirs_short["votes_counted_both_ways"]


def test_a_mixed_devnet_fails_on_disagreement_and_on_leanspec_errors() -> None:
    mixed = {
        "leanspec_nodes": 1,
        "implementations_agree": True,
        "proposals_imported_both_ways": True,
        "votes_counted_both_ways": True,
        "leanspec_error_lines": [],
        "error_lines": [],
    }
    assert devnet_failures(_summary(**mixed)) == []
    [reason] = devnet_failures(_summary(**{**mixed, "implementations_agree": False}))
    assert "implementations do not agree" in reason
    [reason] = devnet_failures(_summary(**{**mixed, "leanspec_error_lines": ["s0: boom"]}))
    assert reason == "leanSpec logged 1 error line(s); first: s0: boom"
    [reason] = devnet_failures(_summary(error_lines=["lean_p2p_0: ERROR x"]))
    assert reason == "our nodes logged 1 error line(s); first: lean_p2p_0: ERROR x"


def test_the_command_names_a_missing_leanspec_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from lean_p2p.cli import main

    arguments = ["devnet", "--leanspec", "1", "--leanspec-python", str(tmp_path / "nope")]
    assert main([*arguments, "--dir", str(tmp_path / "net")]) == 2
    [line] = capsys.readouterr().out.strip().splitlines()
    assert line == f"lean-p2p devnet: --leanspec-python {tmp_path / 'nope'}: no such file"


@pytest.fixture(scope="module")
def leanspec_interpreter() -> Path:
    """An interpreter that runs leanSpec's node; skips (fails under CI) without one."""
    import os

    from lean_p2p.tools import leanspec

    found = leanspec.find_leanspec_python()
    if found is not None:
        return found
    how = (
        "no leanSpec interpreter for the mixed-devnet test: run "
        "`bash ../shared/peers/setup-leanspec.sh build/leanspec-venv` "
        f"or set {leanspec.PYTHON_ENV}"
    )
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail(f"CI=true and {how}")
    pytest.skip(how)


@pytest.mark.network
async def test_a_mixed_devnet_with_leanspec_finalizes_together(
    tmp_path: Path, leanspec_interpreter: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines: list[str] = []
    monkeypatch.chdir(tmp_path)  # a relative --dir, as a user types it
    options = DevnetOptions(
        nodes=2,
        leanspec=1,
        validators=3,
        duration=36.0,
        directory=Path("net"),
        genesis_delay=10.0,
        leanspec_python=leanspec_interpreter,
    )
    summary = await run_devnet(options, show=lines.append)
    assert devnet_failures(summary) == [], (summary["nodes_table"], _logs(tmp_path / "net"))
    assert summary["implementations_agree"] is True
    assert summary["finalized_slot"] >= 1
    # blocks and votes went both ways (one validator each: slots 0, 1 ours, 2 theirs)
    assert summary["proposals_imported_both_ways"] and summary["votes_counted_both_ways"]
    assert [row["implementation"] for row in summary["nodes_table"]] == [
        "lean_p2p",
        "lean_p2p",
        "leanSpec",
    ]
    assert summary["leanspec_error_lines"] == [] and summary["error_lines"] == []
    # the progress lines showed leanSpec's node by name once it answered
    assert any(" s0:" in line and "s0:down" not in line for line in lines)


def test_a_joined_node_is_caught_up_at_the_lowest_steady_head() -> None:
    from lean_p2p.tools.devnet import Join, mark_caught_up

    late = Join("lean_p2p_2", "lean_p2p", "late", started_at=30.0)
    restarted = Join("lean_spec_0", "leanSpec", "restart", started_at=60.0)
    joins = [late, restarted]
    steady = [("lean_p2p_0", _view(9, 7, 6)), ("lean_p2p_1", _view(10, 7, 6))]
    mark_caught_up(joins, 31.0, [*steady, ("lean_p2p_2", _view(3, 0, 0)), ("lean_spec_0", None)])
    assert [join.as_dict()["caught_up_after_s"] for join in joins] == [None, None]
    # at the lowest steady head (9), not the highest, and the other joiner does not count
    mark_caught_up(joins, 33.5, [*steady, ("lean_p2p_2", _view(9, 7, 6)), ("lean_spec_0", None)])
    assert [join.as_dict()["caught_up_after_s"] for join in joins] == [3.5, None]
    mark_caught_up(joins, 40.0, [*steady, ("lean_p2p_2", _view(2, 0, 0))])  # stays
    assert late.as_dict()["caught_up_after_s"] == 3.5
    assert late.as_dict()["caught_up_after_slots"] == 0.9
    assert restarted.as_dict()["caught_up_after_s"] is None


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"late_join": 5.0, "nodes": 1}, "at least two nodes of each kind"),
        ({"late_join": 5.0, "leanspec": 1}, "at least two nodes of each kind"),
        ({"late_join": 90.0}, "must fall inside the run"),
        ({"restart_at": 5.0, "nodes": 1}, "restarts a node other than the aggregator"),
        ({"restart_at": 5.0, "late_join": 3.0, "nodes": 2}, "other than the aggregator"),
        ({"late_checkpoint_sync": True}, "needs --late-join"),
    ],
)
def test_late_joins_and_restarts_that_cannot_run_are_named(
    changes: dict[str, Any], reason: str
) -> None:
    from dataclasses import replace

    from lean_p2p.tools.devnet import check_signing_options

    problem = check_signing_options(replace(DevnetOptions(duration=60.0), **changes))
    assert problem is not None and reason in problem
    fine = DevnetOptions(duration=60.0, nodes=3, leanspec=2, late_join=10.0, restart_at=20.0)
    assert check_signing_options(fine) is None


def test_a_node_that_never_caught_up_fails_the_run() -> None:
    joins = [
        {
            "node": "lean_spec_1",
            "implementation": "leanSpec",
            "kind": "late",
            "started_at_s": 16.7,
            "caught_up_after_s": None,
        }
    ]
    [reason] = devnet_failures(_summary(joins=joins))
    assert reason == "lean_spec_1 (leanSpec, late at 16.7 s) never reached the head of the others"
    [reason] = devnet_failures(_summary(restart_exit_codes=[1]))
    assert reason == "a restarted node's first life exited uncleanly: [1]"


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"restart_all_at": 20.0, "leanspec": 2}, "drop --leanspec"),
        ({"restart_all_at": 20.0, "restart_at": 10.0}, "runs alone"),
        ({"restart_all_at": 80.0}, "must fall inside the run"),
    ],
)
def test_whole_restarts_that_cannot_run_are_named(changes: dict[str, Any], reason: str) -> None:
    from dataclasses import replace

    from lean_p2p.tools.devnet import check_signing_options

    problem = check_signing_options(replace(DevnetOptions(duration=60.0), **changes))
    assert problem is not None and reason in problem
    assert check_signing_options(DevnetOptions(duration=60.0, restart_all_at=30.0)) is None


def test_a_whole_restart_is_judged_on_what_it_kept_and_finalized_on_top() -> None:
    from lean_p2p.tools.devnet import WholeRestart

    whole = WholeRestart(40.0, {"lean_p2p_0": 7, "lean_p2p_1": 7}, restarted_at_s=44.0)
    for node in ("lean_p2p_0", "lean_p2p_1"):
        whole.returned(node, 7)  # back at the checkpoint it had
    whole.note(45.0, 7)
    whole.note(49.0, 7)
    assert whole.as_dict()["finalized_on_top_at_s"] is None
    assert devnet_failures(_summary(whole_restart=whole.as_dict())) == [
        "the devnet restarted from disk never finalized past its checkpoint"
    ]
    whole.returned("lean_p2p_0", 12)  # only the first poll after the restart counts
    whole.note(60.0, 12)
    judged = whole.as_dict()
    assert judged["kept_finalized"]
    assert judged["finalized_on_return"] == {"lean_p2p_0": 7, "lean_p2p_1": 7}
    assert judged["finalized_on_top_after_slots"] == 4.0
    assert devnet_failures(_summary(whole_restart=judged)) == []
    lost = WholeRestart(40.0, {"lean_p2p_0": 7, "lean_p2p_1": 7}, restarted_at_s=44.0)
    lost.returned("lean_p2p_0", 0)  # came back at genesis
    lost.note(60.0, 9)
    [reason] = devnet_failures(_summary(whole_restart=lost.as_dict()))
    assert reason == (
        "the devnet restarted from disk lost finalized checkpoints: lean_p2p_0 came back "
        "at finalized slot 0, below its 7; lean_p2p_1 never answered after the restart"
    )


def test_a_node_that_stopped_before_the_others_finalized_is_held_to_its_own_checkpoint() -> None:
    from lean_p2p.tools.devnet import WholeRestart

    # The nodes do not stop at one instant: one finalized slot 7 from a block the other
    # never received before its SIGTERM, and each came back with what it had.
    whole = WholeRestart(40.0, {"lean_p2p_0": 7, "lean_p2p_1": 6}, restarted_at_s=44.0)
    whole.returned("lean_p2p_0", 7)
    whole.returned("lean_p2p_1", 6)
    whole.note(45.0, 6)
    whole.note(50.0, 7)  # not past the highest checkpoint yet
    whole.note(53.0, 8)
    judged = whole.as_dict()
    assert judged["finalized_before"] == 7 and judged["finalized_after_restart"] == 6
    assert judged["kept_finalized"] and judged["finalized_on_top_at_s"] == 53.0
    assert devnet_failures(_summary(whole_restart=judged)) == []

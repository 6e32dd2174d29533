"""The runner's plug-in protocol: discovery, outcomes, and crash handling."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from lean_p2p.tools.spectest import runner
from lean_p2p.tools.spectest.runner import (
    FormatCounts,
    Outcome,
    VectorFailure,
    VectorSkipped,
    discover_plugins,
    run_file,
    run_format,
)


def _plugin(test_id: str, fixture: Mapping[str, Any]) -> None:
    behaviour = fixture["behaviour"]
    if behaviour == "skip":
        raise VectorSkipped("cannot run")
    if behaviour == "fail":
        raise VectorFailure("mismatch")
    if behaviour == "crash":
        raise KeyError("oops")


def _write(path: Path, document: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document))
    return path


def test_discovers_the_wire_formats() -> None:
    plugins = discover_plugins()
    assert {"ssz", "networking_codec"} <= set(plugins)


def test_every_outcome_is_counted(tmp_path: Path) -> None:
    _write(
        tmp_path / "fake" / "a" / "one.json",
        {
            "p": {"behaviour": "pass"},
            "s": {"behaviour": "skip"},
            "f": {"behaviour": "fail"},
            "c": {"behaviour": "crash"},
        },
    )
    counts = FormatCounts()
    for result in run_format(tmp_path, "fake", _plugin):
        counts.add(result)
    assert counts.as_json() == {"passed": 1, "failed": 2, "skipped": 1}
    details = sorted(failure.detail for failure in counts.failures)
    assert details == ["KeyError: 'oops'", "mismatch"]


@pytest.mark.parametrize("content", ["not json", "[1, 2]", '{"x": 3}'])
def test_unreadable_files_and_fixtures_fail(tmp_path: Path, content: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    results = list(run_file("fake", _plugin, path))
    assert [result.outcome for result in results] == [Outcome.FAILED]


def test_missing_format_directory_yields_nothing(tmp_path: Path) -> None:
    assert list(run_format(tmp_path, "absent", _plugin)) == []


def test_module_without_protocol_is_rejected() -> None:
    import types

    module = types.ModuleType("broken")
    with pytest.raises(runner.PluginError):
        runner._plugin_of(module)

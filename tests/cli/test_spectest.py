"""``lean-p2p spectest``: counts per format, JSON output and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lean_p2p.cli import main


def _write_vectors(root: Path) -> None:
    directory = root / "ssz" / "lstar" / "ssz" / "sample"
    directory.mkdir(parents=True)
    good = {
        "leanEnv": "test",
        "typeName": "Uint16",
        "value": "258",
        "serialized": "0x0201",
        "root": "0x" + "0201" + "00" * 30,
    }
    bad = {**good, "serialized": "0x0301"}
    unknown = {**good, "typeName": "NoSuchType"}
    (directory / "vectors.json").write_text(json.dumps({"g": good, "b": bad, "u": unknown}))


def test_counts_per_format_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write_vectors(tmp_path)
    out = tmp_path / "out.json"
    code = main(["spectest", str(tmp_path), "--format", "ssz", "--json", str(out)])
    assert code == 1  # one vector failed
    assert json.loads(out.read_text()) == {"ssz": {"passed": 1, "failed": 1, "skipped": 1}}
    printed = capsys.readouterr().out
    assert "FAILED ssz" in printed and "encode" in printed


def test_unknown_format_is_an_error(tmp_path: Path) -> None:
    assert main(["spectest", str(tmp_path), "--format", "no_such_format"]) == 1


def test_missing_root_is_an_error(tmp_path: Path) -> None:
    assert main(["spectest", str(tmp_path / "absent"), "--format", "ssz"]) == 1


def test_a_format_without_vectors_is_an_error(tmp_path: Path) -> None:
    assert main(["spectest", str(tmp_path), "--format", "ssz"]) == 1


def test_the_real_vectors_pass(leanspec_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    arguments = ["spectest", str(leanspec_root), "--format", "ssz"]
    code = main([*arguments, "--format", "networking_codec", "--json", str(out)])
    counts = json.loads(out.read_text())
    assert counts["ssz"]["failed"] == counts["ssz"]["skipped"] == 0
    assert counts["networking_codec"]["failed"] == counts["networking_codec"]["skipped"] == 0
    assert code == 0


def test_a_format_without_a_plug_in_is_reported_as_skipped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _write_vectors(tmp_path)
    other = tmp_path / "no_plug_in_here" / "lstar"
    other.mkdir(parents=True)
    (other / "a.json").write_text(json.dumps({"one": {}, "two": {}}))
    (other / "b.json").write_text(json.dumps({"three": {}}))
    out = tmp_path / "out.json"
    code = main(["spectest", str(tmp_path), "--json", str(out)])
    assert code == 1  # the ssz sample has a failing vector
    document = json.loads(out.read_text())
    assert document["no_plug_in_here"] == {
        "passed": 0,
        "failed": 0,
        "skipped": 3,
        "unsupported": True,
    }
    assert "no plug-in: every vector skipped" in capsys.readouterr().out


def test_strict_fails_on_skipped_vectors(tmp_path: Path) -> None:
    directory = tmp_path / "ssz" / "lstar"
    directory.mkdir(parents=True)
    unknown = {
        "leanEnv": "test",
        "typeName": "NoSuchType",
        "value": "1",
        "serialized": "0x01",
        "root": "0x" + "00" * 32,
    }
    (directory / "v.json").write_text(json.dumps({"u": unknown}))
    assert main(["spectest", str(tmp_path), "--format", "ssz"]) == 0
    assert main(["spectest", str(tmp_path), "--format", "ssz", "--strict"]) == 1


def test_json_into_a_missing_directory_is_created_before_the_run(tmp_path: Path) -> None:
    _write_vectors(tmp_path)
    out = tmp_path / "not" / "yet" / "there.json"
    main(["spectest", str(tmp_path), "--format", "ssz", "--json", str(out)])
    assert json.loads(out.read_text())["ssz"]["passed"] == 1


def test_json_to_a_directory_is_refused_before_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["spectest", str(tmp_path), "--format", "ssz", "--json", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "is a directory" in capsys.readouterr().err

"""bench block-path: one block's path through the driver, part by part."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from lean_p2p.cli import main
from lean_p2p.tools.bench.block_path import COLUMNS


def test_the_command_times_every_part_for_every_size(tmp_path: Path) -> None:
    out = tmp_path / "missing" / "block-path.json"
    arguments = ["bench", "block-path", "--block-sizes", "20000", "600000"]
    assert (
        main([*arguments, "--datagram-sizes", "1200", "9000", "--repeats", "1", "--json", str(out)])
        == 0
    )
    rows = json.loads(out.read_text())
    assert [(r["block_bytes"], r["datagram_bytes"]) for r in rows] == [
        (20_000, 1_200),
        (20_000, 9_000),
        (600_000, 1_200),
        (600_000, 9_000),
    ]
    for row in rows:
        assert set(COLUMNS) <= set(row)
        parts = [row[name] for name in COLUMNS if name.endswith("_ms") and name != "cpu_total_ms"]
        assert all(part > 0 for part in parts)
        assert row["cpu_total_ms"] == pytest.approx(sum(parts))
        # Every datagram but the last is full: the count follows from the sizes.
        assert row["datagrams"] >= row["wire_bytes"] / row["datagram_bytes"]
    small, large = rows[2], rows[3]
    assert large["datagrams"] < small["datagrams"] / 5


@pytest.mark.parametrize(
    "arguments", [["--repeats", "-3"], ["--repeats", "0"], ["--block-sizes", "100000", "0"]]
)
def test_a_count_or_size_below_one_is_refused(
    arguments: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main(["bench", "block-path", *arguments])
    assert "of at least 1, not" in capsys.readouterr().err


def test_a_datagram_size_outside_what_the_driver_sends_is_refused(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["bench", "block-path", "--datagram-sizes", "65000"])
    assert "1200 to 16384 bytes" in capsys.readouterr().err


def test_a_quic_library_that_is_not_installed_is_named_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in [m for m in sys.modules if m == "qh3" or m.startswith("qh3.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "qh3", None)  # import qh3 now fails
    assert main(["bench", "block-path", "--quick", "--quic", "aioquic", "qh3"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("bench block-path: qh3 is not installed (")
    assert line.endswith("); pip install qh3")

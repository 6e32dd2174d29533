"""bench storage: every engine on the node's writes, and the loop with storage off and on."""

from __future__ import annotations

import json
from pathlib import Path

from lean_p2p.cli import main


def test_the_command_writes_a_row_per_engine_and_per_loop_case(tmp_path: Path) -> None:
    out = tmp_path / "storage.json"
    arguments = ["bench", "storage", "--quick", "--slots", "40", "--dir", str(tmp_path)]
    assert main([*arguments, "--json", str(out)]) == 0
    rows = json.loads(out.read_text())
    engines = [row for row in rows if row["table"] == "engines"]
    loop = [row for row in rows if row["table"] == "loop"]
    assert [row["engine"] for row in engines] == ["sqlite-full", "sqlite-normal", "lmdb"]
    for row in engines:
        assert row["slot_commits"] == 40
        assert row["commit_p50_ms"] > 0 and row["sync_blocks_per_s"] > 0
        assert row["restart_read_ms"] > 0 and row["file_kib"] > 0
    assert [row["storage"] for row in loop] == ["none (memory)", "sqlite (writer thread)"]
    assert all(row["blocks"] == 40 and row["lag_p99_us"] > 0 for row in loop)
    assert loop[0]["commits"] == 0 and loop[1]["commits"] > 0
    assert loop[0]["on_block_ratio"] == 1
    # Its databases were removed with its work directory.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["storage.json"]

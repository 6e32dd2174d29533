"""bench xmss measures key generation, signing with real keys, and full verifications of
valid signatures, in both schemes."""

from __future__ import annotations

import json
from pathlib import Path

from lean_p2p.cli import main
from lean_p2p.containers.scheme import TEST_SCHEME
from lean_p2p.tools.bench.xmss import measure_keygen, measure_ours, measure_sign


def test_workers_report_a_positive_rate() -> None:
    assert measure_ours(TEST_SCHEME, workers=2, seconds=0.05) > 0


def test_keygen_makes_a_whole_lifetime_key_that_signs() -> None:
    steps: list[str] = []
    seconds, key = measure_keygen(TEST_SCHEME, workers=2, progress=steps.append)
    assert seconds > 0
    assert key.activation_interval == range(256)
    assert steps[-1] == "bottom tree 16/16"
    assert measure_sign(key, workers=2, seconds=0.05) > 0


def test_the_command_writes_a_row_per_scheme_operation_and_worker_count(tmp_path: Path) -> None:
    out = tmp_path / "rows" / "xmss.json"
    assert main(["bench", "xmss", "--quick", "--workers", "1", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())
    assert [(row["config"], row["operation"], row.get("workers")) for row in rows] == [
        ("test", "keygen", 1),
        ("test", "sign", 1),
        ("test", "verify", 1),
        ("production", "keygen", None),
        ("production", "sign", None),
        ("production", "verify", 1),
    ]
    fields = {"keygen": "keygen_s", "sign": "sign_per_s", "verify": "verify_per_s"}
    for row in rows:
        if "workers" in row:
            assert row[fields[row["operation"]]] > 0, row
        else:  # the production key takes a minute: named, not silently missing
            assert "--quick" in row["note"], row

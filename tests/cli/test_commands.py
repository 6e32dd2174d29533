"""The node's commands as a user runs them: exit codes, outputs, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lean_p2p.cli import main
from lean_p2p.node.config import GenesisSpec, NodeConfig
from lean_p2p.node.node import Node
from lean_p2p.node.testing import FakeDriver, ManualClock
from lean_p2p.wire.keys import NodeKey

GENESIS_TIME = 1_000


async def _record(path: Path) -> str:
    clock = ManualClock(GENESIS_TIME)
    config = NodeConfig(
        name="recorded",
        key=NodeKey.generate(),
        genesis=GenesisSpec.placeholder(GENESIS_TIME, 4),
        validator_indices=(0, 1, 2, 3),
        is_aggregator=True,
        record_path=path,
    )
    async with Node(config, driver=FakeDriver(), clock=clock) as node:
        for step in range(1, 5 * 6 + 1):
            clock.set(GENESIS_TIME + step * 0.8)
            await node.wait_idle()
    return "0x" + node.chain.summary().head_root.hex()


@pytest.fixture
async def recording(tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "node.rec"
    head = await _record(path)
    return path, head


def test_replay_reaches_the_recorded_head(
    recording: tuple[Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, head = recording
    out = tmp_path / "replay.json"
    assert main(["replay", str(path), "--json", str(out), "--expect-head", head]) == 0
    result = json.loads(out.read_text())
    assert result["head_root"] == head
    assert result["items"] > 0
    assert result["handler_errors"] == 0
    assert head in capsys.readouterr().out


def test_replay_reports_a_mismatch(recording: tuple[Path, str]) -> None:
    path, _ = recording
    assert main(["replay", str(path), "--expect-head", "0x" + "00" * 32]) == 1


def test_replay_rejects_a_corrupt_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.rec"
    path.write_bytes(b"garbage!")
    assert main(["replay", str(path)]) == 2
    assert "magic" in capsys.readouterr().out
    assert main(["replay", str(tmp_path / "missing.rec")]) == 2


def test_node_rejects_a_missing_devnet(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["node", "--devnet", str(tmp_path), "--name", "x"]) == 2
    assert "missing" in capsys.readouterr().out


def test_node_names_a_broken_keystore_file_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from lean_p2p.containers import TEST_SCHEME
    from lean_p2p.node.config import write_devnet
    from lean_p2p.node.keys import KEYS_DIRECTORY, generate_validator_keys, write_keystore

    keys = generate_validator_keys(1, seed=b"cli", scheme=TEST_SCHEME, num_active_slots=4)
    write_keystore(tmp_path, keys)
    write_devnet(tmp_path, nodes=1, validators=1, validator_keys=[keys[0].public_keys])
    key_file = tmp_path / KEYS_DIRECTORY / "validator_0_attestation_sk.ssz"
    key_file.write_bytes(key_file.read_bytes()[:100])
    assert main(["node", "--devnet", str(tmp_path), "--name", "lean_p2p_0"]) == 2
    [line] = capsys.readouterr().out.strip().splitlines()
    assert line.startswith("lean-p2p node: ") and "validator_0_attestation_sk.ssz" in line


def test_node_accepts_empty_proofs_only_in_a_devnet_that_signs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from lean_p2p.node.config import write_devnet

    write_devnet(tmp_path, nodes=1, validators=1)
    arguments = ["node", "--devnet", str(tmp_path), "--name", "lean_p2p_0"]
    assert main([*arguments, "--accept-empty-proofs"]) == 2
    [line] = capsys.readouterr().out.strip().splitlines()
    assert line == (
        "lean-p2p node: --accept-empty-proofs needs a devnet that signs for real (a keystore)"
    )


def test_node_bootnodes_must_name_their_peer(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from lean_p2p.node.config import write_devnet

    write_devnet(tmp_path, nodes=1, validators=1)
    arguments = ["node", "--devnet", str(tmp_path), "--name", "lean_p2p_0"]
    assert main([*arguments, "--bootnode", "/ip4/127.0.0.1/udp/9000/quic-v1"]) == 2
    [line] = capsys.readouterr().out.strip().splitlines()
    assert line == (
        "lean-p2p node: --bootnode /ip4/127.0.0.1/udp/9000/quic-v1: expected .../p2p/<peer id>"
    )


def test_node_names_a_checkpoint_sync_that_failed_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from lean_p2p.node.config import write_devnet

    write_devnet(tmp_path, nodes=1, validators=1)
    arguments = ["node", "--devnet", str(tmp_path), "--name", "lean_p2p_0"]
    assert main([*arguments, "--checkpoint-sync-url", "http://127.0.0.1:1"]) == 1
    [line] = capsys.readouterr().out.strip().splitlines()
    assert line.startswith("lean-p2p node: checkpoint sync failed: http://127.0.0.1:1/lean/v0/")
    assert "cannot fetch" in line


def test_node_names_a_corrupt_database_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from lean_p2p.node.config import write_devnet

    write_devnet(tmp_path / "devnet", nodes=1, validators=1)
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "chain.sqlite3").write_bytes(b"\x00 not a database " * 300)
    arguments = ["node", "--devnet", str(tmp_path / "devnet"), "--name", "lean_p2p_0"]
    assert main([*arguments, "--data-dir", str(data_dir)]) == 1
    [line] = capsys.readouterr().out.strip().splitlines()
    assert line.startswith(f"lean-p2p node: {data_dir / 'chain.sqlite3'} is not a readable")
    assert "move the data directory aside" in line


def test_devnet_rejects_an_empty_network(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["devnet", "--nodes", "0"]) == 2


def test_profile_names_the_missing_extra_instead_of_crashing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import importlib.util

    from lean_p2p.cli import profile as cli_profile

    real_find_spec = importlib.util.find_spec

    def without_matplotlib(name: str, *args: object) -> object:
        return None if name == "matplotlib" else real_find_spec(name)

    monkeypatch.setattr(importlib.util, "find_spec", without_matplotlib)
    assert cli_profile._missing_profile_dependencies(None, has_py_spy=True) == ["matplotlib"]
    assert cli_profile._missing_profile_dependencies("py-spy", has_py_spy=False) == [
        "matplotlib",
        "py-spy",
    ]

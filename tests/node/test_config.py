"""Devnet files: generation, loading, and rejection of inconsistent or malformed files."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from lean_p2p.containers.xmss import FIELD_MODULUS, FieldElementType
from lean_p2p.node.config import (
    PUBLIC_KEY_BYTES,
    DevnetConfigError,
    GenesisSpec,
    NodeConfig,
    dial_addresses,
    load_devnet,
    load_node_config,
    load_nodes_yaml,
    placeholder_public_keys,
    write_devnet,
)
from lean_p2p.wire.enr import EnrRecord
from lean_p2p.wire.keys import NodeKey


def test_written_devnet_loads_back(tmp_path: Path) -> None:
    entries = write_devnet(tmp_path, nodes=3, validators=7, genesis_time=1_000)
    for name in ("config.yaml", "validator-config.yaml", "validators.yaml", "nodes.yaml"):
        assert (tmp_path / name).is_file()
    genesis, loaded, records = load_devnet(tmp_path)
    assert genesis.genesis_time == 1_000
    assert genesis.validator_count == 7
    assert all(len(key) == PUBLIC_KEY_BYTES for pair in genesis.validator_keys for key in pair)
    assert [entry.name for entry in loaded] == [entry.name for entry in entries]
    assert [record.peer_id for record in records] == [entry.key.peer_id for entry in entries]
    for entry in entries:
        key_text = (tmp_path / f"{entry.name}.key").read_text().strip()
        assert key_text == entry.key.to_hex()


def test_node_config_assigns_round_robin_and_lists_the_other_nodes(tmp_path: Path) -> None:
    entries = write_devnet(tmp_path, nodes=3, validators=7, genesis_time=1_000)
    config = load_node_config(tmp_path, entries[1].name)
    assert config.validator_indices == (1, 4)
    assert config.key == entries[1].key
    assert config.quic_port == entries[1].quic_port
    expected = {
        f"/ip4/127.0.0.1/udp/{e.quic_port}/quic-v1/p2p/{e.key.peer_id}"
        for e in (entries[0], entries[2])
    }
    assert set(config.bootnodes) == expected  # our own entry of nodes.yaml is skipped
    assert config.is_aggregator is False
    assert load_node_config(tmp_path, entries[0].name).is_aggregator is True
    assert load_node_config(str(tmp_path), entries[1].name) == config  # a str path works too


def test_another_implementations_nodes_get_validators_and_no_entry(tmp_path: Path) -> None:
    entries = write_devnet(
        tmp_path, nodes=2, validators=7, genesis_time=1, other_nodes=("lean_spec_0",)
    )
    assignment = yaml.safe_load((tmp_path / "validators.yaml").read_text())
    assert assignment == {"lean_p2p_0": [0, 3, 6], "lean_p2p_1": [1, 4], "lean_spec_0": [2, 5]}
    _, loaded, records = load_devnet(tmp_path)  # their validators count towards the total
    assert [entry.name for entry in loaded] == ["lean_p2p_0", "lean_p2p_1"]
    assert [record.peer_id for record in records] == [entry.key.peer_id for entry in entries]
    assert load_node_config(tmp_path, "lean_p2p_1").validator_indices == (1, 4)
    with pytest.raises(DevnetConfigError, match="no node named"):
        load_node_config(tmp_path, "lean_spec_0")


def test_unlisted_nodes_are_left_out_of_nodes_yaml(tmp_path: Path) -> None:
    entries = write_devnet(tmp_path, nodes=3, validators=3, unlisted_nodes=1)
    _, loaded, records = load_devnet(tmp_path)
    assert len(loaded) == 3
    assert [record.peer_id for record in records] == [e.key.peer_id for e in entries[:2]]
    # the unlisted node still runs from the files; the listed ones never dial it
    assert len(load_node_config(tmp_path, entries[2].name).bootnodes) == 2
    assert entries[2].key.peer_id not in str(load_node_config(tmp_path, entries[0].name).bootnodes)
    with pytest.raises(DevnetConfigError, match="at least one of our nodes is listed"):
        write_devnet(tmp_path, nodes=1, validators=1, unlisted_nodes=1)


@pytest.mark.parametrize("names", [("x", "x"), ("lean_p2p_5",)])
def test_other_nodes_need_names_of_their_own(tmp_path: Path, names: tuple[str, ...]) -> None:
    with pytest.raises(DevnetConfigError, match="distinct names of their own"):
        write_devnet(tmp_path, nodes=1, validators=2, other_nodes=names)


def test_key_file_is_used_when_privkey_is_absent(tmp_path: Path) -> None:
    entries = write_devnet(tmp_path, nodes=2, validators=2, genesis_time=1)
    path = tmp_path / "validator-config.yaml"
    document = yaml.safe_load(path.read_text())
    for item in document["validators"]:
        del item["privkey"]
    path.write_text(yaml.safe_dump(document))
    assert load_node_config(tmp_path, entries[0].name).key == entries[0].key


def test_unknown_node_name(tmp_path: Path) -> None:
    write_devnet(tmp_path, nodes=1, validators=1, genesis_time=1)
    with pytest.raises(DevnetConfigError, match="no node named"):
        load_node_config(tmp_path, "nobody")


def _edit(path: Path, change: dict[str, object]) -> None:
    document = yaml.safe_load(path.read_text())
    document.update(change)
    path.write_text(yaml.safe_dump(document))


@pytest.mark.parametrize(
    ("file", "change", "message"),
    [
        ("config.yaml", {"VALIDATOR_COUNT": 5}, "GENESIS_VALIDATORS"),
        ("config.yaml", {"GENESIS_TIME": "soon"}, "GENESIS_TIME"),
        ("config.yaml", {"GENESIS_TIME": True}, "GENESIS_TIME"),
        (
            "config.yaml",
            {
                "GENESIS_VALIDATORS": [
                    {"attestation_public_key": "00", "proposal_public_key": "00"}
                ]
                * 4
            },
            "bytes",
        ),
        ("validator-config.yaml", {"validators": "none"}, "validators"),
    ],
)
def test_malformed_files_are_rejected(
    tmp_path: Path, file: str, change: dict[str, object], message: str
) -> None:
    write_devnet(tmp_path, nodes=2, validators=4, genesis_time=1)
    _edit(tmp_path / file, change)
    with pytest.raises(DevnetConfigError, match=message):
        load_devnet(tmp_path)


def test_counts_must_match_the_genesis(tmp_path: Path) -> None:
    write_devnet(tmp_path, nodes=2, validators=4, genesis_time=1)
    path = tmp_path / "validator-config.yaml"
    document = yaml.safe_load(path.read_text())
    document["validators"][0]["count"] = 5
    path.write_text(yaml.safe_dump(document))
    with pytest.raises(DevnetConfigError, match="add up"):
        load_devnet(tmp_path)


def test_bad_enr_and_bad_key_and_bad_yaml(tmp_path: Path) -> None:
    write_devnet(tmp_path, nodes=2, validators=2, genesis_time=1)
    (tmp_path / "nodes.yaml").write_text("- enr:notarecord\n")
    with pytest.raises(DevnetConfigError, match=r"nodes\.yaml"):
        load_devnet(tmp_path)
    (tmp_path / "nodes.yaml").write_text("[unclosed\n")
    with pytest.raises(DevnetConfigError, match="not valid YAML"):
        load_devnet(tmp_path)
    (tmp_path / "nodes.yaml").unlink()
    path = tmp_path / "validator-config.yaml"
    document = yaml.safe_load(path.read_text())
    document["validators"][0]["privkey"] = "12"
    path.write_text(yaml.safe_dump(document))
    with pytest.raises(DevnetConfigError, match="64 hex"):
        load_devnet(tmp_path)


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(DevnetConfigError, match="missing"):
        load_devnet(tmp_path / "absent")


def test_devnet_needs_nodes_and_validators(tmp_path: Path) -> None:
    with pytest.raises(DevnetConfigError):
        write_devnet(tmp_path, nodes=0, validators=1)


def test_config_without_listed_validator_keys_uses_placeholders(tmp_path: Path) -> None:
    # lean-quickstart's config.yaml may carry only the time and the count.
    write_devnet(tmp_path, nodes=2, validators=3, genesis_time=5)
    (tmp_path / "config.yaml").write_text("GENESIS_TIME: 5\nVALIDATOR_COUNT: 3\n")
    genesis, _, _ = load_devnet(tmp_path)
    assert genesis.validator_count == 3
    assert genesis == GenesisSpec.placeholder(5, 3)


def test_placeholder_keys_are_canonical_field_elements_and_distinct() -> None:
    keys = placeholder_public_keys(64)
    flat = [key for pair in keys for key in pair]
    assert len(set(flat)) == len(flat) == 128
    assert keys == placeholder_public_keys(64)  # deterministic
    for key in flat:
        assert len(key) == PUBLIC_KEY_BYTES
        words = [int.from_bytes(key[i : i + 4], "little") for i in range(0, len(key), 4)]
        assert all(word < FIELD_MODULUS for word in words)
        # And our own field-element type accepts every word.
        assert [FieldElementType().decode(key[i : i + 4]) for i in range(0, len(key), 4)] == words


def _enr_text(key: NodeKey, quic_port: int) -> str:
    return EnrRecord.create(key, ip="127.0.0.1", quic=quic_port).text()


def test_nodes_yaml_lists_strings_and_mappings(tmp_path: Path) -> None:
    first, second = NodeKey.generate(), NodeKey.generate()
    path = tmp_path / "nodes.yaml"
    path.write_text(f"- {_enr_text(first, 9001)}\n- enr: {_enr_text(second, 9002)}\n")
    records = load_nodes_yaml(path)
    assert [(r.peer_id, r.quic_port) for r in records] == [
        (first.peer_id, 9001),
        (second.peer_id, 9002),
    ]
    assert dial_addresses(records, first.peer_id) == (
        f"/ip4/127.0.0.1/udp/9002/quic-v1/p2p/{second.peer_id}",
    )


def test_empty_nodes_yaml_lists_no_nodes(tmp_path: Path) -> None:
    path = tmp_path / "nodes.yaml"
    path.write_text("")
    assert load_nodes_yaml(path) == []


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("a: 1\n", "list of ENRs"),
        ("- 42\n", "not an ENR"),
        ("- {address: x}\n", "not an ENR"),
        ("- [unclosed\n", "not valid YAML"),
        ("- \xff\n", "cannot read"),
        ("- enr:notarecord\n", "DECODE_ERROR"),
    ],
)
def test_malformed_nodes_yaml_is_a_config_error(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "nodes.yaml"
    path.write_bytes(content.encode("latin-1"))
    with pytest.raises(DevnetConfigError, match=message):
        load_nodes_yaml(path)


def test_unreadable_nodes_yaml_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "nodes.yaml").mkdir()
    with pytest.raises(DevnetConfigError, match="cannot read"):
        load_nodes_yaml(tmp_path / "nodes.yaml")


def test_nodes_yaml_with_a_forged_record_is_refused(tmp_path: Path) -> None:
    text = _enr_text(NodeKey.generate(), 9001)
    record = EnrRecord.from_text(text)
    forged = EnrRecord(record.signature, record.seq + 1, record.pairs)  # old signature
    path = tmp_path / "nodes.yaml"
    path.write_text(f"- {forged.text()}\n")
    with pytest.raises(DevnetConfigError, match="signature"):
        load_nodes_yaml(path)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"verification": "maybe"}, "verification='maybe'"),
        ({"verification_workers": 0}, "at least 1"),
        ({"verification_priority": "urgent"}, "verification_priority='urgent'"),
        ({"accept_empty_proofs": True}, "needs verification='xmss'"),
    ],
)
def test_verification_options_are_checked_at_construction(
    options: dict[str, object], message: str
) -> None:
    genesis = GenesisSpec.placeholder(0, 1)
    with pytest.raises(ValueError, match=message):
        NodeConfig("n", NodeKey.generate(), genesis, **options)  # type: ignore[arg-type]


def test_a_devnet_with_a_keystore_verifies_and_signs_for_real(tmp_path: Path) -> None:
    from lean_p2p.containers import TEST_SCHEME
    from lean_p2p.node.keys import generate_validator_keys, write_keystore

    keys = generate_validator_keys(2, seed=b"config", scheme=TEST_SCHEME, num_active_slots=4)
    write_keystore(tmp_path, keys)
    write_devnet(tmp_path, nodes=1, validators=2, validator_keys=[k.public_keys for k in keys])
    config = load_node_config(tmp_path, "lean_p2p_0")
    assert (config.verification, config.keystore) == ("xmss", tmp_path)
    assert config.genesis.validator_keys == tuple(k.public_keys for k in keys)
    with pytest.raises(DevnetConfigError, match="3 validator keys for 2 validators"):
        write_devnet(tmp_path, nodes=1, validators=2, validator_keys=[keys[0].public_keys] * 3)

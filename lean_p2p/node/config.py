"""Node configuration: from arguments, or from the devnet files lean tooling writes.

Runs on the main thread before the node starts (plain file I/O, no loop needed).

A devnet directory holds, as lean-quickstart lays it out:

- ``config.yaml``: ``GENESIS_TIME``, ``VALIDATOR_COUNT`` and ``GENESIS_VALIDATORS`` (each
  validator's attestation and proposal public keys, 0x-hex);
- ``validator-config.yaml``: one entry per node: ``name``, ``privkey`` (64 hex),
  ``enrFields`` (``ip``, ``quic``), ``apiPort``, ``metricsPort``, ``isAggregator``,
  ``count`` (how many validators it runs);
- ``validators.yaml``: node name -> the validator indices it runs;
- ``nodes.yaml``: the list of every node's ENR (the static peer list: no discovery);
- ``<name>.key``: each node's secp256k1 identity key, 64 hex characters.

:func:`write_devnet` generates all of them; :func:`load_node_config` reads them back
into the :class:`NodeConfig` one node runs from. Validator public keys are placeholders
derived from the index: like the leanSpec fixtures (``proofSetting: 0``) the devnet runs
with mocked signature crypto.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lean_p2p.containers.xmss import FIELD_MODULUS
from lean_p2p.node.keys import has_keystore
from lean_p2p.node.verification import PRIORITIES
from lean_p2p.runtime.mailbox import DEFAULT_YIELD_TO_LOOP_S
from lean_p2p.wire.enr import EnrError, EnrRecord, parse_enr
from lean_p2p.wire.keys import KeyFileError, NodeKey

__all__ = [
    "PUBLIC_KEY_BYTES",
    "DevnetConfigError",
    "GenesisSpec",
    "NodeConfig",
    "NodeEntry",
    "dial_addresses",
    "genesis_config_yaml",
    "load_devnet",
    "load_node_config",
    "load_nodes_yaml",
    "placeholder_public_keys",
    "write_devnet",
]

PUBLIC_KEY_BYTES = 52  # an XMSS public key in the lstar test parameters

CONFIG_FILE = "config.yaml"
VALIDATOR_CONFIG_FILE = "validator-config.yaml"
VALIDATORS_FILE = "validators.yaml"
NODES_FILE = "nodes.yaml"


class DevnetConfigError(ValueError):
    """A devnet file is missing, malformed, or inconsistent with the others."""


@dataclass(frozen=True, slots=True)
class GenesisSpec:
    """What the genesis state is built from."""

    genesis_time: int
    #: (attestation_public_key, proposal_public_key) per validator index
    validator_keys: tuple[tuple[bytes, bytes], ...]

    @property
    def validator_count(self) -> int:
        return len(self.validator_keys)

    @classmethod
    def placeholder(cls, genesis_time: int, validator_count: int) -> GenesisSpec:
        return cls(genesis_time, tuple(placeholder_public_keys(validator_count)))


@dataclass(frozen=True, slots=True)
class NodeEntry:
    """One node of ``validator-config.yaml``."""

    name: str
    key: NodeKey
    ip: str
    quic_port: int
    api_port: int | None
    metrics_port: int | None
    is_aggregator: bool
    validator_count: int

    def enr(self) -> EnrRecord:
        return EnrRecord.create(self.key, ip=self.ip, quic=self.quic_port)


#: How a node verifies signatures (see :attr:`NodeConfig.verification`).
VERIFICATION_MODES = ("mocked", "xmss")


@dataclass(frozen=True, slots=True)
class NodeConfig:
    """Everything one node runs from."""

    name: str
    key: NodeKey
    genesis: GenesisSpec
    listen_ip: str = "127.0.0.1"
    quic_port: int = 0  # 0: let the OS choose
    validator_indices: tuple[int, ...] = ()
    is_aggregator: bool = False
    bootnodes: tuple[str, ...] = ()  # multiaddrs to dial
    api_port: int | None = None  # None: no HTTP server
    metrics_port: int | None = None  # None or equal to api_port: metrics on the API port
    record_path: Path | None = None  # record every handled event here
    #: "mocked": the store's default verifier, on the loop (structure only; the test
    #: vectors' mode). "xmss": XMSS signatures verified for real, on
    #: ``verification_workers`` threads off the loop, before the store sees a vote.
    verification: str = "mocked"
    #: None: one fewer than the cores (the loop keeps one), at least one
    verification_workers: int | None = None
    #: how the workers are scheduled against the loop (one of
    #: lean_p2p.node.verification.PRIORITIES, which says what each costs)
    verification_priority: str = "nice"
    #: a directory with a validator keystore (``hash-sig-keys/``, see
    #: :mod:`lean_p2p.node.keys`): the validators sign with their real XMSS keys, and
    #: blocks must carry their proposer's signature. None: placeholder signatures.
    keystore: Path | None = None
    #: accept empty aggregate and block proofs, as leanSpec's stand-in prover makes them:
    #: a devnet shared with leanSpec's node. Blocks then need not carry their proposer's
    #: signature (one that does still has it verified). Needs ``verification="xmss"``.
    accept_empty_proofs: bool = False
    #: start from the finalized state another node serves at this URL (its
    #: ``/lean/v0`` API) instead of genesis: see :mod:`lean_p2p.node.checkpoint_sync`
    checkpoint_sync_url: str | None = None
    #: keep the chain in a database here (:mod:`lean_p2p.node.database`) and restart
    #: from it; None: in memory only, a restart begins at genesis (or the checkpoint).
    #: A database that holds a chain takes precedence over ``checkpoint_sync_url``.
    data_dir: Path | None = None
    #: freeze the heap once the node has started (see lean_p2p.node.runtime_policy):
    #: later full collections, pauses of the loop thread, skip what start-up made.
    #: For the whole process: an embedder whose process holds more may turn it off.
    gc_freeze: bool = True
    #: how long the thread that hands the loop a network event, when its put woke the
    #: loop, then waits (the GIL released) for the loop's drain, at most: the GIL
    #: hand-over (lean_p2p.runtime.Mailbox.sender; measured in docs/latency.md). 0 turns
    #: it off.
    yield_to_loop_s: float = DEFAULT_YIELD_TO_LOOP_S
    #: probe each peer's path for larger QUIC datagrams and use the largest it carries
    #: (lean_p2p.driver.pmtu; docs/driver.md); off, every datagram stays 1,200 bytes
    path_mtu_discovery: bool = True
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.verification not in VERIFICATION_MODES:
            raise ValueError(
                f"verification={self.verification!r}: expected one of {VERIFICATION_MODES}"
            )
        if self.yield_to_loop_s < 0:
            raise ValueError(f"yield_to_loop_s must be >= 0, not {self.yield_to_loop_s}")
        if self.verification_workers is not None and self.verification_workers < 1:
            raise ValueError("verification_workers is at least 1")
        if self.verification_priority not in PRIORITIES:
            raise ValueError(
                f"verification_priority={self.verification_priority!r}: "
                f"expected one of {PRIORITIES}"
            )
        if self.accept_empty_proofs and self.verification != "xmss":
            raise ValueError("accept_empty_proofs needs verification='xmss'")

    @property
    def listen_address(self) -> str:
        return f"/ip4/{self.listen_ip}/udp/{self.quic_port}/quic-v1"


def placeholder_public_keys(count: int) -> list[tuple[bytes, bytes]]:
    """Deterministic stand-in XMSS public keys (signatures are mocked in devnets).

    Each key is 13 little-endian words, each a canonical KoalaBear field element: other
    clients (leanSpec's node among them) decode every validator key as field elements
    while verifying a block, and reject a word at or above the modulus.
    """

    def derive(purpose: str, index: int) -> bytes:
        seed = f"lean-p2p devnet {purpose} key {index}".encode()
        # 8 random bytes per 4-byte word, reduced: uniform enough, always canonical.
        wide = hashlib.shake_256(seed).digest(2 * PUBLIC_KEY_BYTES)
        words = (int.from_bytes(wide[i : i + 8], "little") for i in range(0, len(wide), 8))
        return b"".join((word % FIELD_MODULUS).to_bytes(4, "little") for word in words)

    return [(derive("attestation", i), derive("proposal", i)) for i in range(count)]


def write_devnet(
    directory: Path,
    *,
    nodes: int,
    validators: int,
    genesis_time: int | None = None,
    genesis_delay: float = 10.0,
    ip: str = "127.0.0.1",
    base_quic_port: int = 9100,
    base_api_port: int = 5100,
    quic_ports: Sequence[int] | None = None,
    api_ports: Sequence[int] | None = None,
    aggregators: int = 1,
    validator_keys: Sequence[tuple[bytes, bytes]] | None = None,
    other_nodes: Sequence[str] = (),
    unlisted_nodes: int = 0,
) -> list[NodeEntry]:
    """Generate a devnet directory: keys, config, validator assignment and ENRs.

    Validators are assigned round-robin over our nodes, then ``other_nodes`` (index
    ``i`` runs on owner ``i % owners``), so every node proposes in turn. The first
    ``aggregators`` nodes aggregate. Ports are ``base + node index`` unless listed
    explicitly (``quic_ports``, ``api_ports``). ``validator_keys`` are the genesis
    public keys (attestation, proposal) per validator (:mod:`lean_p2p.node.keys` writes
    their keystore); None: placeholder keys, for a devnet whose signatures are mocked.

    ``other_nodes`` names nodes of another implementation (leanSpec's node reads its
    indices from ``validators.yaml`` by ``--node-id``): they get validators but no entry
    in ``validator-config.yaml`` or ``nodes.yaml``, since their keys and addresses are
    theirs to choose. The last ``unlisted_nodes`` of ours are left out of ``nodes.yaml``:
    nobody dials them, they join through the bootnodes they are given.
    """
    if nodes < 1 or validators < 1:
        raise DevnetConfigError("a devnet needs at least one node and one validator")
    if not 0 <= unlisted_nodes < nodes:
        raise DevnetConfigError("at least one of our nodes is listed in nodes.yaml")
    owners = nodes + len(other_nodes)
    if len(set(other_nodes)) != len(other_nodes) or any(
        name.startswith("lean_p2p_") for name in other_nodes
    ):
        raise DevnetConfigError(f"other nodes need distinct names of their own: {other_nodes}")
    quic_ports = list(quic_ports or range(base_quic_port, base_quic_port + nodes))
    api_ports = list(api_ports or range(base_api_port, base_api_port + nodes))
    if len(quic_ports) != nodes or len(api_ports) != nodes:
        raise DevnetConfigError("give one QUIC port and one API port per node")
    directory.mkdir(parents=True, exist_ok=True)
    if genesis_time is None:
        genesis_time = int(time.time() + genesis_delay)
    entries = [
        NodeEntry(
            name=f"lean_p2p_{index}",
            key=NodeKey.generate(),
            ip=ip,
            quic_port=quic_ports[index],
            api_port=api_ports[index],
            metrics_port=api_ports[index],
            is_aggregator=index < aggregators,
            validator_count=len(range(index, validators, owners)),
        )
        for index in range(nodes)
    ]
    if validator_keys is None:
        spec = GenesisSpec.placeholder(genesis_time, validators)
    elif len(validator_keys) != validators:
        raise DevnetConfigError(f"{len(validator_keys)} validator keys for {validators} validators")
    else:
        spec = GenesisSpec(genesis_time, tuple((a, p) for a, p in validator_keys))
    (directory / CONFIG_FILE).write_text(genesis_config_yaml(spec))
    _write_yaml(
        directory / VALIDATOR_CONFIG_FILE,
        {"shuffle": "roundrobin", "validators": [_entry_document(e) for e in entries]},
    )
    names = [entry.name for entry in entries] + list(other_nodes)
    _write_yaml(
        directory / VALIDATORS_FILE,
        {name: list(range(index, validators, owners)) for index, name in enumerate(names)},
    )
    listed = entries[: len(entries) - unlisted_nodes]
    _write_yaml(directory / NODES_FILE, [entry.enr().text() for entry in listed])
    for entry in entries:
        entry.key.write(directory / f"{entry.name}.key")
    return entries


def genesis_config_yaml(spec: GenesisSpec) -> str:
    """``config.yaml`` for ``spec`` as lean clients read it: keys as 0x-hex strings
    (lean-quickstart's form, which leanSpec's node reads too)."""
    document = {
        "GENESIS_TIME": spec.genesis_time,
        "VALIDATOR_COUNT": spec.validator_count,
        "GENESIS_VALIDATORS": [
            {"attestation_public_key": "0x" + a.hex(), "proposal_public_key": "0x" + p.hex()}
            for a, p in spec.validator_keys
        ],
    }
    return yaml.safe_dump(document, sort_keys=False)


def _entry_document(entry: NodeEntry) -> dict[str, Any]:
    return {
        "name": entry.name,
        "privkey": entry.key.to_hex(),
        "enrFields": {"ip": entry.ip, "quic": entry.quic_port},
        "apiPort": entry.api_port,
        "metricsPort": entry.metrics_port,
        "isAggregator": entry.is_aggregator,
        "count": entry.validator_count,
    }


def _write_yaml(path: Path, document: object) -> None:
    path.write_text(yaml.safe_dump(document, sort_keys=False))


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except FileNotFoundError as error:
        raise DevnetConfigError(f"{path} is missing") from error
    except (OSError, UnicodeDecodeError) as error:
        raise DevnetConfigError(f"cannot read {path}: {error}") from error
    except yaml.YAMLError as error:
        raise DevnetConfigError(f"{path} is not valid YAML: {error}") from error


def _require(document: Mapping[str, Any], key: str, kind: type, where: Path) -> Any:
    value = document.get(key)
    # bool is a subclass of int in Python; YAML's ``true`` must not pass as a count
    wrong_bool = isinstance(value, bool) and kind is not bool
    if not isinstance(value, kind) or wrong_bool:
        raise DevnetConfigError(f"{where}: {key!r} must be {kind.__name__}, got {value!r}")
    return value


def _hex_bytes(text: object, length: int, where: str) -> bytes:
    if not isinstance(text, str):
        raise DevnetConfigError(f"{where}: expected hex text, got {text!r}")
    try:
        value = bytes.fromhex(text.removeprefix("0x"))
    except ValueError as error:
        raise DevnetConfigError(f"{where}: not hex: {error}") from error
    if len(value) != length:
        raise DevnetConfigError(f"{where}: expected {length} bytes, got {len(value)}")
    return value


def load_genesis(directory: Path) -> GenesisSpec:
    path = directory / CONFIG_FILE
    document = _read_yaml(path)
    if not isinstance(document, dict):
        raise DevnetConfigError(f"{path}: expected a mapping")
    genesis_time = _require(document, "GENESIS_TIME", int, path)
    count = _require(document, "VALIDATOR_COUNT", int, path)
    listed = document.get("GENESIS_VALIDATORS")
    if listed is None:
        keys = placeholder_public_keys(count)
    else:
        if not isinstance(listed, list) or len(listed) != count:
            raise DevnetConfigError(f"{path}: GENESIS_VALIDATORS must list {count} validators")
        keys = []
        for index, item in enumerate(listed):
            if not isinstance(item, dict):
                raise DevnetConfigError(f"{path}: validator {index} must be a mapping")
            where = f"{path}: validator {index}"
            keys.append(
                (
                    _hex_bytes(item.get("attestation_public_key"), PUBLIC_KEY_BYTES, where),
                    _hex_bytes(item.get("proposal_public_key"), PUBLIC_KEY_BYTES, where),
                )
            )
    return GenesisSpec(genesis_time, tuple(keys))


def _parse_entry(item: object, path: Path, directory: Path) -> NodeEntry:
    if not isinstance(item, dict):
        raise DevnetConfigError(f"{path}: each validator entry must be a mapping")
    name = _require(item, "name", str, path)
    key_file = directory / f"{name}.key"
    try:
        if "privkey" in item:
            key = NodeKey.from_hex(str(item["privkey"]))
        else:
            key = NodeKey.read(key_file)
    except KeyFileError as error:
        raise DevnetConfigError(f"{path}: node {name!r}: {error}") from error
    enr_fields = item.get("enrFields") or {}
    if not isinstance(enr_fields, dict):
        raise DevnetConfigError(f"{path}: node {name!r}: enrFields must be a mapping")
    return NodeEntry(
        name=name,
        key=key,
        ip=str(enr_fields.get("ip", "127.0.0.1")),
        quic_port=int(enr_fields.get("quic", 9000)),
        api_port=_optional_int(item.get("apiPort"), path),
        metrics_port=_optional_int(item.get("metricsPort"), path),
        is_aggregator=bool(item.get("isAggregator", False)),
        validator_count=int(item.get("count", 1)),
    )


def _optional_int(value: object, path: Path) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise DevnetConfigError(f"{path}: port must be an integer, got {value!r}")
    return value


def load_nodes_yaml(path: str | os.PathLike[str]) -> list[EnrRecord]:
    """The verified ENRs listed in a ``nodes.yaml``.

    The file holds a list of ``enr:`` strings, or of mappings with an ``enr`` key; an
    empty file lists no nodes. Anything else malformed, and any record that is not a
    signed v4 record, is a :class:`DevnetConfigError`.
    """
    path = Path(path)
    listed = _read_yaml(path)
    if listed is None:
        return []
    if not isinstance(listed, list):
        raise DevnetConfigError(f"{path}: expected a list of ENRs")
    records = []
    for entry in listed:
        text = entry.get("enr") if isinstance(entry, dict) else entry
        if not isinstance(text, str):
            raise DevnetConfigError(f"{path}: not an ENR entry: {entry!r}")
        try:
            records.append(parse_enr(text))
        except EnrError as error:
            raise DevnetConfigError(f"{path}: {error}") from error
    return records


def dial_addresses(records: Sequence[EnrRecord], own_peer_id: str) -> tuple[str, ...]:
    """Where to dial every node but ourselves, so all nodes can share one ``nodes.yaml``."""
    return tuple(record.dial_multiaddr() for record in records if record.peer_id != own_peer_id)


def load_devnet(directory: Path) -> tuple[GenesisSpec, list[NodeEntry], list[EnrRecord]]:
    """Read and cross-check every devnet file."""
    genesis = load_genesis(directory)
    path = directory / VALIDATOR_CONFIG_FILE
    document = _read_yaml(path)
    if not isinstance(document, dict) or not isinstance(document.get("validators"), list):
        raise DevnetConfigError(f"{path}: expected a 'validators' list")
    entries = [_parse_entry(item, path, directory) for item in document["validators"]]
    total = sum(entry.validator_count for entry in entries)
    # Validators of nodes that are not ours (in validators.yaml only) count too.
    ours = {entry.name for entry in entries}
    total += sum(
        len(indices)
        for name, indices in _assignment(directory, entries).items()
        if name not in ours
    )
    if total != genesis.validator_count:
        raise DevnetConfigError(
            f"{path}: node counts add up to {total} validators, "
            f"{CONFIG_FILE} has {genesis.validator_count}"
        )
    nodes_path = directory / NODES_FILE
    records = load_nodes_yaml(nodes_path) if nodes_path.exists() else []
    return genesis, entries, records


def _assignment(directory: Path, entries: Sequence[NodeEntry]) -> dict[str, tuple[int, ...]]:
    path = directory / VALIDATORS_FILE
    if not path.exists():  # round-robin, as write_devnet assigns
        total = sum(entry.validator_count for entry in entries)
        return {e.name: tuple(range(i, total, len(entries))) for i, e in enumerate(entries)}
    document = _read_yaml(path)
    if not isinstance(document, dict):
        raise DevnetConfigError(f"{path}: expected node name -> validator indices")
    assignment: dict[str, tuple[int, ...]] = {}
    for name, indices in document.items():
        if not isinstance(indices, list) or not all(isinstance(i, int) for i in indices):
            raise DevnetConfigError(f"{path}: {name!r} must list integer indices")
        assignment[str(name)] = tuple(indices)
    return assignment


def load_node_config(
    directory: str | os.PathLike[str], name: str, *, record_path: Path | None = None
) -> NodeConfig:
    """The configuration of node ``name`` in a devnet directory."""
    directory = Path(directory)
    genesis, entries, records = load_devnet(directory)
    by_name = {entry.name: entry for entry in entries}
    if name not in by_name:
        raise DevnetConfigError(f"no node named {name!r}; known: {sorted(by_name)}")
    entry = by_name[name]
    indices = _assignment(directory, entries).get(name, ())
    if any(index >= genesis.validator_count for index in indices):
        raise DevnetConfigError(f"{name}: validator index beyond VALIDATOR_COUNT")
    bootnodes = dial_addresses(records, entry.key.peer_id)
    return NodeConfig(
        name=name,
        key=entry.key,
        genesis=genesis,
        listen_ip=entry.ip,
        quic_port=entry.quic_port,
        validator_indices=indices,
        is_aggregator=entry.is_aggregator,
        bootnodes=bootnodes,
        api_port=entry.api_port,
        metrics_port=entry.metrics_port,
        record_path=record_path,
        # A devnet with a keystore signs for real, and so verifies for real.
        verification="xmss" if has_keystore(directory) else "mocked",
        keystore=directory if has_keystore(directory) else None,
    )

"""Interop harness: our NetworkDriver against leanSpec's node, over QUIC-v1 on loopback.

Threads: the harness's main thread runs the procedure and may block (it is not a node's
event loop and holds no consensus actor: only a fixed six-block demo chain built before
the driver starts). The driver runs on its own trio thread; its events reach the main
thread through a ``queue.Queue``. One reader thread turns leanSpec's output into frozen
log facts on the same queue. leanSpec's node is a child process, stopped on every exit
path (normal end, failed check, exception, SIGINT, SIGTERM).

What it does:

1. writes a genesis ``config.yaml`` (four validators whose placeholder public keys are
   canonical KoalaBear field elements, as leanSpec's key decoder requires);
2. starts our driver on ``127.0.0.1`` and leanSpec's node with our address as bootnode;
3. runs the checks below, each with its own timeout, serving every request leanSpec
   sends (Status, BlocksByRoot, BlocksByRange) from the demo chain;
4. prints a table of checks and exits 1 if any failed (2 for bad arguments).

The demo chain, on the genesis both nodes build from the same file::

    genesis(0) -- first(1) -- second(2) -- third(3)
          \\
           `---- fork_parent(2) -- fork_child(4)

leanSpec fetches a missing parent by root only when the orphan's slot is its head slot
+ 1 (a wider gap is range-fetched instead), and it imports a fetched block only once it
imports that block's parent from gossip. So: gossip ``third`` (it range-fetches slots 1-2
from us: two response chunks), gossip ``first`` (it imports first, then second and third
from its cache), gossip ``fork_child`` (its head is slot 3, so it asks us for
``fork_parent`` by root), gossip ``fork_parent`` (it imports fork_parent, then
fork_child), and finally ask it for all five blocks by root.

leanSpec's node is started through a launcher the harness writes (its own CLI entry,
``lean_spec.cli.main``), which logs what its BlocksByRoot and BlocksByRange requesters
return to its sync (logging only).
Two defects of leanSpec's node (commit 43246bd6) stop BlocksByRoot in each direction:
its responder is never given a block lookup (``set_block_lookup`` has no caller), so it
answers SERVER_ERROR "Block lookup not available"; and its BlocksByRoot requester calls
``close()`` after ``finish_write()`` without the guard its Status and BlocksByRange
requesters have, so aioquic's "Cannot send data after FIN" discards the blocks it read.
By default the launcher changes those two things (the lookup reads the node's store
and wraps a block in an empty proof, as leanSpec's HTTP API does; a second FIN on close
is not an error), and changes 3 and 5 (:data:`LAUNCHER` lists all five; change 4, which
a mixed devnet needs, would import the range-fetched blocks at once, before the block
gossip the harness checks). ``--stock`` leaves leanSpec's behaviour unchanged, and
those two checks then fail.

``--validator`` checks the other direction instead: leanSpec runs validator 0 with XMSS
keys generated first by leanSpec's own ``key_gen`` (``LEAN_ENV=test``), and we check
that its block and its attestation reach us and decode, compare its block with our
builder's, pass its signature through our verifier's structural check, and fetch its
block by root.

leanSpec imports ``numba`` and the Rust prover ``lean_multisig_py``. Without ``--stubs``
the harness writes stand-ins into its temporary directory: ``numba.njit`` returns the
function, and ``lean_multisig_py`` exposes ``setup_prover``, ``aggregate_single_message``,
``merge_many_single_message_proof``, ``split_multi_message_proof_by_message``,
``verify_multi_message_proof_with_messages`` and ``verify_single_message_proof``, with
empty proofs and verification that always succeeds (so block proofs are not checked).
Its three proof builders return ``(None, b"")``: leanSpec unpacks two values.

Run with the project's Python (3.11+); leanSpec needs its own 3.12 interpreter::

    lean-p2p interop --leanspec PATH/TO/leanSpec/src --python PATH/TO/venv/bin/python
"""

from __future__ import annotations

import argparse
import contextlib
import enum
import json
import logging
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, Any

from lean_p2p.consensus import (
    ChainState,
    ConsensusRejection,
    PlaceholderSigner,
    build_block,
    state_transition,
)
from lean_p2p.containers import (
    BlocksByRangeRequest,
    BlocksByRootRequest,
    Checkpoint,
    MultiMessageAggregate,
    SignedAggregatedAttestation,
    SignedAttestation,
    SignedBlock,
    Status,
)
from lean_p2p.driver import DriverConfig, NetworkDriver
from lean_p2p.net.commands import (
    Command,
    Publish,
    SendRequest,
    SendResponseChunk,
    SendResponseEnd,
)
from lean_p2p.net.events import (
    DriverStopped,
    GossipAggregate,
    GossipAttestation,
    GossipBlock,
    InboundRequest,
    PeerConnected,
    RequestCompleted,
    RequestFailed,
    ResponseChunk,
)
from lean_p2p.net.protocol import GossipTopic, ReqRespProtocol
from lean_p2p.node.config import (
    PUBLIC_KEY_BYTES,
    GenesisSpec,
    genesis_config_yaml,
    placeholder_public_keys,
)
from lean_p2p.node.genesis import genesis_block, genesis_state
from lean_p2p.tools.report import print_table, write_json
from lean_p2p.tools.running import INTERRUPTS, FieldsFormatter

VALIDATOR_COUNT = 4
LOOPBACK_LISTEN = "/ip4/127.0.0.1/udp/0/quic-v1"
BLOCK_TOPIC = GossipTopic.BLOCK.topic_string()

COMMON_CHECKS = ("connect", "Status it->us", "Status us->it", "block mesh joined")
#: Our blocks, leanSpec passive (the default).
CHECKS = (
    *COMMON_CHECKS,
    "range sync it->us",
    "our gossip imported by it",
    "BlocksByRoot it->us served",
    "BlocksByRoot us->it fetched",
)
#: Its blocks and votes, leanSpec running validator 0 (``--validator``).
VALIDATOR_CHECKS = (
    *COMMON_CHECKS,
    "its block gossip received by us",
    "its attestation gossip received by us",
    "BlocksByRoot us->it fetched (its block)",
)
#: ``--aggregator``: validator mode plus leanSpec aggregating its subnet's votes.
AGGREGATOR_CHECKS = (*VALIDATOR_CHECKS, "its aggregate gossip received by us")
#: The validator leanSpec runs with ``--validator``, the only one of that genesis: it
#: proposes at every slot. Its first slot can pass unproposed: leanSpec proposes only in
#: a slot's first interval, and its first vote, signed by pure-Python XMSS, can outlast
#: the next slot's first interval on a loaded machine (seen: the vote for slot 0 logged
#: in the fifth second after genesis, and slot 1 unproposed). A validator that proposed
#: only at slot 1 then never proposed again within the timeout (at slot 5 its view is
#: too stale for leanSpec to sign).
LEANSPEC_VALIDATOR_INDEX = 0
VALIDATOR_MODE_VALIDATOR_COUNT = 1


# --------------------------------------------------------------------- genesis file


def interop_genesis(
    genesis_time: int,
    validator_count: int = VALIDATOR_COUNT,
    real_keys: Mapping[int, tuple[bytes, bytes]] | None = None,
) -> GenesisSpec:
    """Our devnet's placeholder keys (canonical field elements, as leanSpec's key
    decoder requires), except the (attestation, proposal) keys of ``real_keys``."""
    real_keys = real_keys or {}
    if any(not 0 <= index < validator_count for index in real_keys):
        raise ValueError(f"validator indices must be below {validator_count}")
    placeholders = placeholder_public_keys(validator_count)
    keys = tuple(real_keys.get(index) or placeholders[index] for index in range(validator_count))
    return GenesisSpec(genesis_time, keys)


# ----------------------------------------------------------------------- demo chain


@dataclass(frozen=True, slots=True)
class DemoChain:
    """Four valid blocks on one genesis: a main chain and a fork (see the module doc)."""

    genesis: SignedBlock
    first: SignedBlock  # slot 1, on genesis
    second: SignedBlock  # slot 2, on first
    third: SignedBlock  # slot 3, on second
    fork_parent: SignedBlock  # slot 2, on genesis
    fork_child: SignedBlock  # slot 4, on fork_parent

    @property
    def main_chain(self) -> tuple[SignedBlock, ...]:
        return (self.genesis, self.first, self.second, self.third)

    @property
    def blocks(self) -> tuple[SignedBlock, ...]:
        return (*self.main_chain, self.fork_parent, self.fork_child)

    def by_root(self, roots: Sequence[bytes]) -> list[SignedBlock]:
        """The blocks we hold among ``roots``, in request order (unknown roots skipped)."""
        held = {block.block.hash_tree_root(): block for block in self.blocks}
        return [held[root] for root in roots if root in held]

    def by_range(self, start_slot: int, count: int) -> list[SignedBlock]:
        """Main-chain blocks with slot in [start, start + count), in slot order."""
        return [b for b in self.main_chain if start_slot <= b.block.slot < start_slot + count]


def root_of(block: SignedBlock) -> bytes:
    return block.block.hash_tree_root()


def build_demo_chain(spec: GenesisSpec) -> DemoChain:
    state = genesis_state(spec)
    genesis = genesis_block(state)
    signer = PlaceholderSigner()
    validator_count = spec.validator_count

    def extend(parent_state: ChainState, parent_root: bytes, slot: int) -> tuple[Any, ...]:
        block, post_state, proofs = build_block(
            parent_state,
            slot=slot,
            proposer_index=slot % validator_count,
            parent_root=parent_root,
            known_block_roots=frozenset(),
            payloads={},
        )
        proof = MultiMessageAggregate(proof=signer.block_proof(block, proofs))
        return SignedBlock(block=block, proof=proof), post_state

    genesis_chain_state = ChainState.from_container(state)
    first, after_first = extend(genesis_chain_state, root_of(genesis), 1)
    second, after_second = extend(after_first, root_of(first), 2)
    third, _ = extend(after_second, root_of(second), 3)
    fork_parent, after_fork_parent = extend(genesis_chain_state, root_of(genesis), 2)
    fork_child, _ = extend(after_fork_parent, root_of(fork_parent), 4)
    return DemoChain(genesis, first, second, third, fork_parent, fork_child)


# ------------------------------------------------------------------ leanSpec's logs


class FactKind(enum.Enum):
    NODE_PEER_ID = "node peer id"
    CONNECTED_TO_BOOTNODE = "connected to bootnode"
    PEER_CONNECTED = "peer connected"
    BLOCK_RECEIVED = "block received"
    BLOCK_PROCESSED = "block processed"
    #: its requester's failure (leanSpec logs BlocksByRoot and BlocksByRange alike)
    REQUEST_ERROR = "request error"
    #: the launcher's log of what its requesters returned to its sync
    BY_ROOT_RETURNED = "by-root returned"
    BY_RANGE_RETURNED = "by-range returned"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class LogFact:
    kind: FactKind
    peer_id: str | None = None
    slot: int | None = None
    roots: tuple[bytes, ...] = ()
    message: str = ""
    text: str = ""


_PEER = r"(?P<peer>[1-9A-HJ-NP-Za-km-z]+)"  # base58 peer id
_ROOT = r"[0-9a-fA-F]{64}"
_PATTERNS: tuple[tuple[FactKind, re.Pattern[str]], ...] = (
    (FactKind.NODE_PEER_ID, re.compile(rf"Node initialized, peer_id={_PEER}\s*$")),
    (FactKind.CONNECTED_TO_BOOTNODE, re.compile(rf"Connected to bootnode, peer_id={_PEER}\s*$")),
    (FactKind.PEER_CONNECTED, re.compile(rf"Peer connected: {_PEER} \(total: \d+\)\s*$")),
    (
        FactKind.BLOCK_RECEIVED,
        re.compile(rf"Block received from peer (?:{_PEER}|None) slot=(?P<slot>\d+)\b"),
    ),
    (
        FactKind.BLOCK_PROCESSED,
        re.compile(
            rf"Block processed slot=(?P<slot>\d+) root=(?:0x)?(?P<roots>{_ROOT}) "
            rf"from peer (?:{_PEER}|None)\s*$"
        ),
    ),
    (
        FactKind.REQUEST_ERROR,
        re.compile(
            r"(?:(?:Error|Timeout) requesting blocks|Range fetch failed|Protocol violation) "
            rf"from {_PEER}(?:: (?P<message>.*))?$"
        ),
    ),
    *(
        (
            kind,
            re.compile(
                rf"{protocol} from {_PEER} returned \d+ block\(s\):"
                rf"(?P<roots>(?: (?:0x)?{_ROOT})*)\s*$"
            ),
        )
        for kind, protocol in (
            (FactKind.BY_ROOT_RETURNED, "BlocksByRoot"),
            (FactKind.BY_RANGE_RETURNED, "BlocksByRange"),
        )
    ),
)
#: ``%(asctime)s %(levelname)-8s %(name)s: %(message)s`` (leanSpec with --no-color)
_LEVEL = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d (?P<level>[A-Z]+)\s+\S+: ")


def parse_log_line(line: str) -> LogFact | None:
    """The fact a line of leanSpec's log states, if it is one the checks use."""
    text = line.rstrip()
    level = _LEVEL.match(text)
    if level is not None and level["level"] in {"ERROR", "CRITICAL"}:
        return LogFact(FactKind.ERROR, text=text)
    if text.startswith("Traceback (most recent call last)"):
        return LogFact(FactKind.ERROR, text=text)
    for kind, pattern in _PATTERNS:
        match = pattern.search(text)
        if match is None:
            continue
        groups = match.groupdict()
        slot = groups.get("slot")
        return LogFact(
            kind,
            peer_id=groups.get("peer"),
            slot=int(slot) if slot is not None else None,
            roots=tuple(
                bytes.fromhex(root.removeprefix("0x"))
                for root in (groups.get("roots") or "").split()
            ),
            message=groups.get("message") or "",
            text=text,
        )
    return None


# ------------------------------------------------------------- leanSpec's process


STAND_IN_MODULES: dict[str, str] = {
    "numba": (
        '"""Stand-in for numba: njit compiles nothing and returns the function."""\n\n\n'
        "def njit(*args, **kwargs):\n"
        "    if len(args) == 1 and callable(args[0]) and not kwargs:\n"
        "        return args[0]\n"
        "    return lambda function: function\n"
    ),
    "lean_multisig_py": (
        '"""Stand-in for the Rust prover: empty proofs, every verification succeeds.\n\n'
        "The three builders return (unused, proof bytes), as the prover's bindings do.\n"
        '"""\n\n\n'
        "def setup_prover(*args, **kwargs):\n"
        "    return None\n\n\n"
        "def aggregate_single_message(*args, **kwargs):\n"
        '    return None, b""\n\n\n'
        "def merge_many_single_message_proof(*args, **kwargs):\n"
        '    return None, b""\n\n\n'
        "def split_multi_message_proof_by_message(*args, **kwargs):\n"
        '    return None, b""\n\n\n'
        "def verify_multi_message_proof_with_messages(*args, **kwargs):\n"
        "    return True\n\n\n"
        "def verify_single_message_proof(*args, **kwargs):\n"
        "    return True\n"
    ),
}

#: Environment variable naming the launcher's changes to apply, comma-separated (see
#: below): empty for leanSpec unchanged.
CHANGES_VARIABLE = "INTEROP_LEANSPEC_CHANGES"
#: All five: a devnet of both implementations needs each.
ALL_CHANGES = "1,2,3,4,5"
#: The harness's: not 4, which would import the blocks it range-fetches at once, and the
#: harness checks that a block we gossip is imported from gossip.
HARNESS_CHANGES = "1,2,3,5"

#: Starts leanSpec's own CLI (``lean_spec.cli.main``). Always: logs what its BlocksByRoot
#: and BlocksByRange requesters hand back to its sync (logging only). Five changes, each
#: the smallest for one defect, applied as CHANGES_VARIABLE names them; the first two
#: let one direction of BlocksByRoot work each:
#: 1. its responder gets a block lookup (leanSpec never calls ``set_block_lookup``);
#: 2. a stream's ``close()`` after ``finish_write()`` no longer raises: its BlocksByRoot
#:    requester closes in a ``finally`` without the guard its Status and BlocksByRange
#:    requesters have, and aioquic refuses a second FIN, so the blocks it read are lost;
#: 3. an attestation target behind the head's justified checkpoint becomes that
#:    checkpoint (its issue #1206, fix proposed in #1207): otherwise an assertion in
#:    ``produce_attestation_data`` ends the node when the walk lands there, which a
#:    devnet of ours beside it reached within a minute;
#: 4. blocks it backfilled are imported once their parent is in its store: its head
#:    sync imports a cached block only as a descendant of a block it has just
#:    processed, so a node that joins late caches the chain and never imports it;
#: 5. its BlocksByRange responder gets a lookup (its canonical chain, blocks wrapped
#:    in an empty proof): like the BlocksByRoot one, it is never given any.
LAUNCHER = """\
import logging
import os
from collections import deque

from lean_spec.cli.main import main
from lean_spec.node.networking.client.reqresp_client import ReqRespClient
from lean_spec.node.networking.transport.quic.stream import QuicStream
from lean_spec.node.node import Node
from lean_spec.node.sync.service import SyncService
from lean_spec.spec.crypto.merkleization import hash_tree_root
from lean_spec.spec.forks import SignedBlock
from lean_spec.spec.forks.lstar.containers import MultiMessageAggregate
from lean_spec.spec.forks.lstar.validator_duties import ValidatorDutiesMixin
from lean_spec.spec.ssz import ByteList512KiB

logger = logging.getLogger("interop")


def _logging_returned_blocks(request, protocol):
    async def request_and_log(self, peer_id, *args, **kwargs):
        blocks = await request(self, peer_id, *args, **kwargs)
        roots = "".join(" " + hash_tree_root(block.block).hex() for block in blocks)
        logger.info("%s from %s returned %d block(s):%s", protocol, peer_id, len(blocks), roots)
        return blocks

    return request_and_log


ReqRespClient.request_blocks_by_root = _logging_returned_blocks(
    ReqRespClient.request_blocks_by_root, "BlocksByRoot"
)
ReqRespClient.request_blocks_by_range = _logging_returned_blocks(
    ReqRespClient.request_blocks_by_range, "BlocksByRange"
)

CHANGES = {c.strip() for c in os.environ.get("INTEROP_LEANSPEC_CHANGES", "").split(",")}

if CHANGES & {"1", "5"}:
    _build_node = Node.from_genesis.__func__

    def _from_genesis_with_block_lookups(cls, config):
        node = _build_node(cls, config)

        async def lookup(root):
            # The store keeps unsigned blocks: wrap one in an empty proof, as leanSpec's
            # HTTP API does when it serves a block.
            block = node.sync_service.store.blocks.get(root)
            if block is None:
                return None
            empty_proof = MultiMessageAggregate(proof=ByteList512KiB(data=b""))
            return SignedBlock(block=block, proof=empty_proof)

        if "1" in CHANGES:
            config.event_source.set_block_lookup(lookup)
            logger.info("change 1: BlocksByRoot responder reads the node's store")

        async def lookup_by_slot(slot):
            # Its canonical block at ``slot``: walk back from the head.
            store = node.sync_service.store
            root = store.head
            while root in store.blocks:
                block = store.blocks[root]
                if block.slot <= slot:
                    if block.slot != slot:
                        return None
                    empty_proof = MultiMessageAggregate(proof=ByteList512KiB(data=b""))
                    return SignedBlock(block=block, proof=empty_proof)
                root = block.parent_root
            return None

        if "5" in CHANGES:
            config.event_source._reqresp_handler.block_by_slot_lookup = lookup_by_slot
            logger.info("change 5: BlocksByRange responder reads the node's store")
        return node

    Node.from_genesis = classmethod(_from_genesis_with_block_lookups)

if "2" in CHANGES:
    _close = QuicStream.close

    async def _close_after_half_close(self):
        try:
            await _close(self)
        except (RuntimeError, ValueError) as error:
            logger.debug("stream close after FIN: %s", error)

    QuicStream.close = _close_after_half_close
    logger.info("change 2: a second FIN on close is not an error")

if "3" in CHANGES:
    _target = ValidatorDutiesMixin.get_attestation_target

    def _target_not_behind_source(self, store):
        # Its issue #1206: the walk can land behind the head's justified checkpoint, and
        # produce_attestation_data then asserts, which ends the node. Its proposed fix
        # (#1207), as every lean client does: vote for the justified checkpoint.
        target = _target(self, store)
        source = store.states[store.head].latest_justified
        if source.slot > target.slot:
            logger.warning(
                "change 3 applied: target slot %d behind source slot %d", target.slot, source.slot
            )
            return source
        return target

    ValidatorDutiesMixin.get_attestation_target = _target_not_behind_source
    logger.info("change 3: an attestation target behind its source is clamped to the source")

if "4" in CHANGES:
    _on_gossip_block = SyncService.on_gossip_block

    async def _on_gossip_block_then_import_backfilled(self, block, peer_id):
        await _on_gossip_block(self, block, peer_id)
        # Its head sync imports a cached block only as a descendant of a block it has
        # just processed: blocks backfilled onto a parent already in its store (all of
        # them, for a node that joins late) would wait for ever.
        cache = self.block_cache
        known = list(self.store.blocks)
        ready = deque(child for root in known for child in cache.get_children(root))
        imported = 0
        while ready:
            pending = ready.popleft()
            self.block_cache.remove(pending.root)
            if pending.root in self.store.blocks:
                continue
            try:
                self.store = self.process_block(self.store, pending.block)
            except Exception as error:
                logger.debug("backfilled block at slot %s refused: %s", pending.slot, error)
                continue
            imported += 1
            ready.extend(self.block_cache.get_children(pending.root))
        if imported:
            logger.info("change 4 applied: imported %d backfilled block(s)", imported)
            self._replay_pending_attestations()
            await self._check_sync_complete()

    SyncService.on_gossip_block = _on_gossip_block_then_import_backfilled
    logger.info("change 4: backfilled blocks whose parent is known are imported")

main()
"""


#: Run by leanSpec's interpreter (``--validator``): one validator's two XMSS keys in the
#: ream/zeam layout its ``--validator-keys`` loads; prints the public keys as JSON.
KEYGEN = """\
import json
import sys
from pathlib import Path

import yaml

from lean_spec.spec.crypto.xmss.interface import TARGET_SIGNATURE_SCHEME
from lean_spec.spec.forks import Slot
from lean_spec.spec.ssz import Uint64

directory, node_id = Path(sys.argv[1]), sys.argv[2]
index, active_slots = int(sys.argv[3]), int(sys.argv[4])
keys = directory / "hash-sig-keys"
keys.mkdir(parents=True, exist_ok=True)
public = {}
for purpose in ("attestation", "proposal"):
    pair = TARGET_SIGNATURE_SCHEME.key_gen(Slot(0), Uint64(active_slots))
    (keys / f"validator_{index}_{purpose}_sk.ssz").write_bytes(pair.secret_key.encode_bytes())
    public[purpose] = pair.public_key.encode_bytes().hex()
entry = {"index": index}
for purpose in ("attestation", "proposal"):
    entry[f"{purpose}_public_key_hex"] = "0x" + public[purpose]
    entry[f"{purpose}_private_key_file"] = f"validator_{index}_{purpose}_sk.ssz"
manifest = {
    "key_scheme": "interop harness test keys",
    "hash_function": "Poseidon",
    "encoding": "TargetSum",
    "lifetime": active_slots,
    "log_num_active_epochs": max(active_slots - 1, 0).bit_length(),
    "num_active_epochs": active_slots,
    "num_validators": 1,
    "validators": [entry],
}
(keys / "validator-keys-manifest.yaml").write_text(yaml.safe_dump(manifest))
(directory / "validators.yaml").write_text(yaml.safe_dump({node_id: [index]}))
print(json.dumps(public))
"""
LEANSPEC_NODE_ID = "lean_spec_0"
#: Slots its keys can sign for: enough for a run (4 s each), few enough to generate fast.
KEY_ACTIVE_SLOTS = 64


def parse_keygen_output(output: str) -> tuple[bytes, bytes]:
    """(attestation, proposal) public keys from the key generator's last output line."""
    lines = output.strip().splitlines()
    if not lines:
        raise ValueError("the key generator printed nothing")
    document = json.loads(lines[-1])
    keys = (bytes.fromhex(document["attestation"]), bytes.fromhex(document["proposal"]))
    if any(len(key) != PUBLIC_KEY_BYTES for key in keys):
        raise ValueError(f"public keys must be {PUBLIC_KEY_BYTES} bytes")
    return keys


def leanspec_child_environment(python_path: Sequence[Path], changes: str) -> dict[str, str]:
    """The environment leanSpec's interpreter runs in: ours, without our venv, with
    ``python_path`` first on its path (so stand-ins win over its site-packages) and the
    launcher's ``changes`` (:data:`CHANGES_VARIABLE`)."""
    env = dict(os.environ)
    env.pop("VIRTUAL_ENV", None)
    env["PYTHONPATH"] = os.pathsep.join(str(path) for path in python_path)
    env[CHANGES_VARIABLE] = changes
    return env


def write_stand_ins(directory: Path) -> Path:
    for name, source in STAND_IN_MODULES.items():
        package = directory / name
        package.mkdir(parents=True, exist_ok=True)
        (package / "__init__.py").write_text(source)
    return directory


def leanspec_revision(tree: Path) -> str:
    """The git commit of the leanSpec tree, when it is a checkout."""
    try:
        completed = subprocess.run(
            ["git", "-C", str(tree), "rev-parse", "--short=8", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown (git not available)"
    revision = completed.stdout.strip()
    return revision if completed.returncode == 0 and revision else "unknown (not a git checkout)"


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def leanspec_command(
    python: Path,
    launcher: Path,
    genesis: Path,
    bootnode: str,
    listen: str,
    *,
    verbose: bool = False,
    validator_keys: Path | None = None,
    aggregator: bool = False,
) -> list[str]:
    return [
        str(python),
        str(launcher),
        "--genesis",
        str(genesis),
        "--bootnode",
        bootnode,
        "--listen",
        listen,
        "--api-port",
        "0",
        "--no-color",
        *(["--verbose"] if verbose else []),
        *(
            ["--validator-keys", str(validator_keys), "--node-id", LEANSPEC_NODE_ID]
            if validator_keys is not None
            else []
        ),
        *(["--is-aggregator"] if aggregator else []),
    ]


def stop_process(process: subprocess.Popen[str], grace: float = 5.0) -> int | None:
    """Stop ``process`` (its own session: SIGTERM to its group, then SIGKILL)."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(grace)
    return process.returncode


@dataclass(frozen=True, slots=True)
class LogLine:
    text: str
    fact: LogFact | None


@dataclass(frozen=True, slots=True)
class ProcessExited:
    returncode: int | None


def read_output(stream: IO[str], log_file: IO[str], inbox: queue.Queue[object]) -> None:
    """Reader thread: each line to the log file and, parsed, to the main thread."""
    for line in stream:
        log_file.write(line)
        log_file.flush()
        inbox.put(LogLine(line.rstrip("\n"), parse_log_line(line)))
    inbox.put(ProcessExited(None))


# ----------------------------------------------------------------------- the checks


@dataclass(frozen=True, slots=True)
class CheckResult:
    check: str
    passed: bool
    detail: str

    def row(self) -> dict[str, str]:
        return {
            "check": self.check,
            "result": "pass" if self.passed else "FAIL",
            "detail": self.detail,
        }


def result_rows(
    results: Sequence[CheckResult], checks: Sequence[str] = CHECKS
) -> list[dict[str, str]]:
    """One row per check in ``checks`` order; a check never reached is a failure."""
    by_name = {result.check: result for result in results}
    return [by_name.get(name, CheckResult(name, False, "not reached")).row() for name in checks]


def exit_code(rows: Sequence[dict[str, str]]) -> int:
    return 0 if rows and all(row["result"] == "pass" for row in rows) else 1


@dataclass(frozen=True, slots=True)
class ServedRequest:
    protocol: ReqRespProtocol
    request: object
    chunks: int
    block_roots: tuple[bytes, ...]  # of the blocks we answered with


@dataclass
class OutboundRequest:
    chunks: list[object] = field(default_factory=list)
    done: bool = False
    failure: RequestFailed | None = None


class InteropRun:
    """The procedure; every method runs on the harness's main thread."""

    def __init__(
        self, chain: DemoChain, progress: Callable[[str], None], genesis: ChainState
    ) -> None:
        self.chain = chain
        self.genesis = genesis  # the state both nodes start from
        self.progress = progress
        self.inbox: queue.Queue[object] = queue.Queue()
        self.driver = NetworkDriver(DriverConfig(listen_address=LOOPBACK_LISTEN), self.inbox.put)
        genesis_checkpoint = Checkpoint(root=root_of(chain.genesis), slot=0)
        self.status = Status(finalized=genesis_checkpoint, head=genesis_checkpoint)
        self.results: list[CheckResult] = []
        self.log_lines: list[str] = []
        self.facts: list[LogFact] = []
        self.connected: list[PeerConnected] = []
        self.gossip: list[GossipBlock | GossipAttestation | GossipAggregate] = []
        self.served: list[tuple[str, ServedRequest]] = []
        self.outbound: dict[int, OutboundRequest] = {}
        self.leanspec_peer_id: str | None = None
        self.leanspec_exited = False
        self.driver_stopped: DriverStopped | None = None
        self._next_request_id = 1

    # -- event handling (main thread)

    def send(self, command: Command) -> None:
        if not self.driver.send(command):
            raise RuntimeError(f"driver refused {type(command).__name__}")

    def handle(self, item: object) -> None:
        match item:
            case LogLine(text=text, fact=fact):
                self.log_lines.append(text)
                if fact is not None:
                    self.facts.append(fact)
                    if fact.kind is FactKind.NODE_PEER_ID:
                        self.leanspec_peer_id = fact.peer_id
                    if fact.kind in {FactKind.BLOCK_PROCESSED, FactKind.ERROR}:
                        self.progress(f"leanSpec: {fact.text}")
            case ProcessExited():
                self.leanspec_exited = True
            case PeerConnected():
                self.connected.append(item)
            case GossipBlock() | GossipAttestation() | GossipAggregate():
                self.gossip.append(item)
            case InboundRequest():
                self.serve(item)
            case ResponseChunk(request_id=request_id, payload=payload):
                if request_id in self.outbound:
                    self.outbound[request_id].chunks.append(payload)
            case RequestCompleted(request_id=request_id):
                if request_id in self.outbound:
                    self.outbound[request_id].done = True
            case RequestFailed(request_id=request_id):
                if request_id in self.outbound:
                    self.outbound[request_id].done = True
                    self.outbound[request_id].failure = item
            case DriverStopped():
                self.driver_stopped = item

    def serve(self, event: InboundRequest) -> None:
        request = event.request
        payloads: list[Status | SignedBlock]
        if isinstance(request, Status):
            payloads = [self.status]
        elif isinstance(request, BlocksByRootRequest):
            payloads = list(self.chain.by_root(request.roots))
        else:  # the driver decodes exactly these three request types
            payloads = list(self.chain.by_range(request.start_slot, request.count))
        for payload in payloads:
            self.send(SendResponseChunk(event.request_id, payload))
        self.send(SendResponseEnd(event.request_id))
        roots = tuple(root_of(p) for p in payloads if isinstance(p, SignedBlock))
        served = ServedRequest(event.protocol, request, len(payloads), roots)
        self.served.append((event.peer_id, served))
        self.progress(
            f"served {describe_request(request)} to {short(event.peer_id)}: "
            f"{len(payloads)} chunk(s)"
        )

    def wait_until(self, condition: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not condition():
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.leanspec_exited or self.driver_stopped is not None:
                return condition()
            try:
                # Bounded wait: some conditions (the mesh) change without an event.
                item = self.inbox.get(timeout=min(remaining, 0.2))
            except queue.Empty:
                continue
            self.handle(item)
        return True

    def request(self, peer_id: str, request: Status | BlocksByRootRequest) -> OutboundRequest:
        request_id = self._next_request_id
        self._next_request_id += 1
        record = self.outbound[request_id] = OutboundRequest()
        self.send(SendRequest(peer_id, request_id, request))
        return record

    def wait_for(self, record: OutboundRequest, timeout: float) -> bool:
        return self.wait_until(lambda: record.done, timeout)

    def record(self, check: str, passed: bool, detail: str) -> bool:
        self.results.append(CheckResult(check, passed, detail))
        self.progress(f"{'pass' if passed else 'FAIL'}: {check}: {detail}")
        return passed

    def fact(self, kind: FactKind, root: bytes | None = None) -> LogFact | None:
        for fact in self.facts:
            if fact.kind is kind and (root is None or root in fact.roots):
                return fact
        return None

    def served_to(self, peer_id: str, protocol: ReqRespProtocol) -> list[ServedRequest]:
        return [s for peer, s in self.served if peer == peer_id and s.protocol is protocol]

    def check_served(
        self,
        check: str,
        peer_id: str,
        *,
        protocol: ReqRespProtocol,
        trigger: SignedBlock,
        expected_roots: tuple[bytes, ...],
        timeout: float,
    ) -> bool:
        """Gossip ``trigger``; pass when it requests ``expected_roots`` from us with
        ``protocol``, we answer with those blocks, and its requester returns them all."""
        facts_before = len(self.facts)
        served_before = len(self.served)
        self.send(Publish(GossipTopic.BLOCK, trigger))

        def outcome() -> tuple[bool, bool, str]:
            answered = [
                served
                for peer, served in self.served[served_before:]
                if peer == peer_id and served.protocol is protocol and served.block_roots
            ]
            return judge_served(
                answered[0] if answered else None,
                expected_roots,
                self.facts[facts_before:],
            )

        self.wait_until(lambda: outcome()[1], timeout)
        passed, _, detail = outcome()
        return self.record(check, passed, detail)

    # -- the procedure

    def wait_for_connection(self, startup_timeout: float, timeout: float) -> str | None:
        """Its peer id once it is connected to us (the "connect" check), else None."""
        self.wait_until(lambda: self.leanspec_peer_id is not None, startup_timeout)

        def connected() -> bool:
            return any(c.peer_id == self.leanspec_peer_id for c in self.connected)

        peer_id = self.leanspec_peer_id
        if peer_id is None or not self.wait_until(connected, startup_timeout):
            reason = "leanSpec exited" if self.leanspec_exited else "no connection in time"
            self.record("connect", False, reason)
            return None
        self.wait_until(lambda: self.fact(FactKind.CONNECTED_TO_BOOTNODE) is not None, timeout)
        dialled = self.fact(FactKind.CONNECTED_TO_BOOTNODE) is not None
        ours = next(c for c in self.connected if c.peer_id == peer_id)
        self.record(
            "connect",
            True,
            f"PeerConnected {short(peer_id)} ({ours.direction.name})"
            + ("; its log: Connected to bootnode" if dialled else ""),
        )
        return peer_id

    def run_common_checks(self, peer_id: str, timeout: float) -> None:
        # Status: it asks on connect; we ask once.
        self.wait_until(lambda: bool(self.served_to(peer_id, ReqRespProtocol.STATUS)), timeout)
        served = self.served_to(peer_id, ReqRespProtocol.STATUS)
        self.record(
            "Status it->us",
            bool(served),
            f"its Status request answered with ours ({served[0].chunks} chunk)"
            if served
            else f"no Status request from it within {timeout:.0f} s",
        )
        status = self.request(peer_id, self.status)
        self.wait_for(status, timeout)
        theirs = [c for c in status.chunks if isinstance(c, Status)]
        self.record(
            "Status us->it",
            status.done and status.failure is None and len(theirs) == 1,
            f"its Status: head slot {theirs[0].head.slot}, finalized slot "
            f"{theirs[0].finalized.slot}"
            if theirs
            else describe_outcome(status, timeout),
        )

        def meshed() -> bool:
            subscribed, mesh = self.driver.statistics()["topics"].get(BLOCK_TOPIC, (0, 0))
            return bool(subscribed >= 1 and mesh >= 1)

        self.record(
            "block mesh joined",
            self.wait_until(meshed, timeout),
            f"block topic (subscribed peers, mesh peers) = "
            f"{self.driver.statistics()['topics'].get(BLOCK_TOPIC)}",
        )

    def run_block_checks(self, peer_id: str, timeout: float) -> None:
        """Our blocks: range sync, gossip import and BlocksByRoot both ways."""
        chain = self.chain
        # Slot 3 with slots 1 and 2 unknown: leanSpec range-fetches [1, 2] from us.
        self.progress("gossip third (slot 3; its ancestors at slots 1 and 2 are unknown to it)")
        self.check_served(
            "range sync it->us",
            peer_id,
            protocol=ReqRespProtocol.BLOCKS_BY_RANGE,
            trigger=chain.third,
            expected_roots=(root_of(chain.first), root_of(chain.second)),
            timeout=timeout,
        )

        # The missing ancestor by gossip: it imports first, then second and third.
        self.progress("gossip first (slot 1, on genesis)")
        self.send(Publish(GossipTopic.BLOCK, chain.first))
        first_root = root_of(chain.first)
        imported = self.wait_until(
            lambda: self.fact(FactKind.BLOCK_PROCESSED, first_root) is not None, timeout
        )
        received = [f for f in self.facts if f.kind is FactKind.BLOCK_RECEIVED]
        self.record(
            "our gossip imported by it",
            imported,
            f"its log: Block processed slot=1 root={first_root.hex()[:12]}.."
            if imported
            else f"{len(received)} 'Block received' line(s), no import of slot 1",
        )

        # Slot 4 on an unknown slot-2 parent while its head is at slot 3: the gap is zero,
        # so it asks for the parent by root instead of by range.
        self.progress("gossip fork_child (slot 4; its parent, slot 2 on genesis, is unknown)")
        fork_parent_root = root_of(chain.fork_parent)
        self.check_served(
            "BlocksByRoot it->us served",
            peer_id,
            protocol=ReqRespProtocol.BLOCKS_BY_ROOT,
            trigger=chain.fork_child,
            expected_roots=(fork_parent_root,),
            timeout=timeout,
        )

        # leanSpec imports a fetched block only from gossip or as the child of a block it
        # imports, so gossip fork_parent: it imports it, then fork_child from its cache.
        self.progress("gossip fork_parent (slot 2, on genesis)")
        self.send(Publish(GossipTopic.BLOCK, chain.fork_parent))
        self.wait_until(
            lambda: self.fact(FactKind.BLOCK_PROCESSED, fork_parent_root) is not None, timeout
        )

        wanted = [
            root_of(b)
            for b in (chain.fork_child, chain.third, chain.second, chain.first, chain.fork_parent)
        ]
        self.fetch_by_root("BlocksByRoot us->it fetched", peer_id, wanted, timeout)

    def fetch_by_root(
        self, check: str, peer_id: str, wanted: Sequence[bytes], timeout: float
    ) -> bool:
        """Ask it for ``wanted`` by root until every block comes back, root-checked."""
        # Imports are asynchronous on its side; ask again until it holds every block.
        detail = ""
        passed = False
        deadline = time.monotonic() + timeout
        while not passed and time.monotonic() < deadline:
            fetch = self.request(peer_id, BlocksByRootRequest(roots=tuple(wanted)))
            self.wait_for(fetch, timeout)
            passed, detail = judge_fetch(wanted, fetch)
            if fetch.failure is not None and fetch.failure.result_code is not None:
                break  # an error response will not change on retry
            if not passed:
                self.wait_until(lambda: False, 1.0)
        return self.record(check, passed, detail)

    def first_from(self, peer_id: str, kind: type[Any]) -> Any:
        return next((e for e in self.gossip if isinstance(e, kind) and e.peer_id == peer_id), None)

    def run_aggregator_check(self, peer_id: str, timeout: float) -> None:
        """Its aggregate of its own subnet's votes (interval 2 of a slot)."""
        self.wait_until(lambda: self.first_from(peer_id, GossipAggregate) is not None, timeout)
        event = self.first_from(peer_id, GossipAggregate)
        self.record(
            "its aggregate gossip received by us",
            event is not None,
            f"GossipAggregate slot {event.aggregate.data.slot}, participants "
            f"{describe_participants(event.aggregate)}, {len(event.aggregate.proof.proof)}-byte "
            "proof (the stand-in prover's)"
            if event is not None
            else f"no aggregate from it within {timeout:.0f} s",
        )

    def run_validator_checks(self, peer_id: str, timeout: float) -> None:
        """Its blocks and votes: leanSpec runs a validator and we only listen and fetch."""

        def first_from_it(kind: type[Any]) -> Any:
            return next(
                (e for e in self.gossip if isinstance(e, kind) and e.peer_id == peer_id), None
            )

        # Its validator proposes at every slot from slot 1 (4 s after genesis) and attests
        # every slot; the first block it proposes is checked.
        self.progress("waiting for its validator's block and attestation gossip")
        self.wait_until(lambda: first_from_it(GossipBlock) is not None, timeout)
        block_event = first_from_it(GossipBlock)
        self.record(
            "its block gossip received by us",
            block_event is not None,
            f"GossipBlock slot {block_event.block.block.slot}, proposer "
            f"{block_event.block.block.proposer_index}, "
            f"{len(block_event.block.block.body.attestations)} vote(s) in its body, "
            f"root {root_of(block_event.block).hex()[:12]}..; "
            + compare_with_our_builder(block_event.block, self.chain)
            + "; "
            + judge_with_our_state_transition(block_event.block, self.chain, self.genesis)
            if block_event is not None
            else f"no block from it within {timeout:.0f} s",
        )
        self.wait_until(lambda: first_from_it(GossipAttestation) is not None, timeout)
        vote = first_from_it(GossipAttestation)
        valid = vote is not None and signature_verdict(vote.attestation, self.genesis)
        self.record(
            "its attestation gossip received by us",
            valid,
            f"GossipAttestation validator {vote.attestation.validator_index}, slot "
            f"{vote.attestation.data.slot}, {len(vote.attestation.signature)}-byte XMSS "
            f"signature, verified by ours (C): {'VALID' if valid else 'NOT VALID'}"
            if vote is not None
            else f"no attestation from it within {timeout:.0f} s",
        )
        if block_event is None:
            self.record("BlocksByRoot us->it fetched (its block)", False, "no block of its own")
            return
        self.fetch_by_root(
            "BlocksByRoot us->it fetched (its block)",
            peer_id,
            [root_of(block_event.block)],
            timeout,
        )


RETURNED_KIND = {
    ReqRespProtocol.BLOCKS_BY_ROOT: FactKind.BY_ROOT_RETURNED,
    ReqRespProtocol.BLOCKS_BY_RANGE: FactKind.BY_RANGE_RETURNED,
}


def judge_served(
    served: ServedRequest | None, expected_roots: Sequence[bytes], facts: Sequence[LogFact]
) -> tuple[bool, bool, str]:
    """(passed, settled, detail) of one block request leanSpec sent us: we answered it
    with exactly the ``expected_roots`` blocks, and its requester returned every one of
    them to its sync (the launcher logs what it returned; leanSpec logs a failure)."""
    if served is None:
        return False, False, "no request from it answered with blocks"
    ours = f"served {describe_request(served.request)}: {len(served.block_roots)} block(s)"
    if set(served.block_roots) != set(expected_roots):
        return False, True, f"{ours}, expected {len(expected_roots)} other block(s)"
    returned = [fact for fact in facts if fact.kind is RETURNED_KIND[served.protocol]]
    if any(set(expected_roots) <= set(fact.roots) for fact in returned):
        return True, True, f"{ours}; its requester returned them (roots match)"
    errors = [fact for fact in facts if fact.kind is FactKind.REQUEST_ERROR]
    if errors:
        return False, True, f'{ours}; its requester failed: "{errors[0].message}"'
    if returned:
        counts = ", ".join(str(len(fact.roots)) for fact in returned)
        return False, True, f"{ours}; its requester returned {counts} of them"
    return False, False, f"{ours}; its requester's result not in its log"


#: Counter names that mean our driver refused, dropped or failed something.
_PROBLEM_WORDS = (
    "invalid",
    "reject",
    "fail",
    "error",
    "timed_out",
    "timeout",
    "overflow",
    "drop",
    "malformed",
    "oversized",
    "refused",
    "signed_or_attributed",
)


def problem_counters(statistics: dict[str, Any]) -> dict[str, int]:
    """The non-zero counters of ``NetworkDriver.statistics()`` that name a problem."""
    found: dict[str, int] = {}
    for section, counters in statistics.items():
        if not isinstance(counters, dict):
            continue
        for name, value in counters.items():
            problem = any(word in name for word in _PROBLEM_WORDS)
            if problem and isinstance(value, int) and not isinstance(value, bool) and value:
                found[f"{section}.{name}"] = value
    return found


def describe_path_mtu(statistics: dict[str, Any]) -> str:
    """One line on the driver's path-MTU discovery (``lean_p2p.driver.pmtu``)."""
    path_mtu = statistics.get("path_mtu") or {}
    if not path_mtu.get("probes_sent"):
        return "no probe sent"
    widened = path_mtu.get("widened") or {}
    sizes = ", ".join(f"{size:,} bytes" for size in sorted(widened)) or "none"
    return (
        f"{path_mtu['probes_sent']} probe(s), {path_mtu.get('probes_acknowledged', 0)} "
        f"acknowledged, {path_mtu.get('probes_lost', 0)} lost; datagrams now: {sizes}"
    )


def describe_participants(aggregate: SignedAggregatedAttestation) -> str:
    return str(aggregate.proof.participants.indices())


def signature_verdict(attestation: SignedAttestation, genesis: ChainState) -> bool:
    """Whether leanSpec's XMSS signature verifies with our verifier, by the voter's
    attestation key in the genesis registry (its validator's key, made by leanSpec)."""
    from lean_p2p.consensus.hashing import attestation_data_root
    from lean_p2p.crypto import verify

    validators = genesis.validators
    index = attestation.validator_index
    if index >= len(validators):
        return False
    data = attestation.data
    key = validators[index].attestation_public_key
    return verify(key, data.slot, attestation_data_root(data), attestation.signature).valid


def compare_with_our_builder(block: SignedBlock, chain: DemoChain) -> str:
    """How its block compares with the block our builder made for the same slot and
    parent (same genesis, no votes: the same block, state root included, if both agree)."""
    ours = [
        b
        for b in chain.blocks
        if b.block.slot == block.block.slot and b.block.parent_root == block.block.parent_root
    ]
    if not ours:
        return "our builder made no block for that slot and parent"
    if root_of(ours[0]) == root_of(block):
        return "same root as our builder's block for that slot and parent"
    return "differs from our builder's block for that slot and parent"


def judge_with_our_state_transition(
    block: SignedBlock, chain: DemoChain, genesis: ChainState
) -> str:
    """Whether our state transition accepts its block (only a block on genesis: we hold
    no other state of its chain). Votes in the block are processed too."""
    if block.block.parent_root != root_of(chain.genesis):
        return "its parent is not genesis: not run through our state transition"
    try:
        state_transition(genesis, block.block)
    except ConsensusRejection as rejection:
        return f"our state transition REJECTS it: {rejection}"
    return "our state transition accepts it (same post-state root)"


def judge_fetch(wanted: Sequence[bytes], fetch: OutboundRequest) -> tuple[bool, str]:
    """Pass when every requested root came back once, each block's root recomputed."""
    if not fetch.done:
        return False, "no answer"
    if fetch.failure is not None:
        return False, describe_failure(fetch.failure)
    roots = [root_of(c) for c in fetch.chunks if isinstance(c, SignedBlock)]
    unexpected = [r for r in roots if r not in wanted]
    if unexpected or len(set(roots)) != len(roots):
        return False, f"{len(unexpected)} block(s) not requested, {len(roots)} returned"
    if set(roots) != set(wanted):
        return False, f"{len(roots)}/{len(wanted)} requested blocks returned"
    return True, f"{len(roots)}/{len(wanted)} blocks, each block's hash_tree_root = requested root"


def describe_request(request: object) -> str:
    if isinstance(request, BlocksByRangeRequest):
        return f"BlocksByRange(start_slot={request.start_slot}, count={request.count})"
    if isinstance(request, BlocksByRootRequest):
        return f"BlocksByRoot({len(request.roots)} root(s))"
    return type(request).__name__


def describe_failure(failure: RequestFailed) -> str:
    code = f", code {int(failure.result_code)}" if failure.result_code is not None else ""
    message = f' "{failure.message}"' if failure.message else ""
    return f"{failure.failure.name}{code}{message}"


def describe_outcome(record: OutboundRequest, timeout: float) -> str:
    if not record.done:
        return f"no answer within {timeout:.0f} s"
    if record.failure is not None:
        return describe_failure(record.failure)
    return f"{len(record.chunks)} chunk(s)"


def short(peer_id: str) -> str:
    return peer_id if len(peer_id) <= 16 else f"{peer_id[:8]}..{peer_id[-6:]}"


# ---------------------------------------------------------------------- entry point


class Terminated(Exception):
    """SIGTERM, raised on the main thread so every cleanup path runs."""


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated(signal.Signals(signum).name)


@contextlib.contextmanager
def leanspec_process(
    command: Sequence[str],
    *,
    env: dict[str, str],
    cwd: Path,
    log_path: Path,
    inbox: queue.Queue[object],
    progress: Callable[[str], None],
) -> Iterator[subprocess.Popen[str]]:
    with log_path.open("w") as log_file:
        process = subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # its own group: stopped as a whole, spared our Ctrl-C
        )
        assert process.stdout is not None
        reader = threading.Thread(
            target=read_output,
            args=(process.stdout, log_file, inbox),
            name="leanspec-output",
            daemon=True,
        )
        reader.start()
        # A second Ctrl-C exits at once: leanSpec's process group must not outlive us.
        with contextlib.ExitStack() as hard_exit:
            hard_exit.enter_context(
                INTERRUPTS.cleanup_on_exit(lambda: os.killpg(process.pid, signal.SIGKILL))
            )
            try:
                yield process
            finally:
                stopping = time.monotonic()
                returncode = stop_process(process)
                reader.join(5)
                progress(
                    f"leanSpec stopped: exit code {returncode} "
                    f"after {time.monotonic() - stopping:.1f} s"
                )


def run_interop(arguments: argparse.Namespace) -> int:
    """Run the harness with the options of ``lean-p2p interop`` (:mod:`lean_p2p.cli.interop`)."""
    started = time.monotonic()

    def progress(text: str) -> None:
        print(f"[{time.monotonic() - started:6.1f}s] {text}", flush=True)

    signal.signal(signal.SIGTERM, _raise_terminated)
    # Our side's log (py-libp2p's warnings, our driver's rejections) between the progress
    # lines, named, with the structured fields our driver attaches.
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(FieldsFormatter("ours: %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.WARNING, handlers=[handler])
    logging.getLogger("lean_p2p").setLevel(logging.INFO)
    progress(f"leanSpec tree {arguments.leanspec}: commit {leanspec_revision(arguments.leanspec)}")
    checks = (
        AGGREGATOR_CHECKS
        if arguments.aggregator
        else VALIDATOR_CHECKS
        if arguments.validator
        else CHECKS
    )
    with tempfile.TemporaryDirectory(prefix="interop-leanspec-") as temporary:
        workdir = Path(temporary)
        stubs = arguments.stubs or write_stand_ins(workdir / "stand-ins")
        env = leanspec_child_environment(
            [arguments.leanspec, stubs], "" if arguments.stock else HARNESS_CHANGES
        )
        real_keys: dict[int, tuple[bytes, bytes]] = {}
        validator_keys: Path | None = None
        if arguments.validator:
            # Test-size XMSS parameters: production key generation takes minutes in
            # leanSpec's pure-Python XMSS (numba is a stand-in).
            env["LEAN_ENV"] = "test"
            validator_keys = workdir / "validator-keys"
            try:
                real_keys[LEANSPEC_VALIDATOR_INDEX] = generate_validator_keys(
                    arguments.python, validator_keys, env, progress
                )
            except (
                KeyboardInterrupt,
                Terminated,
                OSError,
                ValueError,
                subprocess.SubprocessError,
            ) as error:
                progress(f"validator key generation failed: {error!r}")
                placeholder = interop_genesis(0)
                idle = InteropRun(
                    build_demo_chain(placeholder),
                    progress,
                    ChainState.from_container(genesis_state(placeholder)),
                )
                return finish(idle, arguments, checks)
        spec = interop_genesis(
            int(time.time()),
            VALIDATOR_MODE_VALIDATOR_COUNT if arguments.validator else VALIDATOR_COUNT,
            real_keys=real_keys,
        )
        chain = build_demo_chain(spec)
        progress(
            "demo chain: "
            + ", ".join(
                f"{name}=slot {b.block.slot} {root_of(b).hex()[:12]}.."
                for name, b in zip(
                    ("genesis", "first", "second", "third", "fork_parent", "fork_child"),
                    chain.blocks,
                    strict=True,
                )
            )
        )
        run = InteropRun(chain, progress, ChainState.from_container(genesis_state(spec)))
        genesis_path = workdir / "config.yaml"
        genesis_path.write_text(genesis_config_yaml(spec))
        launcher = workdir / "run_leanspec.py"
        launcher.write_text(LAUNCHER)
        log_path = arguments.log or workdir / "leanspec.log"
        try:
            run.driver.start()
            if not run.driver.wait_ready(30):
                run.record("connect", False, "our driver did not start")
                return finish(run, arguments, checks)
            our_address = run.driver.listen_addresses[0]
            if "/p2p/" not in our_address:
                our_address += f"/p2p/{run.driver.peer_id}"
            progress(f"our driver listens on {our_address}")
            listen = f"/ip4/127.0.0.1/udp/{free_udp_port()}/quic-v1"
            command = leanspec_command(
                arguments.python,
                launcher,
                genesis_path,
                our_address,
                listen,
                verbose=arguments.leanspec_verbose,
                validator_keys=validator_keys,
                aggregator=arguments.aggregator,
            )
            mode = "stock" if arguments.stock else f"with changes {HARNESS_CHANGES}"
            role = f"validator {LEANSPEC_VALIDATOR_INDEX}" if arguments.validator else "passive"
            role += ", aggregator" if arguments.aggregator else ""
            progress(f"starting leanSpec ({role}, {mode}) on {listen}; log: {log_path}")
            with leanspec_process(
                command, env=env, cwd=workdir, log_path=log_path, inbox=run.inbox, progress=progress
            ):
                peer_id = run.wait_for_connection(arguments.startup_timeout, arguments.timeout)
                if peer_id is not None:
                    run.run_common_checks(peer_id, arguments.timeout)
                    if arguments.validator:
                        run.run_validator_checks(peer_id, arguments.timeout)
                    if arguments.aggregator:
                        run.run_aggregator_check(peer_id, arguments.timeout)
                    elif not arguments.validator:
                        # Only a passive leanSpec can take the demo chain: a validator's
                        # own blocks take its place, and those checks are not
                        # counted in that mode (they would only print failures).
                        run.run_block_checks(peer_id, arguments.timeout)
        except (KeyboardInterrupt, Terminated) as interruption:
            progress(f"interrupted ({type(interruption).__name__}); stopping")
        finally:
            run.driver.stop()
            run.driver.join(20)
            statistics = run.driver.statistics()
            problems = problem_counters(statistics)
            progress(f"our driver's problem counters: {problems or 'all zero'}")
            progress(f"path-MTU discovery towards it: {describe_path_mtu(statistics)}")
        errors = [f.text for f in run.facts if f.kind is FactKind.ERROR]
        if errors:
            progress(f"leanSpec logged {len(errors)} error line(s); first: {errors[0]}")
        return finish(run, arguments, checks)


def generate_validator_keys(
    python: Path, directory: Path, env: dict[str, str], progress: Callable[[str], None]
) -> tuple[bytes, bytes]:
    """Generate its validator's keys with leanSpec's own XMSS (bounded, killed on any
    exception including an interrupt: ``subprocess.run`` kills its child then)."""
    script = directory.parent / "generate_validator_keys.py"
    script.write_text(KEYGEN)
    progress(f"generating XMSS keys for validator {LEANSPEC_VALIDATOR_INDEX} with leanSpec")
    began = time.monotonic()
    completed = subprocess.run(
        [
            str(python),
            str(script),
            str(directory),
            LEANSPEC_NODE_ID,
            str(LEANSPEC_VALIDATOR_INDEX),
            str(KEY_ACTIVE_SLOTS),
        ],
        env=env,
        cwd=directory.parent,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if completed.returncode != 0:
        raise ValueError(f"exit code {completed.returncode}: {completed.stderr.strip()[-500:]}")
    keys = parse_keygen_output(completed.stdout)
    progress(f"keys generated in {time.monotonic() - began:.1f} s")
    return keys


def finish(run: InteropRun, arguments: argparse.Namespace, checks: Sequence[str]) -> int:
    rows = result_rows(run.results, checks)
    print_table(rows, ("check", "result", "detail"), title="interop with leanSpec's node")
    if arguments.json is not None:
        write_json(arguments.json, rows)
    code = exit_code(rows)
    if code and run.log_lines:
        print("\nlast lines of leanSpec's output:")
        for line in run.log_lines[-25:]:
            print(f"  {line}")
    return code

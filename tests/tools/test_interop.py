"""The interop harness's pure parts: genesis file, demo chain, leanSpec log parsing,
verdicts, stand-in modules and the child-process stop. (The run itself needs leanSpec's
source and a Python 3.12 interpreter, so it is not a test; see docs/driver.md.)"""

from __future__ import annotations

import io
import os
import queue
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from lean_p2p.cli import build_parser
from lean_p2p.cli import interop as interop_command
from lean_p2p.consensus import ChainState, PlaceholderSigner, state_transition
from lean_p2p.consensus.state_transition import proposer_for_slot
from lean_p2p.containers import BlocksByRangeRequest, BlocksByRootRequest, SignedBlock
from lean_p2p.containers.xmss import FIELD_MODULUS
from lean_p2p.driver.samples import sample_aggregate, sample_attestation
from lean_p2p.net.events import RequestFailed, RequestFailure
from lean_p2p.net.protocol import ReqRespProtocol, ResultCode
from lean_p2p.node.config import genesis_config_yaml, load_genesis, placeholder_public_keys
from lean_p2p.node.genesis import genesis_state
from lean_p2p.tools import interop as harness


def parse_arguments(arguments: Sequence[str]) -> Any:
    return build_parser().parse_args(["interop", *arguments])


def _parsed(line: str) -> harness.LogFact:
    fact = harness.parse_log_line(line)
    assert fact is not None, line
    return fact


def test_the_command_names_the_validator_the_tool_runs() -> None:
    assert interop_command._LEANSPEC_VALIDATOR_INDEX == harness.LEANSPEC_VALIDATOR_INDEX


def test_the_validator_mode_genesis_makes_leanspec_propose_at_every_slot() -> None:
    # A slot it misses under load (its first vote's signing outlasting the next slot's
    # proposal interval) is followed by its proposal at the next slot.
    count = harness.VALIDATOR_MODE_VALIDATOR_COUNT
    spec = harness.interop_genesis(1_700_000_000, count, real_keys={})
    assert spec.validator_count == count
    for slot in range(1, 5):
        assert proposer_for_slot(slot, count) == harness.LEANSPEC_VALIDATOR_INDEX


PEER = "16Uiu2HAmJnb7UQNHerUL4JcgLSEr3KWNqUimTbHKk3JpifDT5U3L"
ROOT_A = bytes(range(32))
ROOT_B = bytes(range(32, 64))


@pytest.fixture(scope="module")
def chain() -> Any:
    return harness.build_demo_chain(harness.interop_genesis(1_700_000_000))


def _words(key: bytes) -> list[int]:
    return [int.from_bytes(key[i : i + 4], "little") for i in range(0, len(key), 4)]


# ----------------------------------------------------------------------- genesis


def test_public_keys_decode_as_canonical_field_elements() -> None:
    spec = harness.interop_genesis(1_700_000_000, validator_count=8)
    keys = [key for pair in spec.validator_keys for key in pair]
    assert len(keys) == 16
    assert len(set(keys)) == 16
    for key in keys:
        assert len(key) == 52
        assert all(word < FIELD_MODULUS for word in _words(key))


def test_public_keys_are_our_devnet_placeholders() -> None:
    spec = harness.interop_genesis(1_700_000_000, validator_count=4)
    assert list(spec.validator_keys) == placeholder_public_keys(4)


def test_genesis_yaml_reads_back_as_the_same_genesis(tmp_path: Path) -> None:
    spec = harness.interop_genesis(1_700_000_123)
    (tmp_path / "config.yaml").write_text(genesis_config_yaml(spec))
    assert load_genesis(tmp_path) == spec
    document = yaml.safe_load((tmp_path / "config.yaml").read_text())
    # Quoted 0x-hex: a bare hex number would be read as an int by a YAML parser.
    first = document["GENESIS_VALIDATORS"][0]
    assert isinstance(first["proposal_public_key"], str)
    assert first["proposal_public_key"].startswith("0x")
    assert len(first["proposal_public_key"]) == 2 + 104


# -------------------------------------------------------------------- demo chain


def test_demo_chain_has_the_documented_shape(chain: Any) -> None:
    genesis, first, second, third = chain.main_chain
    fork_parent, fork_child = chain.fork_parent, chain.fork_child
    root = harness.root_of
    assert [b.block.slot for b in chain.blocks] == [0, 1, 2, 3, 2, 4]
    assert first.block.parent_root == root(genesis)
    assert second.block.parent_root == root(first)
    assert third.block.parent_root == root(second)
    assert fork_parent.block.parent_root == root(genesis)
    assert fork_child.block.parent_root == root(fork_parent)
    for block in (first, second, third, fork_parent, fork_child):
        assert block.block.proposer_index == block.block.slot % harness.VALIDATOR_COUNT
    assert len({root(b) for b in chain.blocks}) == 6


def test_demo_chain_blocks_pass_the_state_transition() -> None:
    spec = harness.interop_genesis(1_700_000_000)
    chain = harness.build_demo_chain(spec)
    genesis = ChainState.from_container(genesis_state(spec))
    after_first = state_transition(genesis, chain.first.block)
    after_second = state_transition(after_first, chain.second.block)
    state_transition(after_second, chain.third.block)
    after_fork_parent = state_transition(genesis, chain.fork_parent.block)
    state_transition(after_fork_parent, chain.fork_child.block)
    assert chain.genesis.block.state_root == genesis.hash_tree_root()


def test_by_root_keeps_request_order_and_skips_unknown_roots(chain: Any) -> None:
    root = harness.root_of
    wanted = [root(chain.fork_child), ROOT_A, root(chain.first)]
    served = chain.by_root(wanted)
    assert [root(b) for b in served] == [wanted[0], wanted[2]]
    assert chain.by_root([]) == []


@pytest.mark.parametrize(
    ("start", "count", "slots"),
    [(1, 2, [1, 2]), (0, 3, [0, 1, 2]), (1, 10, [1, 2, 3]), (2, 0, []), (4, 5, [])],
)
def test_by_range_serves_the_main_chain_only(
    chain: Any, start: int, count: int, slots: list[int]
) -> None:
    served = chain.by_range(start, count)
    assert [b.block.slot for b in served] == slots
    main = {harness.root_of(b) for b in chain.main_chain}
    assert all(harness.root_of(b) in main for b in served)


# --------------------------------------------------------------- log parsing


def _line(level: str, logger: str, message: str) -> str:
    return f"2026-11-22 02:29:18 {level:<8} {logger}: {message}\n"


def test_parses_the_lines_the_checks_use() -> None:
    root = "9d47c7e7e7cfd012ec7cb4d6e5242e0d0a5c82766a375d3c3b2529d78d8d200c"
    cases = {
        "lean_spec.cli.run": (f"Node initialized, peer_id={PEER}", "NODE_PEER_ID"),
        "lean_spec.node.networking.client.event_source.live": (
            f"Connected to bootnode, peer_id={PEER}",
            "CONNECTED_TO_BOOTNODE",
        ),
        "lean_spec.node.networking.service.service": (
            f"Peer connected: {PEER} (total: 1)",
            "PEER_CONNECTED",
        ),
        "lean_spec.node.sync.service": (
            f"Block processed slot=1 root={root} from peer {PEER}",
            "BLOCK_PROCESSED",
        ),
    }
    for logger, (message, kind) in cases.items():
        fact = harness.parse_log_line(_line("INFO", logger, message))
        assert fact is not None, message
        assert fact.kind is harness.FactKind[kind]
        assert fact.peer_id == PEER
    processed = _parsed(_line("INFO", "s", f"Block processed slot=1 root={root} from peer {PEER}"))
    assert processed.slot == 1
    assert processed.roots == (bytes.fromhex(root),)


def test_parses_block_received_with_slot() -> None:
    line = _line("INFO", "sync", f"Block received from peer {PEER} slot=3 (state=SYNCED)")
    fact = _parsed(line)
    assert fact.kind is harness.FactKind.BLOCK_RECEIVED
    assert fact.slot == 3


def test_parses_what_its_by_root_requester_returned() -> None:
    both = _parsed(
        _line(
            "INFO",
            "interop",
            f"BlocksByRoot from {PEER} returned 2 block(s): {ROOT_A.hex()} {ROOT_B.hex()}",
        )
    )
    assert both.kind is harness.FactKind.BY_ROOT_RETURNED
    assert both.roots == (ROOT_A, ROOT_B)
    none = _parsed(_line("INFO", "interop", f"BlocksByRoot from {PEER} returned 0 block(s):"))
    assert none.kind is harness.FactKind.BY_ROOT_RETURNED
    assert none.roots == ()


def test_parses_what_its_by_range_requester_returned() -> None:
    line = f"BlocksByRange from {PEER} returned 1 block(s): 0x{ROOT_B.hex()}"
    fact = _parsed(_line("INFO", "interop", line))
    assert fact.kind is harness.FactKind.BY_RANGE_RETURNED
    assert fact.roots == (ROOT_B,)


def test_parses_its_request_errors_with_their_message() -> None:
    line = _line(
        "WARNING",
        "lean_spec.node.networking.client.reqresp_client",
        f"Error requesting blocks from {PEER}: Cannot send data after FIN",
    )
    fact = _parsed(line)
    assert fact.kind is harness.FactKind.REQUEST_ERROR
    assert fact.message == "Cannot send data after FIN"
    timeout = _parsed(_line("WARNING", "c", f"Timeout requesting blocks from {PEER}"))
    assert timeout.kind is harness.FactKind.REQUEST_ERROR
    range_failed = _parsed(
        _line("WARNING", "backfill", f"Range fetch failed from {PEER}: Non-monotonic slot: 2 <= 2")
    )
    assert range_failed.kind is harness.FactKind.REQUEST_ERROR
    assert range_failed.message == "Non-monotonic slot: 2 <= 2"


def test_error_lines_and_tracebacks_are_errors() -> None:
    error = _parsed(_line("ERROR", "asyncio", "Task was destroyed but it is pending!"))
    assert error.kind is harness.FactKind.ERROR
    assert _parsed("Traceback (most recent call last):\n").kind is harness.FactKind.ERROR


@pytest.mark.parametrize(
    "line",
    [
        "",
        "task: <Task pending name='Task-5'>",
        _line("INFO", "chain", "Tick: slot=6 interval=32 head=ab finalized=slot0"),
        # a root one digit short is not a processed block
        _line("INFO", "sync", f"Block processed slot=1 root={'a' * 63} from peer {PEER}"),
        # peer ids are base58: no 0, O, I or l
        _line("INFO", "run", "Node initialized, peer_id=16Uiu2HAm0OIl"),
        _line("WARNING", "live", "Unexpected negotiation error for x stream 5"),
    ],
)
def test_other_lines_state_nothing(line: str) -> None:
    assert harness.parse_log_line(line) is None


# ------------------------------------------------------------------ verdicts


def _fact(kind: str, roots: Sequence[bytes] = (), message: str = "") -> Any:
    return harness.LogFact(
        harness.FactKind[kind], peer_id=PEER, roots=tuple(roots), message=message
    )


def _served(protocol: str, roots: Sequence[bytes]) -> Any:
    request = (
        BlocksByRootRequest(roots=tuple(roots))
        if protocol == "BLOCKS_BY_ROOT"
        else BlocksByRangeRequest(start_slot=1, count=len(roots))
    )
    return harness.ServedRequest(ReqRespProtocol[protocol], request, len(roots), tuple(roots))


def test_served_passes_only_when_its_requester_returned_every_block() -> None:
    judge = harness.judge_served
    by_root = _served("BLOCKS_BY_ROOT", [ROOT_A])
    assert judge(None, [ROOT_A], [])[:2] == (False, False)
    assert judge(by_root, [ROOT_A], [])[:2] == (False, False)  # not settled: keep waiting
    passed, settled, detail = judge(by_root, [ROOT_A], [_fact("BY_ROOT_RETURNED", [ROOT_A])])
    assert (passed, settled) == (True, True)
    assert "BlocksByRoot(1 root(s)): 1 block(s)" in detail
    failed = judge(
        by_root,
        [ROOT_A],
        [_fact("REQUEST_ERROR", message="Cannot send data after FIN"), _fact("BY_ROOT_RETURNED")],
    )
    assert failed[:2] == (False, True)
    assert "Cannot send data after FIN" in failed[2]
    assert judge(by_root, [ROOT_A], [_fact("BY_ROOT_RETURNED", [ROOT_B])])[:2] == (False, True)


def test_served_matches_the_protocol_and_every_expected_root() -> None:
    judge = harness.judge_served
    by_range = _served("BLOCKS_BY_RANGE", [ROOT_A, ROOT_B])
    # what its BlocksByRoot requester returned says nothing about its range request
    assert not judge(by_range, [ROOT_A, ROOT_B], [_fact("BY_ROOT_RETURNED", [ROOT_A, ROOT_B])])[0]
    assert not judge(by_range, [ROOT_A, ROOT_B], [_fact("BY_RANGE_RETURNED", [ROOT_A])])[0]
    assert judge(by_range, [ROOT_A, ROOT_B], [_fact("BY_RANGE_RETURNED", [ROOT_B, ROOT_A])])[0]
    # we answered with other blocks than the check expects
    wrong = judge(by_range, [ROOT_A], [_fact("BY_RANGE_RETURNED", [ROOT_A, ROOT_B])])
    assert wrong[:2] == (False, True)


def _fetch(chunks: Iterable[object] = (), failure: RequestFailed | None = None) -> Any:
    record = harness.OutboundRequest(list(chunks))
    record.done = True
    record.failure = failure
    return record


def test_fetch_passes_when_every_requested_block_came_back(chain: Any) -> None:
    blocks: list[SignedBlock] = [chain.fork_child, chain.first]
    wanted = [harness.root_of(b) for b in blocks]
    assert harness.judge_fetch(wanted, _fetch(reversed(blocks)))[0]
    partial = harness.judge_fetch(wanted, _fetch(blocks[:1]))
    assert partial == (False, "1/2 requested blocks returned")
    duplicate = harness.judge_fetch(wanted, _fetch([blocks[0], blocks[0], blocks[1]]))
    assert not duplicate[0]
    unrequested = harness.judge_fetch(wanted, _fetch([*blocks, chain.third]))
    assert not unrequested[0]
    pending = harness.OutboundRequest()
    assert harness.judge_fetch(wanted, pending) == (False, "no answer")


def test_fetch_reports_an_error_response_with_code_and_text() -> None:
    failure = RequestFailed(
        PEER,
        7,
        ReqRespProtocol.BLOCKS_BY_ROOT,
        RequestFailure.ERROR_RESPONSE,
        ResultCode.SERVER_ERROR,
        "Block lookup not available",
    )
    passed, detail = harness.judge_fetch([ROOT_A], _fetch(failure=failure))
    assert not passed
    assert detail == 'ERROR_RESPONSE, code 2 "Block lookup not available"'


def test_unreached_checks_fail_the_run() -> None:
    some = [harness.CheckResult("connect", True, "ok")]
    rows = harness.result_rows(some)
    assert [row["check"] for row in rows] == list(harness.CHECKS)
    assert rows[1] == {"check": "Status it->us", "result": "FAIL", "detail": "not reached"}
    assert harness.exit_code(rows) == 1
    everything = [harness.CheckResult(name, True, "ok") for name in harness.CHECKS]
    assert harness.exit_code(harness.result_rows(everything)) == 0
    one_failed = [*everything[:-1], harness.CheckResult(harness.CHECKS[-1], False, "no")]
    assert harness.exit_code(harness.result_rows(one_failed)) == 1


# ------------------------------------------------------- leanSpec's process


def test_stand_ins_import_and_behave_in_a_fresh_interpreter(tmp_path: Path) -> None:
    harness.write_stand_ins(tmp_path)
    probe = textwrap.dedent(
        """
        import numba, lean_multisig_py as prover
        square = numba.njit(lambda x: x * x)
        cached = numba.njit(cache=True)(lambda x: x + 1)
        assert square(3) == 9 and cached(1) == 2
        assert prover.setup_prover(mode="test") is None
        assert prover.verify_multi_message_proof_with_messages([], [], b"", mode=0) is True
        assert prover.verify_single_message_proof([], b"", b"", 0) is True
        _, proof = prover.split_multi_message_proof_by_message([], b"", b"", 2, mode=0)
        assert proof == b"" and prover.aggregate_single_message([], [], b"", 0)[1] == b""
        assert prover.merge_many_single_message_proof([], 2)[1] == b""
        print("stand-ins ok")
        """
    )
    completed = subprocess.run(
        [sys.executable, "-c", probe],
        env={"PYTHONPATH": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "stand-ins ok"


_BUILDING_MAIN = textwrap.dedent(
    """
    class _Handler:
        block_by_slot_lookup = None
    class _Source:
        _reqresp_handler = _Handler()
        def set_block_lookup(self, lookup): pass
    class _Config:
        event_source = _Source()
    def main():
        from lean_spec.node.node import Node
        Node.from_genesis(_Config())
    """
)


@pytest.mark.parametrize(
    ("changes", "applied"),
    [
        ("", []),
        (harness.HARNESS_CHANGES, ["1", "2", "3", "5"]),
        (harness.ALL_CHANGES, ["1", "2", "3", "4", "5"]),
        ("4", ["4"]),
    ],
)
def test_the_launcher_applies_exactly_the_changes_named(
    tmp_path: Path, changes: str, applied: list[str]
) -> None:
    compile(harness.LAUNCHER, "run_leanspec.py", "exec")
    tree = _stand_in_tree(tmp_path / "src")
    (tree / "lean_spec" / "cli" / "main.py").write_text(_BUILDING_MAIN)
    launcher = tmp_path / "run_leanspec.py"
    launcher.write_text(harness.LAUNCHER)
    completed = subprocess.run(
        [
            sys.executable,
            "-c",
            "import logging, runpy, sys; logging.basicConfig(level=logging.INFO, "
            "format='%(message)s', stream=sys.stdout); runpy.run_path(sys.argv[1])",
            str(launcher),
        ],
        env={**os.environ, "PYTHONPATH": str(tree), harness.CHANGES_VARIABLE: changes},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    logged = [line.split(":")[0].removeprefix("change ") for line in completed.stdout.split("\n")]
    assert sorted(n for n in logged if n.isdigit()) == sorted(applied)


def test_leanspec_command_line(tmp_path: Path) -> None:
    command = harness.leanspec_command(
        Path("/py"), tmp_path / "run.py", tmp_path / "config.yaml", "/ip4/1/udp/2/quic-v1", "/l"
    )
    assert command[:2] == ["/py", str(tmp_path / "run.py")]
    options = command[2:-1]  # name, value pairs between the script and the last flag
    arguments = dict(zip(options[::2], options[1::2], strict=True))
    assert arguments["--genesis"] == str(tmp_path / "config.yaml")
    assert arguments["--bootnode"] == "/ip4/1/udp/2/quic-v1"
    assert arguments["--listen"] == "/l"
    assert arguments["--api-port"] == "0"
    assert command[-1] == "--no-color"
    verbose = harness.leanspec_command(
        Path("/py"), tmp_path / "run.py", tmp_path / "c.yaml", "/b", "/l", verbose=True
    )
    assert verbose[-1] == "--verbose"


def test_output_reader_logs_parses_and_reports_the_end() -> None:
    stream = io.StringIO(_line("INFO", "run", f"Node initialized, peer_id={PEER}") + "noise\n")
    log_file = io.StringIO()
    inbox: queue.Queue[Any] = queue.Queue()
    harness.read_output(stream, log_file, inbox)
    first, second, end = (inbox.get_nowait() for _ in range(3))
    assert first.fact.kind is harness.FactKind.NODE_PEER_ID
    assert second == harness.LogLine("noise", None)
    assert isinstance(end, harness.ProcessExited)
    assert log_file.getvalue() == stream.getvalue()


def _child(code: str) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "ready"
    return process


def test_stop_process_terminates_a_child() -> None:
    process = _child("import time; print('ready', flush=True); time.sleep(60)")
    assert harness.stop_process(process, grace=10) == -signal.SIGTERM
    assert process.stdout is not None
    process.stdout.close()


def test_stop_process_kills_a_child_that_ignores_sigterm() -> None:
    process = _child(
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('ready', flush=True); time.sleep(60)"
    )
    assert harness.stop_process(process, grace=0.5) == -signal.SIGKILL
    assert harness.stop_process(process) == -signal.SIGKILL  # stopping twice is harmless
    assert process.stdout is not None
    process.stdout.close()


@pytest.mark.parametrize(
    "problem",
    ["missing tree", "not executable", "stubs not a directory"],
)
def test_bad_arguments_exit_with_usage_error(tmp_path: Path, problem: str) -> None:
    tree = tmp_path / "src"
    (tree / "lean_spec").mkdir(parents=True)
    (tree / "lean_spec" / "__init__.py").write_text("")
    arguments = ["--leanspec", str(tree), "--python", sys.executable]
    if problem == "missing tree":
        arguments[1] = str(tmp_path / "nowhere")
    elif problem == "not executable":
        arguments[3] = str(tmp_path / "config.yaml")
    else:
        arguments += ["--stubs", str(tmp_path / "absent")]
    with pytest.raises(SystemExit) as exit_info:
        parse_arguments(arguments)
    assert exit_info.value.code == 2
    assert parse_arguments(["--leanspec", str(tree), "--python", sys.executable]).stock is False


def test_problem_counters_name_only_nonzero_refusals_and_failures() -> None:
    statistics = {
        "driver": {"commands": 40, "gossip_decode_rejected": 2, "dial_failed": 0},
        "reqresp": {"inbound_invalid": 1, "requests_completed": 3, "outbound_in_flight": 0},
        "gossipsub": {"malformed_rpc": 0, "queue_full_drops": 5, "published": 7},
        "connected_peers": 1,
        "topics": {"/leanconsensus/12345678/block/ssz_snappy": (1, 1)},
    }
    assert harness.problem_counters(statistics) == {
        "driver.gossip_decode_rejected": 2,
        "reqresp.inbound_invalid": 1,
        "gossipsub.queue_full_drops": 5,
    }
    assert harness.problem_counters({"driver": {"commands": 1}}) == {}


# ------------------------------------------- the whole script against a stand-in node

# The modules and names the launcher imports, and a ``main`` that announces a node and
# waits: the harness's own lifecycle (genesis, launcher, driver, child process, exit
# paths) runs for real; only leanSpec's node is replaced.
_STAND_IN_NODE = {
    "cli/main.py": textwrap.dedent(
        """
        import os, sys, time
        def main():
            with open(os.environ["STAND_IN_PID_FILE"], "w") as pid_file:
                pid_file.write(str(os.getpid()))
            print("2026-11-22 02:29:18 INFO     lean_spec.cli.run: Node initialized, "
                  "peer_id=16Uiu2HAmJnb7UQNHerUL4JcgLSEr3KWNqUimTbHKk3JpifDT5U3L", flush=True)
            time.sleep(120)
        """
    ),
    "node/networking/client/reqresp_client.py": (
        "class ReqRespClient:\n"
        "    async def request_blocks_by_root(self, peer_id, roots): return []\n"
        "    async def request_blocks_by_range(self, peer_id, start, count): return []\n"
    ),
    "node/networking/transport/quic/stream.py": (
        "class QuicStream:\n    async def close(self): pass\n"
    ),
    "node/node.py": (
        "class Node:\n    @classmethod\n    def from_genesis(cls, config): return cls()\n"
    ),
    "spec/crypto/merkleization.py": "def hash_tree_root(value): return b''\n",
    "spec/forks/__init__.py": "class SignedBlock: pass\n",
    "spec/forks/lstar/containers.py": "class MultiMessageAggregate: pass\n",
    "node/sync/service.py": (
        "class SyncService:\n    async def on_gossip_block(self, block, peer_id): pass\n"
    ),
    "spec/forks/lstar/validator_duties.py": (
        "class ValidatorDutiesMixin:\n    def get_attestation_target(self, store): pass\n"
    ),
    "spec/ssz.py": "class ByteList512KiB: pass\n",
}


def _stand_in_tree(root: Path) -> Path:
    for relative, source in _STAND_IN_NODE.items():
        path = root / "lean_spec" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
    for directory in [root / "lean_spec", *(root / "lean_spec").rglob("*")]:
        if directory.is_dir() and not (directory / "__init__.py").exists():
            (directory / "__init__.py").write_text("")
    return root


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _harness(tree: Path, pid_file: Path, *options: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lean_p2p.cli",
            "interop",
            "--leanspec",
            str(tree),
            "--python",
            sys.executable,
            *options,
        ],
        env={**os.environ, "STAND_IN_PID_FILE": str(pid_file)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait_for_file(path: Path, process: subprocess.Popen[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists() or not path.read_text():
        assert process.poll() is None, "the harness ended before starting its child"
        assert time.monotonic() < deadline, f"{path} never written"
        time.sleep(0.05)


@pytest.mark.network
def test_a_node_that_never_connects_fails_the_run_and_is_stopped(tmp_path: Path) -> None:
    tree = _stand_in_tree(tmp_path / "src")
    pid_file = tmp_path / "node.pid"
    harness_run = _harness(tree, pid_file, "--startup-timeout", "2", "--timeout", "2")
    output, _ = harness_run.communicate(timeout=120)
    assert harness_run.returncode == 1, output
    assert "FAIL: connect: no connection in time" in output
    assert "not reached" in output
    assert not _alive(int(pid_file.read_text()))


@pytest.mark.network
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stopped_harness_stops_its_node(tmp_path: Path, signum: signal.Signals) -> None:
    tree = _stand_in_tree(tmp_path / "src")
    pid_file = tmp_path / "node.pid"
    harness_run = _harness(tree, pid_file, "--startup-timeout", "100")
    try:
        _wait_for_file(pid_file, harness_run)
        node_pid = int(pid_file.read_text())
        assert _alive(node_pid)
        harness_run.send_signal(signum)
        output, _ = harness_run.communicate(timeout=60)
    finally:
        if harness_run.poll() is None:
            harness_run.kill()
            harness_run.communicate()
    # Ctrl-C ends every command with 130 once it has stopped in order; a SIGTERM'd
    # run reports its checks as failed.
    assert harness_run.returncode == (130 if signum == signal.SIGINT else 1), output
    assert "interrupted" in output
    assert "leanSpec stopped: exit code" in output
    assert not _alive(node_pid)


# ------------------------------------------------------------ validator mode


def test_genesis_takes_real_keys_for_some_validators() -> None:
    real = (bytes(range(52)), bytes(range(1, 53)))
    spec = harness.interop_genesis(5, real_keys={1: real})
    placeholder = harness.interop_genesis(5)
    assert spec.validator_keys[1] == real
    assert spec.validator_keys[0] == placeholder.validator_keys[0]
    assert spec.validator_keys[2:] == placeholder.validator_keys[2:]
    with pytest.raises(ValueError, match="below 4"):
        harness.interop_genesis(5, real_keys={4: real})


def test_keygen_output_gives_both_public_keys() -> None:
    attestation, proposal = bytes(range(52)), bytes(range(2, 54))
    output = f'noise\n{{"attestation": "{attestation.hex()}", "proposal": "{proposal.hex()}"}}\n'
    assert harness.parse_keygen_output(output) == (attestation, proposal)
    with pytest.raises(ValueError, match="printed nothing"):
        harness.parse_keygen_output("\n")
    with pytest.raises(ValueError, match="52 bytes"):
        harness.parse_keygen_output('{"attestation": "00", "proposal": "00"}')
    with pytest.raises(ValueError):  # not JSON: json.JSONDecodeError is a ValueError
        harness.parse_keygen_output("Traceback (most recent call last):")


def test_keygen_script_is_valid_python() -> None:
    compile(harness.KEYGEN, "generate_validator_keys.py", "exec")


def test_validator_mode_command_and_checks(tmp_path: Path) -> None:
    command = harness.leanspec_command(
        Path("/py"), tmp_path / "run.py", tmp_path / "c.yaml", "/b", "/l", validator_keys=tmp_path
    )
    assert command[-4:] == ["--validator-keys", str(tmp_path), "--node-id", "lean_spec_0"]
    rows = harness.result_rows([], harness.VALIDATOR_CHECKS)
    assert [row["check"] for row in rows] == list(harness.VALIDATOR_CHECKS)
    assert harness.exit_code(rows) == 1


def test_its_block_is_compared_with_our_builders(chain: Any) -> None:
    compare = harness.compare_with_our_builder
    assert compare(chain.first, chain).startswith("same root")
    other = SignedBlock(
        block=replace(chain.first.block, state_root=bytes(32)), proof=chain.first.proof
    )
    assert compare(other, chain).startswith("differs")
    later = SignedBlock(block=replace(chain.first.block, slot=9), proof=chain.first.proof)
    assert compare(later, chain) == "our builder made no block for that slot and parent"


def test_its_vote_is_verified_by_our_xmss_verifier_with_the_genesis_key() -> None:
    from lean_p2p.containers import TEST_SCHEME
    from lean_p2p.node.config import GenesisSpec
    from lean_p2p.node.keys import XmssSigner, generate_validator_keys

    [keys] = generate_validator_keys(1, seed=b"interop", scheme=TEST_SCHEME, num_active_slots=8)
    spec = GenesisSpec(1_700_000_000, (keys.public_keys,))
    genesis = ChainState.from_container(genesis_state(spec))
    vote = replace(sample_attestation(), validator_index=0)
    signed = replace(vote, signature=XmssSigner({0: keys}).sign_attestation(0, vote.data))
    assert harness.signature_verdict(signed, genesis)
    structural_only = replace(vote, signature=PlaceholderSigner().sign_attestation(0, vote.data))
    assert not harness.signature_verdict(structural_only, genesis)
    assert not harness.signature_verdict(replace(signed, validator_index=5), genesis)


def test_its_block_on_genesis_goes_through_our_state_transition(chain: Any) -> None:
    spec = harness.interop_genesis(1_700_000_000)
    genesis = ChainState.from_container(genesis_state(spec))
    judge = harness.judge_with_our_state_transition
    assert judge(chain.first, chain, genesis).startswith("our state transition accepts it")
    wrong_root = SignedBlock(
        block=replace(chain.first.block, state_root=bytes(32)), proof=chain.first.proof
    )
    assert judge(wrong_root, chain, genesis).startswith("our state transition REJECTS it")
    assert judge(chain.second, chain, genesis).startswith("its parent is not genesis")


def test_aggregator_mode_implies_validator_mode(tmp_path: Path) -> None:
    tree = tmp_path / "src"
    (tree / "lean_spec").mkdir(parents=True)
    (tree / "lean_spec" / "__init__.py").write_text("")
    base = ["--leanspec", str(tree), "--python", sys.executable]
    arguments = parse_arguments([*base, "--aggregator"])
    assert arguments.validator and arguments.aggregator
    assert not parse_arguments(base).validator
    command = harness.leanspec_command(
        Path("/py"), tmp_path / "r.py", tmp_path / "c.yaml", "/b", "/l", aggregator=True
    )
    assert command[-1] == "--is-aggregator"
    assert harness.AGGREGATOR_CHECKS[: len(harness.VALIDATOR_CHECKS)] == harness.VALIDATOR_CHECKS


def test_aggregate_participants_are_listed() -> None:
    assert harness.describe_participants(sample_aggregate(validators=3)) == "[0, 1, 2]"

"""leanSpec's node as a devnet member: its interpreter, its processes, what it reports.

Threads: everything here runs on the calling thread and may block (building the venv,
reading logs, waiting for a process), so the devnet command calls it from a worker
thread (``asyncio.to_thread``), except :func:`poll_fork_choice`, which is a coroutine
on the command's loop. Nothing here touches a node's consensus state: leanSpec's nodes
are child processes, each in its own process group, seen only through their HTTP API
and their log file.

leanSpec's node needs a Python 3.12 venv with leanSpec installed; the shared
``setup-leanspec.sh`` builds one (about two minutes, from the package registry).
:func:`leanspec_python` uses the interpreter it is given, or one built earlier into the
cache directory, or builds one there. Each node is started through the interop
harness's launcher (:data:`lean_p2p.tools.interop.LAUNCHER`) with its five
workarounds on, and the harness's stand-ins for numba and the Rust prover on its
``PYTHONPATH`` (aggregate and block proofs are empty, and any verifies).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from lean_p2p.tools.interop import (
    ALL_CHANGES,
    LAUNCHER,
    leanspec_child_environment,
    write_stand_ins,
)

__all__ = [
    "LEANSPEC_EXPLAINED_ERRORS",
    "NODE_PREFIX",
    "PYTHON_ENV",
    "LeanSpecNode",
    "LeanSpecUnavailable",
    "default_cache_directory",
    "default_setup_script",
    "error_lines",
    "find_leanspec_python",
    "fork_choice_view",
    "leanspec_environment",
    "leanspec_python",
    "poll_fork_choice",
]

#: How leanSpec's processes name themselves in ``validators.yaml`` (``--node-id``).
NODE_PREFIX = "lean_spec_"

#: Error lines of leanSpec's node that are explained, matched against the line and the
#: one after it (asyncio names the task there), each with when it counts as explained.
#: - Its ``start_serving`` keeps no reference to the task that runs its QUIC listener,
#:   so the garbage collector destroys that task soon after start ("Task was destroyed
#:   but it is pending!" naming ``LiveNetworkEventSource.listen()``). Harmless: the
#:   task only parks after ``quic_serve`` returned, and the server lives on in the loop.
#: - Stopped (SIGTERM), its shutdown leaves other asyncio tasks pending.
LEANSPEC_EXPLAINED_ERRORS: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(r"Task was destroyed but it is pending!\n.*LiveNetworkEventSource\.listen\(\)"),
        "any time",
    ),
    (re.compile(r"Task was destroyed but it is pending"), "at shutdown"),
)

#: An error line of either implementation's log, or the start of a traceback:
#: ``2026-12-06 07:55:01,123 ERROR name msg`` (ours) and
#: ``2026-12-06 07:55:01 ERROR    name: msg`` (leanSpec with --no-color).
_ERROR_LINE = re.compile(
    r"^(?:\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:,\d+)? (?:ERROR|CRITICAL)\b|Traceback \()"
)

#: leanSpec's line naming its peer id (its identity is new at every start)
_PEER_ID_LINE = re.compile(r"Node initialized, peer_id=(\w+)")

_SETUP_TIMEOUT = 1200.0
_BUILD_NOTE_SECONDS = (
    15.0  # a progress line this often while the venv builds  # seconds: a slow mirror, two cores
)


class LeanSpecUnavailable(Exception):
    """No interpreter for leanSpec's node could be found or built (the message says why)."""


def default_cache_directory() -> Path:
    """Where a built leanSpec venv is kept between runs (``LEAN_P2P_CACHE`` overrides)."""
    explicit = os.environ.get("LEAN_P2P_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "lean-p2p"


def default_setup_script() -> Path:
    """``setup-leanspec.sh`` in the ``shared`` folder beside the project's checkout."""
    checkout = Path(__file__).resolve().parents[2]
    return checkout.parent / "shared" / "peers" / "setup-leanspec.sh"


#: Names the interpreter that runs leanSpec's node (a venv made by setup-leanspec.sh).
PYTHON_ENV = "LEAN_P2P_LEANSPEC_PYTHON"


def find_leanspec_python() -> Path | None:
    """An interpreter that runs leanSpec's node, without building one:
    ``$LEAN_P2P_LEANSPEC_PYTHON``, then the checkout's ``build/leanspec-venv``."""
    for candidate in _known_interpreters():
        if candidate.is_file() and _imports_leanspec(candidate):
            return candidate
    return None


def _known_interpreters() -> list[Path]:
    """``$LEAN_P2P_LEANSPEC_PYTHON``, then the venv ``.ci/run`` builds in the checkout."""
    known = [Path(os.environ[PYTHON_ENV])] if os.environ.get(PYTHON_ENV) else []
    checkout = Path(__file__).resolve().parents[2]
    return [*known, checkout / "build" / "leanspec-venv" / "bin" / "python"]


def _imports_leanspec(python: Path) -> bool:
    try:
        completed = subprocess.run(
            [str(python), "-c", "import lean_spec.cli.main"],
            capture_output=True,
            timeout=120,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return completed.returncode == 0


def leanspec_python(
    given: Path | None,
    *,
    cache: Path | None = None,
    setup_script: Path | None = None,
    show: Callable[[str], None] = print,
    should_stop: Callable[[], bool] = lambda: False,
) -> Path:
    """The interpreter that runs leanSpec's node: ``given`` if it imports leanSpec;
    otherwise ``$LEAN_P2P_LEANSPEC_PYTHON``, the checkout's ``build/leanspec-venv`` (made
    by ``.ci/run``), or the cache's venv, built first with ``setup-leanspec.sh``.
    Blocks (minutes when it builds): call it from a worker thread. ``should_stop`` is
    asked twice a second while it builds; when it says so, the build is killed."""
    if given is not None:
        if not given.is_file():
            raise LeanSpecUnavailable(f"--leanspec-python {given}: no such file")
        if not _imports_leanspec(given):
            raise LeanSpecUnavailable(
                f"--leanspec-python {given} cannot import lean_spec: give the python of a "
                "venv made by setup-leanspec.sh"
            )
        return given
    found = find_leanspec_python()
    if found is not None:
        show(f"leanSpec: using {found}")
        return found
    venv = (cache or default_cache_directory()) / "leanspec-venv"
    python = venv / "bin" / "python"
    if python.is_file() and _imports_leanspec(python):
        show(f"leanSpec: using the venv built earlier in {venv}")
        return python
    script = setup_script or default_setup_script()
    if not script.is_file():
        raise LeanSpecUnavailable(
            f"no leanSpec interpreter: {script} is missing; give --leanspec-python PATH"
        )
    venv.parent.mkdir(parents=True, exist_ok=True)
    log_path = venv.parent / "setup-leanspec.log"
    show(f"leanSpec: building its venv in {venv} (about two minutes); log: {log_path}")
    began = time.monotonic()
    with log_path.open("w") as log:
        builder = subprocess.Popen(
            ["bash", str(script), str(venv)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # stopped as a group: pip's children too
        )
        next_note = began + _BUILD_NOTE_SECONDS
        try:
            while builder.poll() is None:
                if time.monotonic() >= next_note:
                    show(f"leanSpec: still building ({time.monotonic() - began:.0f} s)")
                    next_note += _BUILD_NOTE_SECONDS
                if should_stop():
                    raise LeanSpecUnavailable("stopped while building leanSpec's venv")
                if time.monotonic() - began > _SETUP_TIMEOUT:
                    raise LeanSpecUnavailable(
                        f"building leanSpec's venv took over {_SETUP_TIMEOUT:.0f} s; see {log_path}"
                    )
                with contextlib.suppress(subprocess.TimeoutExpired):
                    builder.wait(0.5)
        finally:
            if builder.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(builder.pid, signal.SIGKILL)
                builder.wait()
    returncode = builder.returncode
    if returncode != 0 or not _imports_leanspec(python):
        tail = log_path.read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
        raise LeanSpecUnavailable(
            f"building leanSpec's venv failed (exit code {returncode}): {tail[0]}; see {log_path}"
        )
    show(f"leanSpec: venv built in {time.monotonic() - began:.0f} s")
    return python


def leanspec_environment(directory: Path, *, stock: bool = False) -> tuple[dict[str, str], Path]:
    """Write the launcher and the stand-ins into ``directory``; the environment and the
    launcher's path to start leanSpec's nodes with (``stock``: without the workarounds)."""
    directory.mkdir(parents=True, exist_ok=True)
    stand_ins = write_stand_ins(directory / "stand-ins")
    launcher = directory / "run_leanspec.py"
    launcher.write_text(LAUNCHER)
    # Its known defects worked around, unless asked for leanSpec as it is.
    env = leanspec_child_environment([stand_ins], "" if stock else ALL_CHANGES)
    env["LEAN_ENV"] = "test"  # the test XMSS scheme, as the devnet's keys are
    return env, launcher


@dataclass
class LeanSpecNode:
    """One leanSpec node of a devnet: a child process in its own process group."""

    name: str  # its --node-id, as validators.yaml names it
    directory: Path  # the devnet directory: genesis, validators.yaml, keystore
    listen_port: int
    api_port: int
    is_aggregator: bool = False
    process: subprocess.Popen[bytes] | None = None
    #: (log size when it was told to stop, log size when it started again or None):
    #: the lines between are its shutdown's
    shutdowns: list[tuple[int, int | None]] = field(default_factory=list)
    exit_code: int | None = None

    @property
    def log_path(self) -> Path:
        return self.directory / f"{self.name}.log"

    @property
    def listen_address(self) -> str:
        return f"/ip4/127.0.0.1/udp/{self.listen_port}/quic-v1"

    def command(self, python: Path, launcher: Path, bootnodes: Sequence[str]) -> list[str]:
        command = [
            str(python),
            str(launcher),
            "--genesis",
            str(self.directory / "config.yaml"),
            "--listen",
            self.listen_address,
            "--validator-keys",
            str(self.directory),
            "--node-id",
            self.name,
            "--api-port",
            str(self.api_port),
            "--no-color",
        ]
        for bootnode in bootnodes:
            command += ["--bootnode", bootnode]
        if self.is_aggregator:
            command.append("--is-aggregator")
        return command

    def start(
        self, python: Path, launcher: Path, bootnodes: Sequence[str], env: dict[str, str]
    ) -> None:
        """Start it (again: its log goes on, and its last shutdown's lines end here)."""
        if self.shutdowns and self.shutdowns[-1][1] is None:
            self.shutdowns[-1] = (self.shutdowns[-1][0], self._log_size())
        with self.log_path.open("ab" if self.process is not None else "wb") as log:
            self.process = subprocess.Popen(
                self.command(python, launcher, bootnodes),
                cwd=self.directory,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own group: stopped whole, spared our Ctrl-C
            )

    def _log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except OSError:
            return 0

    def peer_id(self) -> str | None:
        """Its peer id, from the line its node logs at start (it has no key option)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return None
        found = _PEER_ID_LINE.findall(text)
        return found[-1] if found else None

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal(self, signum: int) -> None:
        """Signal its whole process group (leanSpec may have children)."""
        if self.running():
            assert self.process is not None
            if signum != signal.SIGKILL and not (self.shutdowns and self.shutdowns[-1][1] is None):
                self.shutdowns.append((self._log_size(), None))
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signum)

    def wait(self, timeout: float) -> int | None:
        """Wait for it to exit (blocks), SIGKILL after ``timeout``; its exit code."""
        if self.process is None:
            return None
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(10)
        self.exit_code = self.process.returncode
        return self.exit_code

    def errors(self) -> tuple[list[str], list[str]]:
        """(unexplained, explained) error lines of its log (see
        :data:`LEANSPEC_EXPLAINED_ERRORS`)."""
        unexplained: list[str] = []
        explained: list[str] = []
        for offset, line, following in error_lines(self.log_path):
            during_shutdown = any(
                begin <= offset and (end is None or offset < end) for begin, end in self.shutdowns
            )
            text = f"{line}\n{following}"
            known = any(
                pattern.search(text) and (when == "any time" or during_shutdown)
                for pattern, when in LEANSPEC_EXPLAINED_ERRORS
            )
            (explained if known else unexplained).append(line)
        return unexplained, explained


def error_lines(path: Path) -> list[tuple[int, str, str]]:
    """(byte offset, line, the line after it) of every error line or traceback start in
    a log file."""
    found: list[tuple[int, str, str]] = []
    try:
        raw_lines = path.read_bytes().splitlines(keepends=True)
    except OSError:
        return []
    offset = 0
    for index, raw in enumerate(raw_lines):
        line = raw.decode("utf-8", errors="replace").rstrip()
        if _ERROR_LINE.match(line):
            following = raw_lines[index + 1] if index + 1 < len(raw_lines) else b""
            found.append((offset, line, following.decode("utf-8", errors="replace").rstrip()))
        offset += len(raw)
    return found


def fork_choice_view(document: dict[str, Any]) -> dict[str, Any]:
    """Head, justified and finalized from a ``/lean/v0/fork_choice`` answer (both
    implementations serve the same shape): slots, and roots as lowercase hex."""

    def root(value: object) -> str:
        return str(value).lower().removeprefix("0x")

    head = root(document["head"])
    head_slot = next(
        (int(node["slot"]) for node in document.get("nodes", ()) if root(node["root"]) == head),
        None,
    )
    tree = document.get("nodes", ())
    return {
        "head_slot": head_slot,
        "head_root": head,
        # who proposed the blocks it holds (from finalized on), and the most votes it
        # counts for one block: every validator's, when it reaches the validator count
        "proposers": sorted({int(node["proposer_index"]) for node in tree}),
        "max_weight": max((int(node["weight"]) for node in tree), default=0),
        "justified_slot": int(document["justified"]["slot"]),
        "justified_root": root(document["justified"]["root"]),
        "finalized_slot": int(document["finalized"]["slot"]),
        "finalized_root": root(document["finalized"]["root"]),
    }


async def poll_fork_choice(session: aiohttp.ClientSession, port: int) -> dict[str, Any] | None:
    """One node's fork-choice view over its HTTP API; None if it does not answer well."""
    try:
        async with session.get(
            f"http://127.0.0.1:{port}/lean/v0/fork_choice", timeout=aiohttp.ClientTimeout(3)
        ) as response:
            if response.status != 200:
                return None
            return fork_choice_view(await response.json())
    except (aiohttp.ClientError, TimeoutError, ValueError, KeyError, TypeError):
        return None

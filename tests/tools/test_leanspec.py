"""leanSpec's node as a devnet member: finding its interpreter, its command line, its
fork-choice answers and its log's error lines."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from lean_p2p.tools import leanspec
from lean_p2p.tools.leanspec import (
    LeanSpecNode,
    LeanSpecUnavailable,
    error_lines,
    fork_choice_view,
    leanspec_environment,
    leanspec_python,
)

ROOT_A = "0x" + "aa" * 32
ROOT_B = "0x" + "bb" * 32


def test_fork_choice_view_reads_head_slot_from_the_tree() -> None:
    document = {
        "nodes": [
            {"root": ROOT_A, "slot": 4, "parent_root": ROOT_B, "proposer_index": 0, "weight": 2},
            {"root": ROOT_B, "slot": 3, "parent_root": ROOT_B, "proposer_index": 1, "weight": 3},
        ],
        "head": ROOT_A.upper().replace("0X", "0x"),
        "justified": {"slot": 3, "root": ROOT_B},
        "finalized": {"slot": 2, "root": ROOT_B},
        "safe_target": ROOT_B,
        "validator_count": 4,
    }
    assert fork_choice_view(document) == {
        "head_slot": 4,
        "head_root": "aa" * 32,
        "justified_slot": 3,
        "justified_root": "bb" * 32,
        "finalized_slot": 2,
        "finalized_root": "bb" * 32,
        "proposers": [0, 1],
        "max_weight": 3,
    }
    # a head the tree does not list (it only lists blocks from finalized on): no slot
    assert fork_choice_view({**document, "nodes": []})["head_slot"] is None


def test_the_command_line_dials_every_bootnode_and_names_the_node(tmp_path: Path) -> None:
    node = LeanSpecNode("lean_spec_1", tmp_path, listen_port=9001, api_port=5001)
    command = node.command(Path("py"), Path("launch.py"), ["/ip4/a", "/ip4/b"])
    assert command[:2] == ["py", "launch.py"]
    pairs = dict(zip(command[2::2], command[3::2], strict=False))
    assert pairs["--genesis"] == str(tmp_path / "config.yaml")
    assert pairs["--validator-keys"] == str(tmp_path)
    assert pairs["--node-id"] == "lean_spec_1"
    assert pairs["--listen"] == "/ip4/127.0.0.1/udp/9001/quic-v1"
    assert pairs["--api-port"] == "5001"
    assert [command[i + 1] for i, word in enumerate(command) if word == "--bootnode"] == [
        "/ip4/a",
        "/ip4/b",
    ]
    assert "--is-aggregator" not in command
    aggregator = LeanSpecNode("lean_spec_0", tmp_path, 1, 2, is_aggregator=True)
    assert "--is-aggregator" in aggregator.command(Path("py"), Path("l"), [])


def test_the_environment_puts_the_stand_ins_first_and_the_workarounds_on(
    tmp_path: Path,
) -> None:
    env, launcher = leanspec_environment(tmp_path / "leanspec")
    assert launcher.read_text().startswith("import logging")
    stand_ins = Path(env["PYTHONPATH"])
    assert (stand_ins / "numba" / "__init__.py").is_file()
    assert (stand_ins / "lean_multisig_py" / "__init__.py").is_file()
    assert env["INTEROP_LEANSPEC_CHANGES"] == "1,2,3,4,5"
    assert env["LEAN_ENV"] == "test"
    assert "VIRTUAL_ENV" not in env
    stock, _ = leanspec_environment(tmp_path / "stock", stock=True)
    assert stock["INTEROP_LEANSPEC_CHANGES"] == ""


_LISTEN_TASK = (
    "task: <Task pending name='Task-9' coro=<LiveNetworkEventSource.listen() done, "
    "defined at live.py:570> wait_for=<Future pending cb=[Task.task_wakeup()]>>"
)


def test_error_lines_are_read_from_both_implementations_logs(tmp_path: Path) -> None:
    log = tmp_path / "node.log"
    log.write_text(
        "2026-12-06 07:31:40,123 WARNING lean_p2p.node fine\n"
        "2026-12-06 07:31:41,456 ERROR lean_p2p.node ours failed\n"
        "2026-12-06 07:31:42 ERROR    asyncio: theirs failed\n"
        "details\n"
        "Traceback (most recent call last):\n"
        "2026-12-06 07:31:43 INFO     lean_spec: an ERROR in a message is not an error line\n"
    )
    found = error_lines(log)
    assert [(line.split()[-1], after) for _, line, after in found] == [
        ("failed", "2026-12-06 07:31:42 ERROR    asyncio: theirs failed"),
        ("failed", "details"),
        (
            "last):",
            "2026-12-06 07:31:43 INFO     lean_spec: an ERROR in a message is not an error line",
        ),
    ]
    assert error_lines(tmp_path / "missing.log") == []


def test_only_leanspecs_known_complaints_are_explained(tmp_path: Path) -> None:
    node = LeanSpecNode("lean_spec_0", tmp_path, 1, 2)
    started = (
        "2026-12-06 07:31:40 ERROR    asyncio: Task was destroyed but it is pending!\n"
        f"{_LISTEN_TASK}\n"
        "2026-12-06 07:31:50 ERROR    asyncio: Task was destroyed but it is pending!\n"
        "task: <Task pending name='Task-30' coro=<SyncService.run()>>\n"
        "2026-12-06 07:31:55 ERROR    lean_spec.cli.main: Node failed to start\n"
    )
    node.log_path.write_text(started)
    node.shutdowns = [(len(started.encode()), None)]
    with node.log_path.open("a") as log:
        log.write(
            "2026-12-06 07:32:40 ERROR    asyncio: Task was destroyed but it is pending!\n"
            "task: <Task pending name='Task-31' coro=<SyncService.run()>>\n"
        )
    unexplained, explained = node.errors()
    # its listener task, destroyed at start (a harmless defect), and a task its shutdown
    # leaves pending; another destroyed task while running, and a crash, are not
    assert [line[:19] for line in explained] == ["2026-12-06 07:31:40", "2026-12-06 07:32:40"]
    assert [line[:19] for line in unexplained] == ["2026-12-06 07:31:50", "2026-12-06 07:31:55"]


def test_a_given_interpreter_must_exist_and_import_leanspec(tmp_path: Path) -> None:
    with pytest.raises(LeanSpecUnavailable, match="no such file"):
        leanspec_python(tmp_path / "python")
    with pytest.raises(LeanSpecUnavailable, match="cannot import lean_spec"):
        leanspec_python(Path(sys.executable))


def _fake_setup(tmp_path: Path, body: str) -> Path:
    script = tmp_path / "setup-leanspec.sh"
    script.write_text(f"set -e\nvenv=$1\n{body}\n")
    return script


_MAKE_VENV = "\n".join(
    (
        'mkdir -p "$venv/bin"',
        'printf "#!/bin/sh\\nexit 0\\n" > "$venv/bin/python"',
        'chmod +x "$venv/bin/python"',
        "echo built",
    )
)


@pytest.fixture
def no_known_interpreter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(leanspec, "_known_interpreters", list)


@pytest.mark.usefixtures("no_known_interpreter")
def test_a_missing_venv_is_built_once_into_the_cache(tmp_path: Path) -> None:
    script = _fake_setup(tmp_path, _MAKE_VENV)
    cache = tmp_path / "cache"
    lines: list[str] = []
    python = leanspec_python(None, cache=cache, setup_script=script, show=lines.append)
    assert python == cache / "leanspec-venv" / "bin" / "python"
    assert "building its venv" in lines[0] and "venv built" in lines[-1]
    assert (cache / "setup-leanspec.log").read_text().strip() == "built"
    script.write_text("exit 1\n")  # not run again: the venv is there
    lines.clear()
    assert leanspec_python(None, cache=cache, setup_script=script, show=lines.append) == python
    assert lines == [f"leanSpec: using the venv built earlier in {cache / 'leanspec-venv'}"]


@pytest.mark.usefixtures("no_known_interpreter")
def test_a_failed_build_names_its_last_line_and_log(tmp_path: Path) -> None:
    script = _fake_setup(tmp_path, 'echo "pip: no route to host"\nexit 3')
    with pytest.raises(LeanSpecUnavailable) as failure:
        leanspec_python(None, cache=tmp_path / "c", setup_script=script, show=lambda _: None)
    message = str(failure.value)
    assert "exit code 3" in message and "pip: no route to host" in message
    assert str(tmp_path / "c" / "setup-leanspec.log") in message
    with pytest.raises(LeanSpecUnavailable, match="is missing; give --leanspec-python"):
        leanspec_python(None, cache=tmp_path / "c", setup_script=tmp_path / "none.sh")


@pytest.mark.usefixtures("no_known_interpreter")
def test_a_long_build_says_it_is_still_building(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(leanspec, "_BUILD_NOTE_SECONDS", 0.2)
    script = _fake_setup(tmp_path, "sleep 1\n" + _MAKE_VENV)
    lines: list[str] = []
    leanspec_python(None, cache=tmp_path / "c", setup_script=script, show=lines.append)
    assert any(line.startswith("leanSpec: still building (") for line in lines[1:-1])


@pytest.mark.usefixtures("no_known_interpreter")
def test_a_build_is_stopped_when_asked(tmp_path: Path) -> None:
    script = _fake_setup(tmp_path, "sleep 60")
    with pytest.raises(LeanSpecUnavailable, match="stopped while building"):
        leanspec_python(
            None,
            cache=tmp_path / "c",
            setup_script=script,
            show=lambda _: None,
            should_stop=lambda: True,
        )


def test_the_environment_variable_names_an_interpreter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    python = tmp_path / "bin" / "python"
    python.parent.mkdir()
    python.write_text("#!/bin/sh\nexit 0\n")
    python.chmod(0o755)
    monkeypatch.setenv(leanspec.PYTHON_ENV, str(python))
    lines: list[str] = []
    assert leanspec_python(None, cache=tmp_path / "c", show=lines.append) == python
    assert lines == [f"leanSpec: using {python}"]

"""The ``lean-p2p`` command line: every registered command exists and answers ``--help``."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

from lean_p2p.cli import BENCHMARKS, COMMANDS, build_parser, main


@pytest.mark.parametrize("module_name", sorted({*COMMANDS.values(), *BENCHMARKS.values()}))
def test_every_registered_module_defines_the_command_interface(module_name: str) -> None:
    module = importlib.import_module(module_name)
    assert isinstance(module.DESCRIPTION, str) and module.DESCRIPTION
    assert callable(module.configure)
    assert callable(module.run)


@pytest.mark.parametrize(
    "argv",
    [[name] for name in COMMANDS] + [["bench", name] for name in BENCHMARKS] + [["bench"]],
    ids=" ".join,
)
def test_help_of_every_subcommand(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--help"])
    assert exit_info.value.code == 0
    assert "usage: lean-p2p " + " ".join(argv) in capsys.readouterr().out


def test_no_command_prints_help_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().out


def test_unknown_command_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["no-such-command"])
    assert exit_info.value.code == 2


def test_console_entry_point_runs_as_module() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "lean_p2p.cli", "--version"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert completed.stdout.startswith("lean-p2p ")

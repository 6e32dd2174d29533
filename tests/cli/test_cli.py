"""The ``lean-p2p`` command line: every registered command exists and answers ``--help``."""

from __future__ import annotations

import functools
import importlib
import logging
import subprocess
import sys

import pytest

from lean_p2p.cli import (
    BENCHMARKS,
    COMMANDS,
    _drop_interrupt_records,
    _unless_interrupted,
    build_parser,
    main,
)


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


def test_after_an_interrupt_only_its_own_reports_are_dropped() -> None:
    """entry_point's hook passes every unraisable exception on until the run was
    interrupted, and its asyncio filter drops only records about the interrupt."""
    seen: list[object] = []
    interrupted = False
    hook = functools.partial(_unless_interrupted, seen.append, lambda: interrupted)
    hook("a finalizer failed")
    interrupted = True
    hook("a half-built loop's finalizer failed")
    assert seen == ["a finalizer failed"]

    def record(error: BaseException) -> logging.LogRecord:
        return logging.LogRecord(
            "asyncio",
            logging.ERROR,
            __file__,
            1,
            "Task exception was never retrieved",
            None,
            (type(error), error, None),
        )

    assert _drop_interrupt_records(record(KeyboardInterrupt())) is False
    assert _drop_interrupt_records(record(ValueError("a real failure"))) is True
    assert (
        _drop_interrupt_records(
            logging.LogRecord("asyncio", logging.WARNING, __file__, 1, "slow callback", None, None)
        )
        is True
    )

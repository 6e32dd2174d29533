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
    _show_warning_unless_interrupted,
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
    interrupted, its warnings hook drops only a never-awaited coroutine's warning after
    it, and its asyncio filter drops only records about the interrupt."""
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

    shown: list[tuple[str, type[Warning]]] = []

    def show(message: Warning | str, category: type[Warning], *_where: object) -> None:
        shown.append((str(message), category))

    interrupted = False
    show_warning = functools.partial(_show_warning_unless_interrupted, show, lambda: interrupted)
    never_awaited = "coroutine 'Runner.run.<locals>.main' was never awaited"
    show_warning(never_awaited, RuntimeWarning, __file__, 1)
    interrupted = True
    show_warning(never_awaited, RuntimeWarning, __file__, 2)  # the interrupt's: dropped
    show_warning("a real runtime warning", RuntimeWarning, __file__, 3, None, None)
    show_warning(never_awaited, DeprecationWarning, __file__, 4)
    assert shown == [
        (never_awaited, RuntimeWarning),
        ("a real runtime warning", RuntimeWarning),
        (never_awaited, DeprecationWarning),
    ]

    assert _drop_interrupt_records(record(KeyboardInterrupt())) is False
    assert _drop_interrupt_records(record(ValueError("a real failure"))) is True
    assert (
        _drop_interrupt_records(
            logging.LogRecord("asyncio", logging.WARNING, __file__, 1, "slow callback", None, None)
        )
        is True
    )


def test_the_executable_drops_a_never_awaited_coroutine_only_after_an_interrupt() -> None:
    """entry_point's wiring, in a process of its own: a coroutine freed unstarted warns
    as usual, unless the run was interrupted (the interrupt can land between a
    coroutine's creation and its first step)."""
    script = """
import asyncio, gc, sys
from lean_p2p import cli
from lean_p2p.tools.running import INTERRUPTS

async def never_started() -> None:
    pass

def run() -> int:
    first = never_started()
    del first
    gc.collect()
    INTERRUPTS.count = 1  # as Ctrl-C would
    second = never_started()
    del second
    gc.collect()
    return 130

cli.main = run
sys.exit(cli.entry_point())
"""
    completed = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert completed.returncode == 130
    assert completed.stderr.count("was never awaited") == 1, completed.stderr

"""The machinery every command shares: Ctrl-C, progress, output paths."""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from lean_p2p.tools.running import (
    INTERRUPTS,
    Interrupts,
    Progress,
    output_file,
    run_loop,
    set_quiet,
)


@pytest.fixture(autouse=True)
def fresh_interrupt_count() -> Iterator[None]:
    # run_loop counts Ctrl-C in the process-wide INTERRUPTS; a second count would exit.
    INTERRUPTS.count = 0
    yield
    INTERRUPTS.count = 0


def test_first_interrupt_without_a_stop_callback_raises_keyboard_interrupt() -> None:
    interrupts = Interrupts()
    with pytest.raises(KeyboardInterrupt):
        interrupts.on_sigint()
    assert interrupts.interrupted


def test_first_interrupt_calls_the_stop_callbacks_instead(
    capsys: pytest.CaptureFixture[str],
) -> None:
    interrupts = Interrupts()
    stopped: list[str] = []
    with interrupts.stopping(lambda: stopped.append("stop")):
        interrupts.on_sigint()
    assert stopped == ["stop"]
    assert "press Ctrl-C again to exit at once" in capsys.readouterr().err
    with pytest.raises(KeyboardInterrupt):  # the callback is gone after the block
        Interrupts().on_sigint()


def test_second_interrupt_runs_the_cleanups_then_exits_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    interrupts = Interrupts()
    events: list[str] = []

    def fake_exit(code: int) -> None:
        events.append(f"exit {code}")
        raise SystemExit(code)

    monkeypatch.setattr(os, "_exit", fake_exit)
    with (
        interrupts.stopping(lambda: events.append("stop")),
        interrupts.cleanup_on_exit(lambda: events.append("kill children")),
    ):
        interrupts.on_sigint()
        with pytest.raises(SystemExit):
            interrupts.on_sigint()
    assert events == ["stop", "kill children", "exit 130"]


def test_run_loop_sets_stop_on_sigint_and_the_main_finishes_in_order() -> None:
    async def main(stop: asyncio.Event) -> str:
        os.kill(os.getpid(), signal.SIGINT)  # delivered through the loop's handler
        await stop.wait()
        return "stopped in order"

    assert run_loop(main) == "stopped in order"


def test_run_loop_cancels_a_main_that_ignores_stop_and_raises_keyboard_interrupt() -> None:
    cancelled: list[bool] = []

    async def main(_stop: asyncio.Event) -> None:
        os.kill(os.getpid(), signal.SIGINT)
        try:
            await asyncio.Event().wait()  # never set: only cancellation ends this
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    with pytest.raises(KeyboardInterrupt):
        run_loop(main, cancel_on_stop=True)
    assert cancelled == [True]


def test_progress_is_off_when_stderr_is_not_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LEAN_P2P_PROGRESS", raising=False)
    stream = io.StringIO()
    progress = Progress("run", stream=stream)
    progress.update("half way")
    assert stream.getvalue() == ""


def test_progress_forced_writes_whole_lines_unless_quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEAN_P2P_PROGRESS", "1")
    stream = io.StringIO()
    progress = Progress("run", stream=stream, interval=3600)
    progress.update("one")
    progress.update("two")  # within the interval: not shown
    progress.update("three", force=True)
    assert stream.getvalue() == "run: one\nrun: three\n"
    set_quiet(True)
    try:
        quiet = io.StringIO()
        Progress("run", stream=quiet).update("nothing")
        assert quiet.getvalue() == ""
    finally:
        set_quiet(False)


def test_output_file_creates_missing_directories_before_the_work(tmp_path: Path) -> None:
    path = output_file(str(tmp_path / "a" / "b" / "out.json"))
    assert path.parent.is_dir()
    assert not path.exists()


def test_output_file_refuses_a_directory_and_an_uncreatable_parent(tmp_path: Path) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="is a directory"):
        output_file(str(tmp_path))
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(argparse.ArgumentTypeError, match="cannot create"):
        output_file(str(blocker / "out.json"))


def test_log_lines_show_their_structured_fields_once() -> None:
    import logging

    from lean_p2p.tools.running import FieldsFormatter

    record = logging.makeLogRecord(
        {
            "msg": "publish failed",
            "levelname": "WARNING",
            "name": "lean_p2p.p2p",
            "reason": "no peer accepted the message",
            "hint": "no peer is connected",
            "p2p_event": "publish failed",
            "p2p_fields": {"reason": "no peer accepted the message"},
        }
    )
    line = FieldsFormatter("%(levelname)s %(name)s %(message)s").format(record)
    assert line == (
        "WARNING lean_p2p.p2p publish failed reason='no peer accepted the message' "
        "hint='no peer is connected'"
    )

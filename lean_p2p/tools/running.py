"""What every command shares: its loop, Ctrl-C, progress, output paths and logging.

Main thread of a command's process. Signal handlers run there too: Python runs them in
the main thread, and a command's loop (uvloop unless disabled) receives them through
``loop.add_signal_handler``.

- :func:`run_loop` runs ``main(stop)`` on a fresh loop. The first SIGINT (or a SIGTERM)
  sets ``stop``: the command stops in order and prints what it has, and the command
  line exits 130 after it. A command that has nothing partial to show passes
  ``cancel_on_stop=True`` and is cancelled instead.
- :data:`INTERRUPTS` counts Ctrl-C for the whole process. Outside a loop the first
  SIGINT raises :class:`KeyboardInterrupt` in the main thread (the command line turns
  it into one line and exit code 130); a second SIGINT, anywhere, runs the registered
  cleanups (killing child processes) and exits at once with 130.
- :class:`Progress` writes progress to stderr: one line rewritten in place on a
  terminal, nothing when stderr is not a terminal or the command runs with ``--quiet``
  (``LEAN_P2P_PROGRESS=1`` forces whole lines, for logs and tests).
- :func:`output_file` is the argparse type of every ``--json``/``--out`` path: it
  creates the missing directories before any work starts, so results are never lost
  to a bad path at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from types import FrameType
from typing import Any, TextIO, TypeVar

__all__ = [
    "EXIT_INTERRUPTED",
    "INTERRUPTS",
    "PROGRESS_ENV",
    "FieldsFormatter",
    "Interrupts",
    "Progress",
    "configure_logging",
    "output_file",
    "run_loop",
    "say",
    "set_quiet",
]

_T = TypeVar("_T")

#: the exit code of a command stopped by Ctrl-C (128 + SIGINT), as shells report it
EXIT_INTERRUPTED = 130
#: set to 1 to get progress lines even when stderr is not a terminal
PROGRESS_ENV = "LEAN_P2P_PROGRESS"


def say(text: str) -> None:
    """One line on stderr, for messages about the run rather than its results."""
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


class Interrupts:
    """Ctrl-C for a command process: the first stops it in order, the second at once."""

    def __init__(self) -> None:
        self.count = 0
        self._stop_callbacks: list[Callable[[], None]] = []
        self._cleanups: list[Callable[[], None]] = []
        self.installed = False

    @property
    def interrupted(self) -> bool:
        return self.count > 0

    def begin_run(self) -> None:
        """A command starts: count its Ctrl-C from zero and handle SIGINT. (A process
        runs one command; a caller running several in one process starts each fresh.)"""
        self.count = 0
        self.install()

    def install(self) -> None:
        """Handle SIGINT from now on (only the main thread may; elsewhere, a no-op)."""
        if threading.current_thread() is not threading.main_thread():
            return
        signal.signal(signal.SIGINT, self._on_signal)
        self.installed = True

    def _on_signal(self, _signum: int, _frame: FrameType | None) -> None:
        self.on_sigint()

    def on_sigint(self) -> None:
        self.count += 1
        if self.count > 1:
            self.exit_now()
        if not self._stop_callbacks:
            raise KeyboardInterrupt
        say("interrupted: stopping (press Ctrl-C again to exit at once)")
        for callback in list(self._stop_callbacks):
            callback()

    def exit_now(self) -> None:
        say("interrupted again: exiting now")
        for cleanup in reversed(self._cleanups):
            with contextlib.suppress(Exception):
                cleanup()
        with contextlib.suppress(Exception):
            sys.stdout.flush()
        os._exit(EXIT_INTERRUPTED)

    def wait_for_threads(self, grace: float = 3.0) -> None:
        """After an interrupted run: give the threads it left ``grace`` seconds, then
        exit at once if any would still keep the process alive.

        A run cut short by :class:`KeyboardInterrupt` can leave a non-daemon thread
        that only its normal end would have stopped (a dependency's cleanup thread, a
        sender that never finished starting); Python would wait for it forever at exit.
        """
        deadline = time.monotonic() + grace
        current = threading.current_thread()
        for thread in threading.enumerate():
            if thread is not current and not thread.daemon:
                thread.join(max(0.0, deadline - time.monotonic()))
        if any(t.is_alive() and not t.daemon and t is not current for t in threading.enumerate()):
            with contextlib.suppress(Exception):
                sys.stdout.flush()
                sys.stderr.flush()
            os._exit(EXIT_INTERRUPTED)

    @contextlib.contextmanager
    def stopping(self, callback: Callable[[], None]) -> Iterator[None]:
        """While inside, the first SIGINT calls ``callback`` instead of raising."""
        self._stop_callbacks.append(callback)
        try:
            yield
        finally:
            self._stop_callbacks.remove(callback)

    @contextlib.contextmanager
    def cleanup_on_exit(self, cleanup: Callable[[], None]) -> Iterator[None]:
        """While inside, an exit at once (second SIGINT) calls ``cleanup`` first."""
        self._cleanups.append(cleanup)
        try:
            yield
        finally:
            self._cleanups.remove(cleanup)


#: the process's one Ctrl-C counter (installed by the command line)
INTERRUPTS = Interrupts()


def run_loop(
    main: Callable[[asyncio.Event], Coroutine[Any, Any, _T]],
    *,
    use_uvloop: bool = True,
    cancel_on_stop: bool = False,
) -> _T:
    """Run ``main(stop)`` on a fresh loop in this (main) thread; see the module doc.

    With ``cancel_on_stop``, the first Ctrl-C cancels ``main`` and raises
    :class:`KeyboardInterrupt` here once it has unwound.
    """
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    if use_uvloop:
        try:
            import uvloop
        except ImportError:  # asyncio works too; uvloop is only faster
            pass
        else:
            loop_factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(_guarded(main, cancel_on_stop=cancel_on_stop))


async def _guarded(
    main: Callable[[asyncio.Event], Coroutine[Any, Any, _T]], *, cancel_on_stop: bool
) -> _T:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    # The stop callback goes in first: a SIGINT that arrives as soon as the handler is
    # installed must find it, or it would raise inside a loop callback.
    with INTERRUPTS.stopping(stop.set):
        # Through the loop, not signal.signal: the handler must run on the loop thread
        # between callbacks, and the loop must wake for it (a bare Python handler waits
        # until the loop next runs Python code).
        loop.add_signal_handler(signal.SIGINT, INTERRUPTS.on_sigint)
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        try:
            if not cancel_on_stop:
                return await main(stop)
            task = asyncio.ensure_future(main(stop))
            stopped = asyncio.ensure_future(stop.wait())
            await asyncio.wait((task, stopped), return_when=asyncio.FIRST_COMPLETED)
            stopped.cancel()
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                raise KeyboardInterrupt
            return task.result()
        finally:
            loop.remove_signal_handler(signal.SIGINT)
            loop.remove_signal_handler(signal.SIGTERM)
            if INTERRUPTS.installed:
                # Back to the process-wide handler: a Ctrl-C after the loop still counts.
                INTERRUPTS.install()


class Progress:
    """Progress of a long run on stderr; see the module doc for when it shows."""

    _quiet = False

    def __init__(
        self,
        label: str,
        *,
        interval: float = 0.5,
        stream: TextIO | None = None,
    ) -> None:
        self.label = label
        self._stream = stream if stream is not None else sys.stderr
        self._interval = interval
        self._next = 0.0
        forced = os.environ.get(PROGRESS_ENV) == "1"
        self._in_place = not forced and self._stream.isatty()
        self.enabled = not Progress._quiet and (forced or self._in_place)
        self._shown = False

    def update(self, text: str, *, force: bool = False) -> None:
        """Show ``text`` (at most every ``interval`` seconds unless ``force``)."""
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now < self._next:
            return
        self._next = now + self._interval
        line = f"{self.label}: {text}"
        if self._in_place:
            self._stream.write("\r\x1b[2K" + line)
        else:
            self._stream.write(line + "\n")
        self._stream.flush()
        self._shown = True

    def done(self) -> None:
        """End the progress line, so that what follows starts on a line of its own."""
        if self._shown and self._in_place:
            self._stream.write("\r\x1b[2K")
            self._stream.flush()
        self._shown = False


def set_quiet(quiet: bool) -> None:
    """``--quiet``: no progress from any :class:`Progress` made after this."""
    Progress._quiet = quiet


def output_file(text: str) -> Path:
    """argparse type of an output path: makes its directory now, refuses a bad one."""
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{path} is a directory; name a file in it")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise argparse.ArgumentTypeError(
            f"cannot create {path.parent}: {error.strerror or error}"
        ) from error
    if not os.access(path.parent, os.W_OK):
        raise argparse.ArgumentTypeError(f"cannot write into {path.parent}")
    return path


class FieldsFormatter(logging.Formatter):
    """The standard format plus the structured fields a record carries as ``extra``
    (the library logs ``reason=``, ``peer_id=``, ``hint=`` ... that way)."""

    # the P2P core's copies of its own fields, for log processors: shown once already
    _SKIPPED = frozenset(logging.makeLogRecord({}).__dict__) | {
        "message",
        "asctime",
        "p2p_event",
        "p2p_fields",
    }

    def format(self, record: logging.LogRecord) -> str:
        fields = {k: v for k, v in record.__dict__.items() if k not in self._SKIPPED}
        text = super().format(record)
        return text + "".join(f" {key}={value!r}" for key, value in fields.items())


def configure_logging(level: str) -> None:
    """A command's logging: ``level`` and above to stderr, with structured fields."""
    handler = logging.StreamHandler()
    handler.setFormatter(FieldsFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO), handlers=[handler])

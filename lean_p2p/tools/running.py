"""Running a coroutine on the node's loop from a command: uvloop when available, signals.

Main thread of a command's process: builds the loop (uvloop unless disabled), installs
SIGINT/SIGTERM handlers that set an :class:`asyncio.Event` (so a signal starts an
ordered shutdown instead of killing the process mid-write), and runs the coroutine.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

__all__ = ["configure_logging", "install_stop_signals", "run_loop"]

_T = TypeVar("_T")


def run_loop(main: Callable[[], Coroutine[Any, Any, _T]], *, use_uvloop: bool = True) -> _T:
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    if use_uvloop:
        try:
            import uvloop
        except ImportError:  # asyncio works too; uvloop is only faster
            pass
        else:
            loop_factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(main())


def install_stop_signals(stop: asyncio.Event) -> None:
    """SIGINT/SIGTERM set ``stop`` (call on the loop thread, inside the running loop)."""
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )

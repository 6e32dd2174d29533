"""What a remote peer can make our dependencies log is bounded. Any thread (logging's).

py-libp2p and aioquic log at WARNING and ERROR for things a peer does to us: a peer that
closes its stream instead of half-closing it makes py-libp2p's QUIC stream write
several ERROR lines per request ("Error writing to stream N: Cannot send data after
FIN"); one run saw 11,166 such lines, 589 KB, in one node's log. What a peer does must
never decide how much we log.

:class:`DependencyLogLimiter` sits on those libraries' loggers. Lines below WARNING pass
untouched (they are off unless asked for). Of each kind of WARNING-or-worse line (the
logger and the message with its numbers and ids blanked), the first passes, then at
most one per :data:`INTERVAL_S`, carrying how many of its kind were held back since;
every line is counted either way (:meth:`DependencyLogLimiter.statistics`), so nothing
is hidden, only summarized. The driver installs it when it starts.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable

__all__ = ["INTERVAL_S", "LIMITED_LOGGERS", "DependencyLogLimiter", "install"]

#: seconds between two lines of the same kind
INTERVAL_S = 60.0
#: the dependencies whose loggers are limited (and every logger below them)
LIMITED_LOGGERS = ("libp2p", "aioquic", "multiaddr")

_VARIABLE = re.compile(r"[0-9A-Za-z]{16,}|0x[0-9a-fA-F]+|\d+")


def _kind(record: logging.LogRecord) -> tuple[str, str]:
    return record.name, _VARIABLE.sub("#", record.getMessage())


class DependencyLogLimiter(logging.Filter):
    """A logging filter that summarizes repeated WARNING-and-worse lines by kind."""

    def __init__(
        self, interval: float = INTERVAL_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__()
        self._interval = interval
        self._clock = clock
        # Records come from any thread (the driver's trio thread, the loop, others).
        self._lock = threading.Lock()
        #: kind -> (when it last passed, lines held back since)
        self._kinds: dict[tuple[str, str], tuple[float, int]] = {}
        self._seen = 0
        self._held_back = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        kind = _kind(record)
        now = self._clock()
        with self._lock:
            self._seen += 1
            last = self._kinds.get(kind)
            if last is not None and now - last[0] < self._interval:
                self._kinds[kind] = (last[0], last[1] + 1)
                self._held_back += 1
                return False
            held = last[1] if last is not None else 0
            self._kinds[kind] = (now, 0)
        if held:
            record.msg = (
                f"{record.getMessage()} ({held} more like this in the last "
                f"{self._interval:.0f} s, not logged)"
            )
            record.args = None
        return True

    def statistics(self) -> dict[str, int]:
        with self._lock:
            return {
                "dependency_log_lines": self._seen,
                "dependency_log_lines_held_back": self._held_back,
                "dependency_log_kinds": len(self._kinds),
            }


_installed: DependencyLogLimiter | None = None
_install_lock = threading.Lock()


def install() -> DependencyLogLimiter:
    """Put the process's one limiter on every logger of :data:`LIMITED_LOGGERS` that
    exists now (the libraries create theirs at import, which the driver has done), and
    return it. Idempotent: later calls only cover loggers created since."""
    global _installed
    with _install_lock:
        if _installed is None:
            _installed = DependencyLogLimiter()
        limiter = _installed
        names = [
            name
            for name in list(logging.root.manager.loggerDict)
            if name.split(".")[0] in LIMITED_LOGGERS
        ]
        for name in [*LIMITED_LOGGERS, *names]:
            # A filter on a logger sees only records logged on that very logger, not
            # its children's, so each logger gets it.
            dependency_logger = logging.getLogger(name)
            if limiter not in dependency_logger.filters:
                dependency_logger.addFilter(limiter)
        return limiter

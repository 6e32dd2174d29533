"""A peer cannot decide how much py-libp2p logs on our node: repeated lines are
summarized, every one is counted."""

from __future__ import annotations

import logging

import pytest

from lean_p2p.driver import log_limits
from lean_p2p.driver.log_limits import DependencyLogLimiter


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _record(message: str, level: int = logging.ERROR, name: str = "libp2p.x") -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, message, None, None)


def test_repeats_of_a_kind_are_held_back_then_summarized() -> None:
    clock = FakeClock()
    limiter = DependencyLogLimiter(interval=60, clock=clock)
    passed = [
        limiter.filter(_record(f"Error writing to stream {n}: Cannot send data after FIN"))
        for n in range(1000)
    ]
    assert passed == [True] + [False] * 999  # the stream number does not make a new kind
    clock.now = 61
    summary = _record("Error writing to stream 5000: Cannot send data after FIN")
    assert limiter.filter(summary)
    assert "(999 more like this in the last 60 s, not logged)" in summary.getMessage()
    assert limiter.statistics() == {
        "dependency_log_lines": 1001,
        "dependency_log_lines_held_back": 999,
        "dependency_log_kinds": 1,
    }


def test_other_kinds_and_quiet_levels_pass() -> None:
    limiter = DependencyLogLimiter(interval=60, clock=FakeClock())
    assert limiter.filter(_record("one kind"))
    assert limiter.filter(_record("another kind"))
    assert limiter.filter(_record("one kind", name="libp2p.other"))  # another logger
    for _ in range(5):
        assert limiter.filter(_record("debug chatter", level=logging.DEBUG))
    assert limiter.statistics()["dependency_log_lines"] == 3  # DEBUG is not counted


def test_install_covers_the_libraries_loggers_below_them(
    caplog: pytest.LogCaptureFixture,
) -> None:
    noisy = logging.getLogger("libp2p.transport.quic.stream")
    limiter = log_limits.install()
    assert limiter in noisy.filters
    assert limiter in logging.getLogger("aioquic").filters
    assert log_limits.install() is limiter  # one limiter per process
    before = limiter.statistics()["dependency_log_lines_held_back"]
    with caplog.at_level(logging.ERROR, logger="libp2p.transport.quic.stream"):
        for n in range(50):
            noisy.error(f"Error writing to stream {n}: Cannot send data after FIN (test)")
    shown = [r for r in caplog.records if "(test)" in r.getMessage()]
    assert len(shown) <= 1
    assert limiter.statistics()["dependency_log_lines_held_back"] - before >= 49

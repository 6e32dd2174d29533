"""The native producer driver (C pthreads) that the benches and stress runs use."""

from __future__ import annotations

import pytest

from lean_p2p.tools.native_producers import ProducerDriver


def test_a_burst_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="burst must be at least 1"):
        ProducerDriver().start(0, None, threads=1, events_per_thread=1, interval_ns=1, burst=0)

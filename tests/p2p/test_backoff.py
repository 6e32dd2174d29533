"""Backoff constants: one source of truth, and the documented schedule holds."""

from __future__ import annotations

import itertools

import pytest

from lean_p2p.p2p import backoff


def test_retry_delay_grows_by_the_factor_until_the_cap() -> None:
    delays = [backoff.retry_delay(attempt) for attempt in range(1, 40)]
    assert delays[0] == backoff.FETCH_BACKOFF_BASE
    for earlier, later in itertools.pairwise(delays):
        assert later == min(earlier * backoff.FETCH_BACKOFF_FACTOR, backoff.FETCH_BACKOFF_CAP)
    assert max(delays) == backoff.FETCH_BACKOFF_CAP


def test_retry_delay_rejects_attempt_zero() -> None:
    with pytest.raises(ValueError, match="attempt"):
        backoff.retry_delay(0)


def test_huge_attempt_numbers_stay_capped() -> None:
    assert backoff.retry_delay(10**6) == backoff.FETCH_BACKOFF_CAP


def test_documented_schedule_matches_the_code() -> None:
    # The module docstring spells out the waits; they must be what the code does.
    assert backoff.__doc__ is not None
    schedule = [backoff.retry_delay(a) for a in range(1, backoff.FETCH_MAX_ATTEMPTS)]
    rendered = ", ".join(f"{delay:g}" for delay in schedule)
    assert f"{rendered} s" in " ".join(backoff.__doc__.split())
    assert f"{sum(schedule):g} s of backoff" in " ".join(backoff.__doc__.split())


def test_protocol_limits_agree_with_the_containers() -> None:
    from lean_p2p.containers import MAX_REQUEST_BLOCKS

    assert backoff.MAX_ROOTS_PER_REQUEST == MAX_REQUEST_BLOCKS
    assert backoff.MAX_BLOCKS_PER_REQUEST == MAX_REQUEST_BLOCKS


def test_every_exported_constant_exists() -> None:
    for name in backoff.__all__:
        assert hasattr(backoff, name), name

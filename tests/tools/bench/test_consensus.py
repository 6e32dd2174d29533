"""bench consensus compares timings only of replays that agree."""

from __future__ import annotations

from lean_p2p.tools.bench.consensus import judge_outcomes

KINDS = ["anchor", "tick", "block", "attestation", "gossipAggregatedAttestation"]


def test_identical_outcomes_have_no_mismatch() -> None:
    outcomes = [True, True, True, False, True]
    assert judge_outcomes(outcomes, KINDS, outcomes) == (0, 0)


def test_a_forged_vote_leanspec_accepts_unchecked_is_the_documented_mismatch() -> None:
    ours = [True, True, True, False, True]
    theirs = [True, True, True, True, True]
    assert judge_outcomes(ours, KINDS, theirs) == (1, 0)


def test_a_rejected_block_is_an_unexplained_mismatch() -> None:
    # leanSpec refusing every block (its prover stand-in failing) must not yield a ratio.
    ours = [True, True, True, True, True]
    theirs = [True, True, False, True, True]
    assert judge_outcomes(ours, KINDS, theirs) == (1, 1)


def test_a_vote_we_accept_and_leanspec_refuses_is_unexplained() -> None:
    ours = [True, True, True, True, True]
    theirs = [True, True, True, False, True]
    assert judge_outcomes(ours, KINDS, theirs) == (1, 1)


def test_missing_outcomes_count_as_unexplained() -> None:
    ours = [True, True, True, True, True]
    assert judge_outcomes(ours, KINDS, ours[:3]) == (2, 2)

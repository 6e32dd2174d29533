"""The default (mocked) verifier: loud about its mode, strict about what it accepts."""

from __future__ import annotations

import logging

import pytest

from lean_p2p.consensus.signatures import MOCK_PROOF_PREFIX, MockedProofVerifier, mock_proof
from lean_p2p.consensus.validator import PlaceholderSigner
from lean_p2p.containers import AttestationData, Checkpoint, active_scheme

_DATA = AttestationData(
    slot=3,
    head=Checkpoint(root=b"\x01" * 32, slot=3),
    target=Checkpoint(root=b"\x01" * 32, slot=3),
    source=Checkpoint(root=b"\x02" * 32, slot=0),
)


def test_construction_warns_and_names_the_mode(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="lean_p2p.consensus.signatures"):
        verifier = MockedProofVerifier()
    warnings = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "mode=mocked" in warnings[0].getMessage()
    assert "NOT cryptographically secure" in warnings[0].getMessage()
    assert verifier.mode == "mocked"


def test_proofs_must_carry_the_mock_prefix() -> None:
    verifier = MockedProofVerifier()
    proof = mock_proof(b"anything")
    assert proof.startswith(MOCK_PROOF_PREFIX)
    assert verifier.verify_aggregate([b"k"], b"m" * 32, 1, proof)
    assert not verifier.verify_aggregate([b"k"], b"m" * 32, 1, b"\x01" + proof[1:])
    assert verifier.verify_block_proof([[b"k"]], [(b"m" * 32, 1)], proof)
    assert not verifier.verify_block_proof([[b"k"]], [], proof)
    assert not verifier.verify_block_proof([[b"k"]], [(b"m" * 32, 1)], b"")


def test_signature_structure_is_checked() -> None:
    verifier = MockedProofVerifier()
    good = PlaceholderSigner().sign_attestation(0, _DATA)
    assert len(good) == active_scheme().signature_size
    assert verifier.verify_attestation(b"k", 3, b"m", good)
    assert not verifier.verify_attestation(b"k", 3, b"m", bytes(len(good)))  # blank rho
    assert not verifier.verify_attestation(b"k", 3, b"m", good[:-1])  # wrong size
    bad_offset = b"\x00\x00\x00\x00" + good[4:]
    assert not verifier.verify_attestation(b"k", 3, b"m", bad_offset)
    non_canonical = good[:-4] + (2**31 - 1).to_bytes(4, "little")
    assert not verifier.verify_attestation(b"k", 3, b"m", non_canonical)


def test_aggregation_placeholders_are_deterministic_and_distinct() -> None:
    verifier = MockedProofVerifier()
    one = verifier.aggregate(b"m" * 32, 1, [(0, b"k0", b"s0")], [])
    assert one == verifier.aggregate(b"m" * 32, 1, [(0, b"k0", b"s0")], [])
    assert one != verifier.aggregate(b"m" * 32, 1, [(1, b"k1", b"s1")], [])
    assert verifier.verify_aggregate([b"k0"], b"m" * 32, 1, one)

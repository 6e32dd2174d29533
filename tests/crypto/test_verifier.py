"""XmssVerifier: the store's verifier with XMSS signatures verified for real."""

from __future__ import annotations

import hashlib
import logging

import pytest

from lean_p2p.consensus import MockedProofVerifier, SignatureVerifier
from lean_p2p.containers.scheme import TEST_SCHEME
from lean_p2p.containers.xmss import signature_from_parts
from lean_p2p.crypto import generate_key_pair, sign
from lean_p2p.crypto.verifier import MOCK_PROOF_PREFIX, XmssVerifier

MESSAGE = hashlib.sha256(b"attestation data root").digest()


def test_a_real_signature_verifies_and_anything_else_does_not() -> None:
    verifier: SignatureVerifier = XmssVerifier(TEST_SCHEME)
    pair = generate_key_pair(0, 32, seed=b"verifier", scheme=TEST_SCHEME)
    signature = sign(pair.secret_key, 7, MESSAGE)
    assert verifier.verify_attestation(pair.public_key, 7, MESSAGE, signature)
    assert not verifier.verify_attestation(pair.public_key, 8, MESSAGE, signature)
    assert not verifier.verify_attestation(pair.public_key, 7, bytes(32), signature)
    other = generate_key_pair(0, 32, seed=b"another", scheme=TEST_SCHEME).public_key
    assert not verifier.verify_attestation(other, 7, MESSAGE, signature)
    # malformed bytes are a rejection, not an exception
    assert not verifier.verify_attestation(pair.public_key, 7, MESSAGE, signature[:-1])
    assert not verifier.verify_attestation(pair.public_key[:-1], 7, MESSAGE, signature)
    # the structural check alone would have passed a blank signature with live rho
    blank = signature_from_parts(rho=b"\x01", scheme=TEST_SCHEME)
    assert not verifier.verify_attestation(pair.public_key, 7, MESSAGE, blank)


def test_proofs_are_checked_as_the_mocked_verifier_checks_them() -> None:
    ours = XmssVerifier(TEST_SCHEME)
    mocked = MockedProofVerifier()
    inputs = (MESSAGE, 3, [(0, b"k" * 52, b"s" * 424)], [(MOCK_PROOF_PREFIX + b"c", [b"k"])])
    proof = ours.aggregate(*inputs)
    assert proof == mocked.aggregate(*inputs)
    assert ours.verify_aggregate([b"k" * 52], MESSAGE, 3, proof)
    assert not ours.verify_aggregate([b"k" * 52], MESSAGE, 3, b"\x01" + proof[1:])
    assert ours.verify_block_proof([[b"k"]], [(MESSAGE, 3)], proof)
    assert not ours.verify_block_proof([[b"k"], [b"j"]], [(MESSAGE, 3)], proof)


def test_it_says_what_it_does_not_verify(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="lean_p2p.crypto.verifier"):
        verifier = XmssVerifier()
    assert verifier.mode == "xmss"
    assert "mocked-prover placeholder" in caplog.text

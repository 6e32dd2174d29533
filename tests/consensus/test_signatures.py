"""The verifiers: the default (mocked) one loud about its mode and strict about what it
accepts; XmssVerifier verifying signatures for real and proofs as the mocked one does."""

from __future__ import annotations

import hashlib
import logging

import pytest

from lean_p2p.consensus.signatures import (
    MOCK_PROOF_PREFIX,
    MockedProofVerifier,
    SignatureVerifier,
    XmssVerifier,
    mock_proof,
    proof_with_proposer_signature,
    proposer_signature_of,
)
from lean_p2p.consensus.validator import PlaceholderSigner
from lean_p2p.containers import TEST_SCHEME, AttestationData, Checkpoint, active_scheme
from lean_p2p.containers.xmss import signature_from_parts
from lean_p2p.crypto import generate_key_pair, sign

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


_MESSAGE = hashlib.sha256(b"attestation data root").digest()


def test_the_xmss_verifier_accepts_a_real_signature_and_nothing_else() -> None:
    verifier: SignatureVerifier = XmssVerifier(TEST_SCHEME)
    pair = generate_key_pair(0, 32, seed=b"verifier", scheme=TEST_SCHEME)
    signature = sign(pair.secret_key, 7, _MESSAGE)
    assert verifier.verify_attestation(pair.public_key, 7, _MESSAGE, signature)
    assert not verifier.verify_attestation(pair.public_key, 8, _MESSAGE, signature)
    assert not verifier.verify_attestation(pair.public_key, 7, bytes(32), signature)
    other = generate_key_pair(0, 32, seed=b"another", scheme=TEST_SCHEME).public_key
    assert not verifier.verify_attestation(other, 7, _MESSAGE, signature)
    # malformed bytes are a rejection, not an exception
    assert not verifier.verify_attestation(pair.public_key, 7, _MESSAGE, signature[:-1])
    assert not verifier.verify_attestation(pair.public_key[:-1], 7, _MESSAGE, signature)
    # the structural check alone would have passed a blank signature with live rho
    blank = signature_from_parts(rho=b"\x01", scheme=TEST_SCHEME)
    assert not verifier.verify_attestation(pair.public_key, 7, _MESSAGE, blank)


def test_the_xmss_verifier_checks_proofs_as_the_mocked_one() -> None:
    ours = XmssVerifier(TEST_SCHEME)
    mocked = MockedProofVerifier()
    inputs = (_MESSAGE, 3, [(0, b"k" * 52, b"s" * 424)], [(MOCK_PROOF_PREFIX + b"c", [b"k"])])
    proof = ours.aggregate(*inputs)
    assert proof == mocked.aggregate(*inputs)
    assert ours.verify_aggregate([b"k" * 52], _MESSAGE, 3, proof)
    assert not ours.verify_aggregate([b"k" * 52], _MESSAGE, 3, b"\x01" + proof[1:])
    assert ours.verify_block_proof([[b"k"]], [(_MESSAGE, 3)], proof)
    assert not ours.verify_block_proof([[b"k"], [b"j"]], [(_MESSAGE, 3)], proof)


def test_the_xmss_verifier_says_what_it_does_not_verify(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="lean_p2p.consensus.signatures"):
        verifier = XmssVerifier()
    assert verifier.mode == "xmss"
    assert "mocked-prover placeholder" in caplog.text


def test_a_block_proof_can_carry_its_proposers_signature() -> None:
    proof = proof_with_proposer_signature(b"fingerprint", b"S" * 424)
    assert proof.startswith(mock_proof(b"fingerprint"))
    assert proposer_signature_of(proof) == b"S" * 424
    assert proposer_signature_of(mock_proof(b"fingerprint")) is None
    assert proposer_signature_of(b"\x01" + proof[1:]) is None
    # the mocked verifier (and leanSpec's stand-in prover) still see a placeholder
    assert MockedProofVerifier().verify_block_proof([[b"k"]], [(b"r" * 32, 1)], proof)


def test_the_xmss_verifier_checks_the_proposers_signature_in_a_block_proof() -> None:
    pair = generate_key_pair(0, 32, seed=b"proposer", scheme=TEST_SCHEME)
    root = hashlib.sha256(b"block").digest()
    signature = sign(pair.secret_key, 5, root)
    proof = proof_with_proposer_signature(root, signature)
    keys, messages = [[pair.public_key]], [(root, 5)]
    strict = XmssVerifier(TEST_SCHEME, require_proposer_signature=True)
    lenient = XmssVerifier(TEST_SCHEME)
    for verifier in (strict, lenient):
        assert verifier.verify_block_proof(keys, messages, proof)
        assert not verifier.verify_block_proof(keys, [(root, 6)], proof)  # another slot
        forged = proof[:-4] + bytes([proof[-4] ^ 1]) + proof[-3:]
        assert not verifier.verify_block_proof(keys, messages, forged)
    # a placeholder without the signature: only the vectors' (lenient) verifier takes it
    assert lenient.verify_block_proof(keys, messages, mock_proof(root))
    assert not strict.verify_block_proof(keys, messages, mock_proof(root))


def test_empty_proofs_pass_only_when_a_mixed_devnet_asks_for_them() -> None:
    pair = generate_key_pair(0, 32, seed=b"proposer", scheme=TEST_SCHEME)
    root = hashlib.sha256(b"block").digest()
    keys, messages = [[pair.public_key]], [(root, 5)]
    mixed = XmssVerifier(TEST_SCHEME, accept_empty_proofs=True)
    for verifier in (XmssVerifier(TEST_SCHEME), MockedProofVerifier()):
        assert not verifier.verify_block_proof(keys, messages, b"")
        assert not verifier.verify_aggregate([pair.public_key], root, 5, b"")
    # leanSpec's stand-in prover: empty aggregate and block proofs
    assert mixed.verify_block_proof(keys, messages, b"")
    assert mixed.verify_aggregate([pair.public_key], root, 5, b"")
    assert not mixed.verify_block_proof([[pair.public_key], [b"j"]], messages, b"")
    # anything else is judged as before: garbage fails, a carried signature is verified
    assert not mixed.verify_block_proof(keys, messages, b"\x01garbage")
    assert not mixed.verify_aggregate([pair.public_key], root, 5, b"\x01garbage")
    signed = proof_with_proposer_signature(root, sign(pair.secret_key, 5, root))
    assert mixed.verify_block_proof(keys, messages, signed)
    assert not mixed.verify_block_proof(keys, [(root, 6)], signed)


def test_empty_proofs_and_a_required_proposer_signature_exclude_each_other() -> None:
    with pytest.raises(ValueError, match="exclude each other"):
        XmssVerifier(TEST_SCHEME, require_proposer_signature=True, accept_empty_proofs=True)

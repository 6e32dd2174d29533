"""XMSS verification in C: leanSpec's own signatures and their corruptions, both ways of
being wrong (invalid, malformed), and the Poseidon permutation's edges."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lean_p2p.containers.scheme import PRODUCTION_SCHEME, TEST_SCHEME, XmssScheme
from lean_p2p.containers.xmss import FIELD_MODULUS, signature_from_parts
from lean_p2p.crypto import XmssVerdict, poseidon_permute, sign_one_leaf, verify
from lean_p2p.tools.spectest.formats import xmss_signature
from lean_p2p.tools.spectest.runner import Outcome, run_file
from tests.crypto.vectors import generated_vector_files

KEY = bytes(52)
MESSAGE = bytes(range(32))


@pytest.fixture(scope="module")
def xmss_vector_files() -> list[Path]:
    return generated_vector_files("xmss_signature")


def test_we_agree_with_leanspec_on_every_generated_vector(xmss_vector_files: list[Path]) -> None:
    verdicts = []
    for path in xmss_vector_files:
        for result in run_file(xmss_signature.FORMAT, xmss_signature.run_vector, path):
            assert result.outcome is Outcome.PASSED, f"{result.test_id}: {result.detail}"
            verdicts.append(result.test_id)
    # the generator writes each signature valid and in seven corrupted forms
    assert sum(test_id.endswith("_valid") for test_id in verdicts) >= 3
    assert len(verdicts) >= 8 * 3


def test_leanspec_accepts_our_signatures_in_both_schemes(xmss_vector_files: list[Path]) -> None:
    # Written by scripts/xmss_sign_ours.py, judged by leanSpec (--verify-ours): a valid
    # production signature proves our production hashing is leanSpec's, bit for bit.
    for scheme in ("test", "production"):
        ours = [path for path in xmss_vector_files if path.parts[-2:] == (scheme, "ours.json")]
        assert ours, f"no leanSpec verdicts on our {scheme} signatures"
        fixtures = json.loads(ours[0].read_text())
        valid = [test_id for test_id, fixture in fixtures.items() if fixture["valid"]]
        assert valid and all(test_id.endswith("_valid") for test_id in valid), valid
        # signatures by real keys: leanSpec re-derived each from the key's seed, and the
        # spectest format demands the same bytes (run in the test above)
        rederived = [fixture for fixture in fixtures.values() if "leanSpecSignature" in fixture]
        assert len(rederived) >= 3, f"too few real-key {scheme} signatures"
        assert all(fixture["valid"] for fixture in rederived)


@pytest.mark.parametrize("scheme", [TEST_SCHEME, PRODUCTION_SCHEME], ids=lambda s: s.name)
def test_one_leaf_signatures_verify_and_any_change_breaks_them(scheme: XmssScheme) -> None:
    last_slot = 2**scheme.log_lifetime - 1
    public_key, signature = sign_one_leaf(5, last_slot, MESSAGE, scheme)
    assert sign_one_leaf(5, last_slot, MESSAGE, scheme) == (public_key, signature)
    assert verify(public_key, last_slot, MESSAGE, signature, scheme) is XmssVerdict.VALID
    assert verify(public_key, last_slot - 1, MESSAGE, signature, scheme) is XmssVerdict.INVALID
    changed = bytes([MESSAGE[0] ^ 1]) + MESSAGE[1:]
    assert verify(public_key, last_slot, changed, signature, scheme) is XmssVerdict.INVALID
    last_word = signature[:-4] + bytes([signature[-4] ^ 1]) + signature[-3:]
    assert verify(public_key, last_slot, MESSAGE, last_word, scheme) is XmssVerdict.INVALID
    with pytest.raises(ValueError, match="past"):
        sign_one_leaf(5, last_slot + 1, MESSAGE, scheme)


@pytest.mark.parametrize("scheme", [TEST_SCHEME, PRODUCTION_SCHEME], ids=lambda s: s.name)
def test_a_well_formed_signature_of_zeros_is_invalid(scheme: object) -> None:
    signature = signature_from_parts(scheme=scheme)  # type: ignore[arg-type]
    assert verify(KEY, 3, MESSAGE, signature, scheme) is XmssVerdict.INVALID  # type: ignore[arg-type]


def test_a_slot_past_the_lifetime_is_invalid_not_an_error() -> None:
    signature = signature_from_parts(scheme=TEST_SCHEME)
    assert verify(KEY, 256, MESSAGE, signature, TEST_SCHEME) is XmssVerdict.INVALID
    assert verify(KEY, 2**64, MESSAGE, signature, TEST_SCHEME) is XmssVerdict.INVALID


def test_malformed_public_keys_are_named() -> None:
    signature = signature_from_parts(scheme=TEST_SCHEME)
    assert verify(KEY[:51], 0, MESSAGE, signature, TEST_SCHEME) is XmssVerdict.MALFORMED_PUBLIC_KEY
    not_a_field_element = FIELD_MODULUS.to_bytes(4, "little") + KEY[4:]
    verdict = verify(not_a_field_element, 0, MESSAGE, signature, TEST_SCHEME)
    assert verdict is XmssVerdict.MALFORMED_PUBLIC_KEY


def test_malformed_signatures_are_named() -> None:
    signature = signature_from_parts(scheme=TEST_SCHEME)
    assert (
        verify(KEY, 0, MESSAGE, signature[:-1], TEST_SCHEME) is XmssVerdict.MALFORMED_SIGNATURE_SIZE
    )
    # a production-size signature under the test scheme
    production = signature_from_parts(scheme=PRODUCTION_SCHEME)
    assert verify(KEY, 0, MESSAGE, production, TEST_SCHEME) is XmssVerdict.MALFORMED_SIGNATURE_SIZE
    moved = (int.from_bytes(signature[:4], "little") + 4).to_bytes(4, "little") + signature[4:]
    assert verify(KEY, 0, MESSAGE, moved, TEST_SCHEME) is XmssVerdict.MALFORMED_SIGNATURE_LAYOUT
    high = signature[:4] + b"\xff\xff\xff\xff" + signature[8:]  # rho's first word
    assert verify(KEY, 0, MESSAGE, high, TEST_SCHEME) is XmssVerdict.MALFORMED_FIELD_ELEMENT


def test_the_message_must_be_32_bytes() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        verify(KEY, 0, MESSAGE[:31], signature_from_parts(scheme=TEST_SCHEME), TEST_SCHEME)


def test_poseidon_refuses_other_widths_and_non_field_elements() -> None:
    assert len(poseidon_permute([0] * 16)) == 16
    assert len(poseidon_permute([0] * 24)) == 24
    with pytest.raises(ValueError, match="16 or 24"):
        poseidon_permute([0] * 8)
    with pytest.raises(ValueError, match="below the modulus"):
        poseidon_permute([FIELD_MODULUS] + [0] * 15)
    with pytest.raises(ValueError, match="below the modulus"):
        poseidon_permute([-1] + [0] * 15)

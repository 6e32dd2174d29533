"""XMSS key generation and signing: leanSpec's seeded keys byte for byte, every slot of a
key's lifetime signed and verified, and every way a key or a request to sign is wrong."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from lean_p2p.containers.scheme import PRODUCTION_SCHEME, TEST_SCHEME
from lean_p2p.containers.xmss import FIELD_MODULUS
from lean_p2p.crypto import (
    KeyDecodeError,
    KeyGenerationStopped,
    SlotNotPrepared,
    SlotOutsideKey,
    XmssSecretKey,
    XmssVerdict,
    advance_preparation,
    generate_key_pair,
    prepare,
    sign,
    verify,
)
from lean_p2p.crypto.xmss import shake128
from lean_p2p.tools.spectest.formats import xmss_key
from lean_p2p.tools.spectest.runner import Outcome, run_file
from tests.crypto.vectors import generated_vector_files

SEED = b"tests/crypto/test_keys"
MESSAGE = hashlib.sha256(b"a block root").digest()


@pytest.fixture(scope="module")
def whole_lifetime_key() -> XmssSecretKey:
    return generate_key_pair(0, 256, seed=SEED, scheme=TEST_SCHEME).secret_key


def test_we_make_leanspecs_seeded_keys_byte_for_byte() -> None:
    files = generated_vector_files("xmss_key")
    passed = []
    for path in files:
        for result in run_file(xmss_key.FORMAT, xmss_key.run_vector, Path(path)):
            assert result.outcome is Outcome.PASSED, f"{result.test_id}: {result.detail}"
            passed.append(result.test_id)
    assert len(passed) >= 4


def test_every_slot_of_a_whole_lifetime_key_signs_and_verifies(
    whole_lifetime_key: XmssSecretKey,
) -> None:
    key = whole_lifetime_key
    public_key = key.public_key
    for slot in range(256):
        key = prepare(key, slot)
        message = hashlib.sha256(slot.to_bytes(8, "little")).digest()
        signature = sign(key, slot, message)
        assert verify(public_key, slot, message, signature, TEST_SCHEME) is XmssVerdict.VALID
        # ... and not at a neighbouring slot, nor for another message
        assert verify(public_key, slot ^ 1, message, signature, TEST_SCHEME).valid is False
        assert verify(public_key, slot, MESSAGE, signature, TEST_SCHEME).valid is False
    assert key.prepared_interval == range(224, 256)


def test_keys_are_deterministic_in_the_seed_and_the_workers_do_not_matter() -> None:
    one = generate_key_pair(40, 50, seed=SEED, scheme=TEST_SCHEME, workers=1)
    two = generate_key_pair(40, 50, seed=SEED, scheme=TEST_SCHEME, workers=2)
    assert one == two
    assert one.secret_key.to_bytes() == two.secret_key.to_bytes()
    other = generate_key_pair(40, 50, seed=SEED + b"!", scheme=TEST_SCHEME)
    assert other.public_key != one.public_key
    unseeded = generate_key_pair(40, 50, scheme=TEST_SCHEME)
    assert unseeded.public_key not in (one.public_key, other.public_key)


def test_signing_is_deterministic(whole_lifetime_key: XmssSecretKey) -> None:
    first = sign(whole_lifetime_key, 3, MESSAGE)
    assert sign(whole_lifetime_key, 3, MESSAGE) == first
    assert sign(whole_lifetime_key, 3, bytes(32)) != first


def test_the_interval_is_widened_to_two_whole_bottom_trees() -> None:
    key = generate_key_pair(37, 1, seed=SEED, scheme=TEST_SCHEME).secret_key
    assert key.activation_interval == range(32, 64)
    assert key.prepared_interval == range(32, 64)
    end = generate_key_pair(250, 6, seed=SEED, scheme=TEST_SCHEME).secret_key
    assert end.activation_interval == range(224, 256)


def test_the_secret_key_round_trips_through_leansepcs_encoding(
    whole_lifetime_key: XmssSecretKey,
) -> None:
    encoded = whole_lifetime_key.to_bytes()
    assert XmssSecretKey.from_bytes(encoded, TEST_SCHEME) == whole_lifetime_key
    advanced = advance_preparation(whole_lifetime_key)
    assert XmssSecretKey.from_bytes(advanced.to_bytes(), TEST_SCHEME) == advanced


def test_the_prf_key_stays_out_of_the_repr(whole_lifetime_key: XmssSecretKey) -> None:
    text = repr(whole_lifetime_key)
    assert "prf_key" not in text
    assert whole_lifetime_key.prf_key.hex() not in text


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda data: data[:40], "shorter than"),
        (lambda data: data[:-1], "whole digests"),
        (lambda data: data[:68] + (99).to_bytes(4, "little") + data[72:], "offsets"),
        (
            # the parameter's first word, not a field element
            lambda data: data[:32] + FIELD_MODULUS.to_bytes(4, "little") + data[36:],
            "not a field element",
        ),
        (
            # the left bottom tree's index moved past the trees it holds
            lambda data: data[:72] + (5).to_bytes(8, "little") + data[80:],
            "does not cover",
        ),
        (lambda data: b"", "shorter than"),
    ],
    ids=["truncated", "last-digest-cut", "offset", "field-element", "tree-index", "empty"],
)
def test_a_malformed_secret_key_is_refused_with_a_reason(
    whole_lifetime_key: XmssSecretKey, mutate: object, message: str
) -> None:
    data = whole_lifetime_key.to_bytes()
    with pytest.raises(KeyDecodeError, match=message):
        XmssSecretKey.from_bytes(mutate(data), TEST_SCHEME)  # type: ignore[operator]


def test_a_test_key_is_not_a_production_key(whole_lifetime_key: XmssSecretKey) -> None:
    with pytest.raises(KeyDecodeError):
        XmssSecretKey.from_bytes(whole_lifetime_key.to_bytes(), PRODUCTION_SCHEME)


def test_a_slot_the_key_cannot_sign_is_named() -> None:
    key = generate_key_pair(64, 64, seed=SEED, scheme=TEST_SCHEME).secret_key
    with pytest.raises(SlotOutsideKey, match="activation interval"):
        sign(key, 63, MESSAGE)
    with pytest.raises(SlotOutsideKey):
        sign(key, 128, MESSAGE)
    with pytest.raises(SlotNotPrepared, match="prepare"):
        sign(key, 100, MESSAGE)
    with pytest.raises(ValueError, match="32 bytes"):
        sign(key, 64, MESSAGE[:31])
    later = prepare(key, 127)
    assert later.prepared_interval == range(96, 128)
    # a prepared window never moves back
    with pytest.raises(SlotOutsideKey):
        prepare(later, 64)
    # at the end of the interval, advancing changes nothing
    assert advance_preparation(later) is later


def test_key_generation_refuses_what_leanspec_refuses() -> None:
    with pytest.raises(ValueError, match="lifetime"):
        generate_key_pair(200, 57, seed=SEED, scheme=TEST_SCHEME)
    with pytest.raises(ValueError, match="negative"):
        generate_key_pair(-1, 8, seed=SEED, scheme=TEST_SCHEME)
    with pytest.raises(ValueError, match="not empty"):
        generate_key_pair(0, 8, seed=b"", scheme=TEST_SCHEME)


def test_key_generation_reports_each_bottom_tree() -> None:
    seen: list[tuple[int, int]] = []
    generate_key_pair(
        0, 64, seed=SEED, scheme=TEST_SCHEME, on_bottom_tree=lambda *p: seen.append(p)
    )
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]


@pytest.mark.parametrize("length", [0, 1, 60, 167, 168, 169, 400])
def test_the_prfs_shake128_is_hashlibs(length: int) -> None:
    data = hashlib.sha256(length.to_bytes(2, "little")).digest() * 13
    for out in (16, 128, 168, 169, 500):
        assert shake128(data[:length], out) == hashlib.shake_128(data[:length]).digest(out)


def test_key_generation_stops_when_asked() -> None:
    asked = []

    def should_stop() -> bool:
        asked.append(1)
        return len(asked) > 3

    with pytest.raises(KeyGenerationStopped, match="stopped"):
        generate_key_pair(0, 256, seed=SEED, scheme=TEST_SCHEME, workers=1, should_stop=should_stop)
    assert len(asked) == 4  # one question per batch of leaves, none after the answer

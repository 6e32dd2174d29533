"""Spectest plug-in: ``xmss_key`` vectors, keys that leanSpec generated from a seed, made
by ``scripts/gen_xmss_vectors.py`` (leanSpec's key generation with its randomness drawn
from lean_p2p's seeded stream).

Runs on the spectest's thread. For each vector, ours must make the same bytes from the
same seed: the public key, the secret key in leanSpec's SSZ after every advance of its
prepared interval, and every signature leanSpec made with it. leanSpec's encoding of
each secret key must also decode here and encode back to the same bytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from lean_p2p.containers.scheme import SCHEMES
from lean_p2p.crypto import (
    XmssSecretKey,
    XmssUnavailable,
    advance_preparation,
    generate_key_pair,
    sign,
)
from lean_p2p.tools.spectest.formats._json import from_hex
from lean_p2p.tools.spectest.runner import VectorFailure, VectorSkipped

__all__ = ["FORMAT", "run_vector"]

FORMAT: Final = "xmss_key"


def run_vector(test_id: str, fixture: Mapping[str, Any]) -> None:
    scheme = SCHEMES.get(fixture["scheme"])
    if scheme is None:
        raise VectorSkipped(f"unknown scheme {fixture['scheme']!r}")
    try:
        pair = generate_key_pair(
            int(fixture["activationSlot"]),
            int(fixture["numActiveSlots"]),
            seed=from_hex(fixture["seed"]),
            scheme=scheme,
        )
    except XmssUnavailable as error:
        raise VectorSkipped(str(error)) from None
    if pair.public_key != from_hex(fixture["publicKey"]):
        raise VectorFailure("our public key from the seed is not leanSpec's")
    secret_key = pair.secret_key
    for advances, preparation in enumerate(fixture["preparations"]):
        if advances:
            secret_key = advance_preparation(secret_key)
        expected = from_hex(preparation["secretKey"])
        if secret_key.to_bytes() != expected:
            raise VectorFailure(f"after {advances} advances, our secret key is not leanSpec's")
        if XmssSecretKey.from_bytes(expected, scheme).to_bytes() != expected:
            raise VectorFailure(f"leanSpec's secret key after {advances} advances changes here")
        for signed in preparation["signatures"]:
            slot = int(signed["slot"])
            if sign(secret_key, slot, from_hex(signed["message"])) != from_hex(signed["signature"]):
                raise VectorFailure(f"our signature at slot {slot} is not leanSpec's")

"""Spectest plug-in: ``xmss_signature`` vectors, made from leanSpec by
``scripts/gen_xmss_vectors.py`` (keys, slots, messages, signatures, corrupted variants).

Runs on the spectest's thread. Each vector carries leanSpec's verdict (``valid``, and
``decodes``: whether leanSpec's decoder accepted the bytes at all); ours must agree on
every one: valid exactly when leanSpec says valid, and a signature leanSpec cannot
decode must be one our verifier calls malformed or invalid. A signature we made with a
seeded key also carries ``leanSpecSignature``: what leanSpec's signing makes from the
same seed, slot and message, which must be ours byte for byte.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from lean_p2p.containers.scheme import SCHEMES
from lean_p2p.crypto import XmssUnavailable, verify
from lean_p2p.tools.spectest.formats._json import from_hex
from lean_p2p.tools.spectest.runner import VectorFailure, VectorSkipped

__all__ = ["FORMAT", "run_vector"]

FORMAT: Final = "xmss_signature"


def run_vector(test_id: str, fixture: Mapping[str, Any]) -> None:
    scheme = SCHEMES.get(fixture["scheme"])
    if scheme is None:
        raise VectorSkipped(f"unknown scheme {fixture['scheme']!r}")
    try:
        verdict = verify(
            from_hex(fixture["publicKey"]),
            int(fixture["slot"]),
            from_hex(fixture["message"]),
            from_hex(fixture["signature"]),
            scheme,
        )
    except XmssUnavailable as error:
        raise VectorSkipped(str(error)) from None
    if verdict.valid != bool(fixture["valid"]):
        raise VectorFailure(f"leanSpec says valid={fixture['valid']}, ours {verdict.name}")
    expected = fixture.get("leanSpecSignature")
    if expected is not None and from_hex(expected) != from_hex(fixture["signature"]):
        raise VectorFailure("leanSpec signs otherwise with the same seed, slot and message")

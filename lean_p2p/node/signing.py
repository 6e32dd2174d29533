"""Placeholder signing for devnets with mocked crypto. Any thread (pure functions).

The devnet runs like the leanSpec vectors: ``proofSetting: 0``, a mocked prover. A
validator's attestation still carries an XMSS signature of the right shape, and the
store's :class:`~lean_p2p.consensus.signatures.MockedProofVerifier` checks that shape
(size, offsets, canonical field elements, non-zero randomness). This module produces
such signatures deterministically from the signed message, so a replayed node produces
byte-identical messages. NOT a signature: it proves nothing about its signer.
"""

from __future__ import annotations

import hashlib
import struct

from lean_p2p.containers import active_scheme
from lean_p2p.containers.scheme import FIELD_ELEMENT_BYTES
from lean_p2p.containers.xmss import FIELD_MODULUS

__all__ = ["placeholder_signature"]

_U32 = struct.Struct("<I")


def _field_elements(seed: bytes, count: int) -> list[int]:
    stream = hashlib.shake_256(seed).digest(4 * count)
    # Non-zero and below the modulus: canonical, and rho must not be all zero.
    return [1 + _U32.unpack_from(stream, 4 * i)[0] % (FIELD_MODULUS - 1) for i in range(count)]


def placeholder_signature(validator_index: int, slot: int, message: bytes) -> bytes:
    """A well-formed XMSS signature encoding derived from (validator, slot, message)."""
    scheme = active_scheme()
    seed = b"lean-p2p placeholder" + struct.pack("<QQ", validator_index, slot) + message
    digest_elements = scheme.digest_bytes // FIELD_ELEMENT_BYTES
    rho = _field_elements(seed + b"rho", scheme.rand_length)
    siblings = _field_elements(seed + b"path", scheme.log_lifetime * digest_elements)
    hashes = _field_elements(seed + b"hashes", scheme.dimension * digest_elements)
    fixed_part = 4 + scheme.rand_length * FIELD_ELEMENT_BYTES + 4
    hashes_offset = fixed_part + 4 + len(siblings) * FIELD_ELEMENT_BYTES
    words = [fixed_part, *rho, hashes_offset, 4, *siblings, *hashes]
    signature = struct.pack(f"<{len(words)}I", *words)
    assert len(signature) == scheme.signature_size, "layout disagrees with the scheme"
    return signature

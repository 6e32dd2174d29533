"""A signature verifier for the fork-choice store: XMSS signatures verified for real, in C.
Runs on the thread that calls it.

:class:`XmssVerifier` has the shape of :class:`lean_p2p.consensus.SignatureVerifier`.
It verifies each validator's XMSS signature over an attestation with
:func:`lean_p2p.crypto.verify`: a production verification is about half a millisecond
of C without the GIL, a test-scheme one a tenth of that. Called from the store, that is
the loop thread's time; a node under load verifies on worker threads instead and hands
the store only what verified.

Aggregate and block proofs are leanMultisig proofs, and nothing here verifies them:
PyPI's ``py-lean-multisig`` speaks another key and signature layout (32-byte public
keys, signatures of another shape; ``docs/crypto.md`` records what was tried), and
leanSpec's own binding is not installable. Until one is, they are checked structurally
as :class:`~lean_p2p.consensus.MockedProofVerifier` checks them (the mocked prover's
placeholder), and the verifier says so in a WARNING when it is made and in its
``mode``.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from typing import Final

from lean_p2p.containers.scheme import XmssScheme, active_scheme
from lean_p2p.crypto.xmss import verify

__all__ = ["MOCK_PROOF_PREFIX", "XmssVerifier"]

logger = logging.getLogger(__name__)

#: Opening bytes of the mocked prover's placeholder proofs (as in leanSpec's vectors).
MOCK_PROOF_PREFIX: Final = b"\x00MOCKED-AGGREGATION-PROOF\x00"


class XmssVerifier:
    """Real XMSS verification of single signatures; structural checks of proofs."""

    mode: Final = "xmss"

    def __init__(self, scheme: XmssScheme | None = None) -> None:
        self._scheme = scheme
        logger.warning(
            "signature verification mode=%s: XMSS signatures are verified (C); aggregate "
            "and block proofs are accepted when they carry the mocked-prover placeholder, "
            "as no leanMultisig verifier for this layout is available",
            self.mode,
        )

    @property
    def scheme(self) -> XmssScheme:
        return self._scheme or active_scheme()

    def verify_attestation(
        self, public_key: bytes, slot: int, message: bytes, signature: bytes
    ) -> bool:
        return verify(public_key, slot, message, signature, self.scheme).valid

    def verify_aggregate(
        self, public_keys: Sequence[bytes], message: bytes, slot: int, proof: bytes
    ) -> bool:
        return proof.startswith(MOCK_PROOF_PREFIX)

    def verify_block_proof(
        self,
        public_keys_per_message: Sequence[Sequence[bytes]],
        messages: Sequence[tuple[bytes, int]],
        proof: bytes,
    ) -> bool:
        if len(public_keys_per_message) != len(messages):
            return False
        return proof.startswith(MOCK_PROOF_PREFIX)

    def aggregate(
        self,
        message: bytes,
        slot: int,
        signatures: Sequence[tuple[int, bytes, bytes]],
        children: Sequence[tuple[bytes, Sequence[bytes]]],
    ) -> bytes:
        """A placeholder proof, as the mocked prover makes (the store aggregates only
        signatures it has verified on arrival)."""
        parts = [message, slot.to_bytes(8, "little")]
        for index, key, signature in signatures:
            parts += [index.to_bytes(8, "little"), key, signature]
        for proof, keys in children:
            parts += [proof, *keys]
        return MOCK_PROOF_PREFIX + hashlib.sha256(b"".join(parts)).digest()

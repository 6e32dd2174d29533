"""Signature verification behind one interface. Loop thread (pure CPU, no I/O).

The fork-choice store calls a :class:`SignatureVerifier` for three things: a validator's
XMSS signature over an attestation, a single-message aggregate proof (gossip
aggregates), and the multi-message proof a block carries. This is where a real XMSS /
leanMultisig verifier plugs in.

The default, :class:`MockedProofVerifier`, is **not** cryptographic verification. It
accepts the placeholder proofs that leanSpec's vectors are generated with (mocked
prover, ``proofSetting: 0``; every such proof starts with :data:`MOCK_PROOF_PREFIX`),
and for single XMSS signatures it performs a structural check only: the bytes must
decode as a signature of the active parameter set, with every field element canonical
and non-zero randomness. It logs a WARNING once at construction naming the mode, so a
node running on it can never be mistaken for one that verifies signatures.

:class:`XmssVerifier` verifies each XMSS signature for real, in C
(:func:`lean_p2p.crypto.verify`: about half a millisecond for the production scheme, a
tenth of that for the test scheme, on the calling thread; a node under load verifies on
worker threads instead and hands the store only what verified). Aggregate and block
proofs are leanMultisig proofs that nothing here can verify yet: PyPI's
``py-lean-multisig`` 0.4.0 speaks another key and signature layout (``docs/crypto.md``
records what was tried), and leanSpec's own binding is not installable. So
:class:`XmssVerifier` checks them as :class:`MockedProofVerifier` does, and says so.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from typing import Final, Protocol

from lean_p2p.containers import XmssScheme, active_scheme
from lean_p2p.containers.xmss import FIELD_MODULUS
from lean_p2p.crypto import verify

__all__ = [
    "MOCKED_MODE_NOTICE",
    "MOCK_PROOF_PREFIX",
    "PROPOSER_SIGNATURE_MARK",
    "MockedProofVerifier",
    "SignatureVerifier",
    "XmssVerifier",
    "mock_proof",
    "proof_with_proposer_signature",
    "proposer_signature_of",
]

logger = logging.getLogger(__name__)

#: Opening bytes of every placeholder proof in the leanSpec vectors (mocked prover).
MOCK_PROOF_PREFIX: Final = b"\x00MOCKED-AGGREGATION-PROOF\x00"


#: One line for a command's ``--help`` (and logs): what the default verifier does not do.
MOCKED_MODE_NOTICE: Final = (
    "signature verification: mode=mocked (default) accepts the test vectors' placeholder "
    "proofs and checks XMSS signatures for structure only; it is NOT cryptographic "
    "verification"
)


#: Marks the proposer's XMSS signature carried after a placeholder block proof.
PROPOSER_SIGNATURE_MARK: Final = b"lean_p2p proposer signature\x00"


def mock_proof(fingerprint: bytes) -> bytes:
    """A placeholder proof in the vectors' format, distinct per ``fingerprint``."""
    return MOCK_PROOF_PREFIX + hashlib.sha256(fingerprint).digest()


def proof_with_proposer_signature(fingerprint: bytes, signature: bytes) -> bytes:
    """A placeholder block proof that also carries the proposer's real signature of the
    block root: until a leanMultisig prover exists, that is how a block's proposer is
    proven. Verifiers that only check the placeholder (leanSpec's stand-in prover, the
    mocked verifier) accept it as any placeholder."""
    return mock_proof(fingerprint) + PROPOSER_SIGNATURE_MARK + signature


def proposer_signature_of(proof: bytes) -> bytes | None:
    """The proposer's signature a placeholder block proof carries, if it carries one."""
    start = len(MOCK_PROOF_PREFIX) + 32
    if not proof.startswith(MOCK_PROOF_PREFIX) or not proof.startswith(
        PROPOSER_SIGNATURE_MARK, start
    ):
        return None
    return proof[start + len(PROPOSER_SIGNATURE_MARK) :]


class SignatureVerifier(Protocol):
    """What the store needs verified. Each method returns False for a bad signature."""

    @property
    def mode(self) -> str:
        """A short name for logs and ``--help`` (for example ``"mocked"``)."""
        ...

    def verify_attestation(
        self, public_key: bytes, slot: int, message: bytes, signature: bytes
    ) -> bool:
        """One validator's XMSS signature over ``message`` (an AttestationData root)."""
        ...

    def verify_aggregate(
        self, public_keys: Sequence[bytes], message: bytes, slot: int, proof: bytes
    ) -> bool:
        """A single-message aggregate: ``public_keys`` all signed ``message`` at ``slot``."""
        ...

    def verify_block_proof(
        self,
        public_keys_per_message: Sequence[Sequence[bytes]],
        messages: Sequence[tuple[bytes, int]],
        proof: bytes,
    ) -> bool:
        """A block's merged proof: component i is ``messages[i]`` signed by keys i."""
        ...

    def aggregate(
        self,
        message: bytes,
        slot: int,
        signatures: Sequence[tuple[int, bytes, bytes]],
        children: Sequence[tuple[bytes, Sequence[bytes]]],
    ) -> bytes:
        """Build an aggregate proof from (index, key, signature) and child proofs."""
        ...


class MockedProofVerifier:
    """Accepts the vectors' mocked proofs; structural checks only on XMSS signatures."""

    mode: str = "mocked"

    def __init__(self) -> None:
        logger.warning(
            "signature verification mode=%s: aggregate and block proofs are accepted when "
            "they carry the mocked-prover placeholder, XMSS signatures are checked for "
            "structure only. NOT cryptographically secure; for test vectors and local "
            "devnets only",
            self.mode,
        )

    def verify_attestation(
        self, public_key: bytes, slot: int, message: bytes, signature: bytes
    ) -> bool:
        return _structurally_valid_signature(signature)

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
        # Distinct inputs give distinct placeholders, so proof sets deduplicate exactly
        # when the inputs are the same, as with the mocked prover the vectors used.
        parts = [message, slot.to_bytes(8, "little")]
        for index, key, signature in signatures:
            parts += [index.to_bytes(8, "little"), key, signature]
        for proof, keys in children:
            parts += [proof, *keys]
        return mock_proof(b"".join(parts))


class XmssVerifier(MockedProofVerifier):
    """XMSS signatures verified for real, in C; proofs checked as the mocked verifier does.

    With ``require_proposer_signature`` (a devnet whose validators sign for real), a
    block proof must also carry the proposer's signature of the block root
    (:func:`proof_with_proposer_signature`), and it must verify. Without it (the test
    vectors), a proof that carries one has it verified, and one that does not is
    accepted on its placeholder alone.

    With ``accept_empty_proofs`` (a devnet shared with leanSpec's node, whose stand-in
    prover emits empty aggregate and block proofs), an empty proof is accepted as its
    placeholder; a block proof that carries a proposer signature still has it verified.
    It cannot be combined with ``require_proposer_signature``: an empty block proof
    carries no signature.
    """

    mode: str = "xmss"

    def __init__(
        self,
        scheme: XmssScheme | None = None,
        *,
        require_proposer_signature: bool = False,
        accept_empty_proofs: bool = False,
    ) -> None:
        if require_proposer_signature and accept_empty_proofs:
            raise ValueError(
                "require_proposer_signature and accept_empty_proofs exclude each other: "
                "an empty block proof carries no proposer signature"
            )
        # Not the mocked verifier's warning: this one does verify signatures.
        self._scheme = scheme
        self.require_proposer_signature = require_proposer_signature
        self.accept_empty_proofs = accept_empty_proofs
        logger.warning(
            "signature verification mode=%s: XMSS signatures are verified (C)%s; aggregate "
            "and block proofs are accepted when they carry the mocked-prover placeholder%s, "
            "as no leanMultisig verifier for this layout is available",
            self.mode,
            ", blocks must carry their proposer's" if require_proposer_signature else "",
            " or are empty (leanSpec's stand-in prover)" if accept_empty_proofs else "",
        )

    def verify_aggregate(
        self, public_keys: Sequence[bytes], message: bytes, slot: int, proof: bytes
    ) -> bool:
        if self.accept_empty_proofs and not proof:
            return True
        return super().verify_aggregate(public_keys, message, slot, proof)

    def verify_attestation(
        self, public_key: bytes, slot: int, message: bytes, signature: bytes
    ) -> bool:
        scheme = self._scheme or active_scheme()
        return verify(public_key, slot, message, signature, scheme).valid

    def verify_block_proof(
        self,
        public_keys_per_message: Sequence[Sequence[bytes]],
        messages: Sequence[tuple[bytes, int]],
        proof: bytes,
    ) -> bool:
        if self.accept_empty_proofs and not proof:
            return len(public_keys_per_message) == len(messages)
        if not super().verify_block_proof(public_keys_per_message, messages, proof):
            return False
        signature = proposer_signature_of(proof)
        if signature is None:
            return not self.require_proposer_signature
        # The store lists the proposer's message last: the block root, at its slot.
        if not messages or len(public_keys_per_message[-1]) != 1:
            return False
        root, slot = messages[-1]
        return self.verify_attestation(public_keys_per_message[-1][0], slot, root, signature)


def _structurally_valid_signature(signature: bytes) -> bool:
    """Whether ``signature`` decodes as an XMSS signature with canonical, live fields.

    Layout (fixed for a scheme): offset(path) | rho | offset(hashes) | path | hashes,
    with path = offset(siblings) | siblings. Rejects wrong sizes, wrong offsets,
    non-canonical field elements, and an all-zero randomness ``rho`` (a forged or
    blank signature), which no honest signer produces.
    """
    scheme = active_scheme()
    if len(signature) != scheme.signature_size:
        return False
    rho_bytes = scheme.rand_length * 4
    fixed_part = 4 + rho_bytes + 4
    path_offset = int.from_bytes(signature[0:4], "little")
    hashes_offset = int.from_bytes(signature[4 + rho_bytes : fixed_part], "little")
    path_size = 4 + scheme.log_lifetime * scheme.digest_bytes
    if path_offset != fixed_part or hashes_offset != fixed_part + path_size:
        return False
    if int.from_bytes(signature[fixed_part : fixed_part + 4], "little") != 4:
        return False
    rho = signature[4 : 4 + rho_bytes]
    if not any(rho):
        return False
    words = [
        int.from_bytes(signature[i : i + 4], "little")
        for i in range(fixed_part + 4, len(signature), 4)
    ]
    words += [int.from_bytes(rho[i : i + 4], "little") for i in range(0, rho_bytes, 4)]
    return all(word < FIELD_MODULUS for word in words)

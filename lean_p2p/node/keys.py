"""Validator signing keys: generated from a seed, kept on disk in the keystore layout the
lean clients share, and used to sign. File I/O and key generation run on whatever thread
calls them, before a node starts (never on its loop); :class:`XmssSigner` signs on the
loop thread.

The layout is ream's and zeam's, which leanSpec's node reads
(``ValidatorRegistry.from_keys_directory``), so a leanSpec node given the same devnet
directory runs the same validators::

    <devnet>/validators.yaml                            node name -> validator indices
    <devnet>/hash-sig-keys/validator-keys-manifest.yaml
    <devnet>/hash-sig-keys/validator_<i>_attestation_sk.ssz   (leanSpec's SSZ SecretKey)
    <devnet>/hash-sig-keys/validator_<i>_proposal_sk.ssz

The manifest names the scheme (``lifetime``: 2^8 for the test scheme, 2^32 for
production), and per validator its index, both public keys (``0x`` hex) and both key
files. Each validator has two keys, one to attest and one to propose, so that it can do
both in one slot without signing twice with one one-time key.

Keys are deterministic in the devnet's seed: validator ``i``'s attestation key comes from
``SHA-256("lean_p2p devnet key" || seed || "attestation" || i)``, its proposal key
likewise (see :func:`lean_p2p.crypto.generate_key_pair` for what a key seed makes).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml

from lean_p2p.consensus.hashing import attestation_data_root
from lean_p2p.consensus.signatures import proof_with_proposer_signature
from lean_p2p.containers import (
    PRODUCTION_SCHEME,
    TEST_SCHEME,
    AttestationData,
    Block,
    SingleMessageAggregate,
    XmssScheme,
)
from lean_p2p.crypto import (
    KeyDecodeError,
    XmssSecretKey,
    generate_key_pair,
    prepare,
    sign,
)

__all__ = [
    "KEYS_DIRECTORY",
    "MANIFEST_FILE",
    "KeystoreError",
    "ValidatorKeys",
    "XmssSigner",
    "generate_validator_keys",
    "has_keystore",
    "keystore_scheme",
    "load_validator_keys",
    "write_keystore",
]

KEYS_DIRECTORY: Final = "hash-sig-keys"
MANIFEST_FILE: Final = "validator-keys-manifest.yaml"
_SCHEME_NAMES: Final = {
    TEST_SCHEME.name: "SIGTopLevelTargetSumLifetime8Dim4Base8",
    PRODUCTION_SCHEME.name: "SIGTopLevelTargetSumLifetime32Dim46Base8",
}


class KeystoreError(ValueError):
    """A keystore that is missing, malformed, or does not match the devnet."""


@dataclass(frozen=True, slots=True)
class ValidatorKeys:
    """One validator's two secret keys (their public keys are derived from them)."""

    index: int
    attestation: XmssSecretKey
    proposal: XmssSecretKey

    @property
    def public_keys(self) -> tuple[bytes, bytes]:
        """(attestation, proposal) public keys, as genesis lists them."""
        return self.attestation.public_key, self.proposal.public_key


def key_seed(seed: bytes, role: str, index: int) -> bytes:
    return hashlib.sha256(
        b"lean_p2p devnet key" + seed + role.encode() + index.to_bytes(8, "little")
    ).digest()


def generate_validator_keys(
    count: int,
    *,
    seed: bytes,
    scheme: XmssScheme,
    num_active_slots: int,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> list[ValidatorKeys]:
    """Keys for validators ``0..count-1``, active from slot 0 for at least
    ``num_active_slots`` slots (widened to whole bottom trees). ``progress(done, total)``
    after each key: a production key takes about a minute on two cores. ``should_stop``
    is passed to :func:`~lean_p2p.crypto.generate_key_pair` (it raises
    :class:`~lean_p2p.crypto.KeyGenerationStopped`)."""
    lifetime = 1 << scheme.log_lifetime
    slots = max(1, min(num_active_slots, lifetime))
    keys = []
    for index in range(count):
        pair = []
        for role in ("attestation", "proposal"):
            generated = generate_key_pair(
                0,
                slots,
                seed=key_seed(seed, role, index),
                scheme=scheme,
                workers=workers,
                should_stop=should_stop,
            )
            pair.append(generated.secret_key)
            if progress is not None:
                progress(2 * index + len(pair), 2 * count)
        keys.append(ValidatorKeys(index, pair[0], pair[1]))
    return keys


def _file_name(index: int, role: str) -> str:
    return f"validator_{index}_{role}_sk.ssz"


def write_keystore(directory: Path, keys: Sequence[ValidatorKeys]) -> Path:
    """Write ``keys`` under ``directory/hash-sig-keys``; returns the manifest's path."""
    if not keys:
        raise KeystoreError("a keystore holds at least one validator")
    scheme = keys[0].attestation.scheme
    keys_directory = directory / KEYS_DIRECTORY
    keys_directory.mkdir(parents=True, exist_ok=True)
    entries = []
    for validator in keys:
        for role, secret_key in (
            ("attestation", validator.attestation),
            ("proposal", validator.proposal),
        ):
            (keys_directory / _file_name(validator.index, role)).write_bytes(secret_key.to_bytes())
        entries.append(
            {
                "index": validator.index,
                "attestation_public_key_hex": "0x" + validator.attestation.public_key.hex(),
                "proposal_public_key_hex": "0x" + validator.proposal.public_key.hex(),
                "attestation_private_key_file": _file_name(validator.index, "attestation"),
                "proposal_private_key_file": _file_name(validator.index, "proposal"),
            }
        )
    active = min(v.attestation.num_active_slots for v in keys)
    manifest = {
        "key_scheme": _SCHEME_NAMES[scheme.name],
        "hash_function": "Poseidon",
        "encoding": "TargetSum",
        "lifetime": 1 << scheme.log_lifetime,
        "log_num_active_epochs": int(math.log2(active)),
        "num_active_epochs": active,
        "num_validators": len(keys),
        "validators": entries,
    }
    path = keys_directory / MANIFEST_FILE
    path.write_text(yaml.safe_dump(manifest, sort_keys=False))
    return path


def _manifest(directory: Path) -> dict[str, Any]:
    path = directory / KEYS_DIRECTORY / MANIFEST_FILE
    try:
        document = yaml.safe_load(path.read_text())
    except OSError as error:
        raise KeystoreError(f"cannot read {path}: {error.strerror or error}") from error
    except yaml.YAMLError as error:
        raise KeystoreError(f"{path}: not YAML: {error}") from error
    if not isinstance(document, dict) or not isinstance(document.get("validators"), list):
        raise KeystoreError(f"{path}: expected a mapping with a 'validators' list")
    return document


def has_keystore(directory: Path) -> bool:
    return (directory / KEYS_DIRECTORY / MANIFEST_FILE).is_file()


def keystore_scheme(directory: Path) -> XmssScheme:
    """The signature scheme of the keystore in ``directory`` (from its lifetime)."""
    lifetime = _manifest(directory).get("lifetime")
    for scheme in (TEST_SCHEME, PRODUCTION_SCHEME):
        if lifetime == 1 << scheme.log_lifetime:
            return scheme
    raise KeystoreError(
        f"{directory / KEYS_DIRECTORY / MANIFEST_FILE}: unknown lifetime {lifetime!r}"
    )


def load_validator_keys(
    directory: Path, indices: Sequence[int], genesis_keys: Sequence[tuple[bytes, bytes]]
) -> dict[int, ValidatorKeys]:
    """The secret keys of validators ``indices``; each must match genesis's public keys."""
    document = _manifest(directory)
    scheme = keystore_scheme(directory)
    by_index: dict[int, Mapping[str, Any]] = {}
    for entry in document["validators"]:
        if isinstance(entry, dict) and isinstance(entry.get("index"), int):
            by_index[entry["index"]] = entry
    keys: dict[int, ValidatorKeys] = {}
    for index in indices:
        entry = by_index.get(index)
        if entry is None:
            raise KeystoreError(f"the keystore has no keys for validator {index}")
        loaded = [_load_key(directory, entry, role, scheme) for role in ("attestation", "proposal")]
        validator = ValidatorKeys(index, loaded[0], loaded[1])
        if index >= len(genesis_keys) or validator.public_keys != tuple(genesis_keys[index]):
            raise KeystoreError(
                f"validator {index}'s keys are not the ones genesis lists: another devnet's?"
            )
        keys[index] = validator
    return keys


def _load_key(
    directory: Path, entry: Mapping[str, Any], role: str, scheme: XmssScheme
) -> XmssSecretKey:
    name = entry.get(f"{role}_private_key_file")
    if not isinstance(name, str) or "/" in name:
        raise KeystoreError(f"validator {entry.get('index')}: no {role} key file named")
    path = directory / KEYS_DIRECTORY / name
    try:
        return XmssSecretKey.from_bytes(path.read_bytes(), scheme)
    except OSError as error:
        raise KeystoreError(f"cannot read {path}: {error.strerror or error}") from error
    except KeyDecodeError as error:
        raise KeystoreError(f"{path}: {error}") from error


class XmssSigner:
    """Signs for this node's validators with their XMSS keys (loop thread).

    A key's prepared window slides forward as slots pass (a test-scheme bottom tree is 16
    leaves, about a millisecond of C; a production key's first window covers 131,072
    slots, six days of 4-second slots). The proposer's signature of the block root goes
    into the block proof beside the mocked prover's placeholder
    (:func:`~lean_p2p.consensus.signatures.proof_with_proposer_signature`), where
    :class:`~lean_p2p.consensus.XmssVerifier` checks it.
    """

    def __init__(self, keys: Mapping[int, ValidatorKeys]) -> None:
        self._attestation = {index: keys[index].attestation for index in keys}
        self._proposal = {index: keys[index].proposal for index in keys}

    def sign_attestation(self, validator_index: int, data: AttestationData) -> bytes:
        key = prepare(self._attestation[validator_index], data.slot)
        self._attestation[validator_index] = key
        return sign(key, data.slot, attestation_data_root(data))

    def block_proof(
        self, block: Block, attestation_proofs: Sequence[SingleMessageAggregate]
    ) -> bytes:
        key = prepare(self._proposal[block.proposer_index], block.slot)
        self._proposal[block.proposer_index] = key
        root = block.hash_tree_root()
        signature = sign(key, block.slot, root)
        fingerprint = root + b"".join(proof.proof for proof in attestation_proofs)
        return proof_with_proposer_signature(fingerprint, signature)

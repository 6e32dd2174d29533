"""Generate XMSS signature vectors with leanSpec, each with leanSpec's own verdict.

Run with an interpreter that imports leanSpec (``../shared/peers/setup-leanspec.sh`` makes
one), in the configuration to generate (``LEAN_ENV=test``; the production scheme is
too slow to sign with in leanSpec's Python):

    LEAN_ENV=test VENV/bin/python scripts/gen_xmss_vectors.py OUT_DIR [--keys 3] [--seed 1]
    LEAN_ENV=prod VENV/bin/python scripts/gen_xmss_vectors.py OUT_DIR --verify-ours FILE

The second form is the other direction: leanSpec's verdicts on signatures that lean_p2p
made (``scripts/xmss_one_leaf.py`` writes FILE), in either scheme (the production one
included, which leanSpec can verify but not sign in), each corrupted the same ways.

It writes ``OUT_DIR/xmss_signature/lstar/<scheme>/signatures.json`` in the shape of the
leanSpec fixtures (test id -> fixture), which ``lean-p2p spectest OUT_DIR`` and
``tests/crypto/test_xmss.py`` read. Each key signs messages at slots across its prepared
interval; every signature is also written corrupted in each way a verifier must catch:
a flipped bit in rho, in a path sibling and in a chain hash, another slot, another
message, another key, and a slot past the lifetime. Every fixture carries
``"valid"``: what leanSpec's verify said of it, so a test compares verdicts rather
than trusting the corruption to have worked. Corrupted words that leave the field
(not below the modulus) are written too: leanSpec refuses those when it decodes, which
is recorded as ``"decodes": false``.

Key generation draws leanSpec's own randomness (``secrets``); ``--seed`` fixes only
the choice of messages, slots and corruptions. The vectors are generated, never
committed: CI makes them before the tests.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
from pathlib import Path
from typing import Any

MODULUS = 2**31 - 2**24 + 1


def _scheme() -> tuple[Any, str]:
    from lean_spec.spec.crypto.xmss.interface import TARGET_SIGNATURE_SCHEME

    name = "test" if os.environ.get("LEAN_ENV") == "test" else "production"
    return TARGET_SIGNATURE_SCHEME, name


def _flip(data: bytes, byte_index: int, bit: int) -> bytes:
    changed = bytearray(data)
    changed[byte_index] ^= 1 << bit
    return bytes(changed)


def _verdict(
    scheme: Any, public_key: bytes, slot: int, message: bytes, signature: bytes
) -> dict[str, Any]:
    """leanSpec's verdict: decode (as its node would), then verify."""
    from lean_spec.spec.crypto.xmss.containers import PublicKey, Signature
    from lean_spec.spec.ssz import Bytes32, Uint64

    try:
        key = PublicKey.decode_bytes(public_key)
        decoded = Signature.decode_bytes(signature)
    except Exception:
        return {"decodes": False, "valid": False}
    try:
        valid = bool(scheme.verify(key, Uint64(slot), Bytes32(message), decoded))
    except Exception:
        valid = False
    return {"decodes": True, "valid": valid}


def _layout(config: Any) -> tuple[int, int, int]:
    """(rho start, siblings start, hashes start) in an encoded signature."""
    digest_bytes = config.HASH_LENGTH_FIELD_ELEMENTS * 4
    path_offset = 4 + config.RAND_LENGTH_FIELD_ELEMENTS * 4 + 4
    siblings_start = path_offset + 4
    return 4, siblings_start, siblings_start + config.LOG_LIFETIME * digest_bytes


def _cases(
    rng: random.Random,
    config: Any,
    *,
    keys: tuple[bytes, bytes],
    slot: int,
    message: bytes,
    signature: bytes,
) -> dict[str, tuple[bytes, int, bytes, bytes]]:
    """The signature as it is, and corrupted in each way a verifier must catch."""
    public_key, other_key = keys
    rho_start, siblings_start, hashes_start = _layout(config)
    rho_bytes = config.RAND_LENGTH_FIELD_ELEMENTS * 4
    return {
        "valid": (public_key, slot, message, signature),
        "rho_bit_flipped": (
            public_key,
            slot,
            message,
            _flip(signature, rho_start + rng.randrange(rho_bytes - 1), rng.randrange(8)),
        ),
        "sibling_bit_flipped": (
            public_key,
            slot,
            message,
            _flip(
                signature,
                siblings_start + rng.randrange(hashes_start - siblings_start),
                rng.randrange(7),
            ),
        ),
        "hash_bit_flipped": (
            public_key,
            slot,
            message,
            _flip(signature, hashes_start + rng.randrange(len(signature) - hashes_start), 0),
        ),
        "wrong_slot": (public_key, slot ^ 1, message, signature),
        "wrong_message": (public_key, slot, _flip(message, rng.randrange(32), 0), signature),
        "wrong_key": (other_key, slot, message, signature),
        "slot_past_lifetime": (public_key, int(config.LIFETIME) + slot, message, signature),
    }


def _fixtures(
    scheme: Any, name: str, prefix: str, cases: dict[str, tuple[bytes, int, bytes, bytes]]
) -> dict[str, dict[str, Any]]:
    return {
        f"{prefix}_{case}": {
            "scheme": name,
            "publicKey": "0x" + key.hex(),
            "slot": case_slot,
            "message": "0x" + case_message.hex(),
            "signature": "0x" + case_signature.hex(),
            **_verdict(scheme, key, case_slot, case_message, case_signature),
        }
        for case, (key, case_slot, case_message, case_signature) in cases.items()
    }


def generate(keys: int, seed: int) -> tuple[str, dict[str, dict[str, Any]]]:
    """leanSpec's keys and signatures, with their corruptions and leanSpec's verdicts."""
    from lean_spec.spec.ssz import Bytes32, Uint64

    scheme, name = _scheme()
    config = scheme.config
    rng = random.Random(seed)
    pairs = [scheme.key_gen(Uint64(0), Uint64(int(config.LIFETIME))) for _ in range(keys)]
    fixtures: dict[str, dict[str, Any]] = {}
    for key_index, pair in enumerate(pairs):
        public_key = pair.public_key.encode_bytes()
        other_key = pairs[(key_index + 1) % len(pairs)].public_key.encode_bytes()
        prepared = scheme.get_prepared_interval(pair.secret_key)
        for slot in sorted(rng.sample(list(prepared), 3)):
            message = bytes(rng.getrandbits(8) for _ in range(32))
            signature = scheme.sign(pair.secret_key, Uint64(slot), Bytes32(message)).encode_bytes()
            cases = _cases(
                rng,
                config,
                keys=(public_key, other_key),
                slot=slot,
                message=message,
                signature=signature,
            )
            fixtures.update(_fixtures(scheme, name, f"key{key_index}_slot{slot}", cases))
    return name, fixtures


def verify_ours(path: Path, seed: int) -> tuple[str, dict[str, dict[str, Any]]]:
    """leanSpec's verdicts on signatures made by lean_p2p (scripts/xmss_one_leaf.py),
    those of this process's scheme only, each also corrupted."""
    scheme, name = _scheme()
    rng = random.Random(seed)
    ours = [entry for entry in json.loads(path.read_text()) if entry["scheme"] == name]
    if len(ours) < 2:
        raise SystemExit(f"{path}: fewer than two {name} signatures to check")
    fixtures: dict[str, dict[str, Any]] = {}
    for index, entry in enumerate(ours):
        other = ours[(index + 1) % len(ours)]
        keys = (bytes.fromhex(entry["publicKey"]), bytes.fromhex(other["publicKey"]))
        cases = _cases(
            rng,
            scheme.config,
            keys=keys,
            slot=int(entry["slot"]),
            message=bytes.fromhex(entry["message"]),
            signature=bytes.fromhex(entry["signature"]),
        )
        fixtures.update(_fixtures(scheme, name, f"ours{index}_slot{entry['slot']}", cases))
    return name, fixtures


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="directory to write xmss_signature/ into")
    parser.add_argument("--keys", type=int, default=3, help="key pairs to generate (default 3)")
    parser.add_argument("--seed", type=int, default=1, help="seed of messages, slots, corruptions")
    parser.add_argument(
        "--verify-ours",
        type=Path,
        metavar="FILE",
        help="instead: leanSpec's verdicts on lean_p2p's signatures in FILE",
    )
    args = parser.parse_args(argv)
    if args.verify_ours is not None:
        name, fixtures = verify_ours(args.verify_ours, args.seed)
        filename = "ours.json"
    else:
        name, fixtures = generate(args.keys, args.seed)
        filename = "signatures.json"
    directory = args.out / "xmss_signature" / "lstar" / name
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / filename
    path.write_text(json.dumps(fixtures, indent=1) + "\n")
    valid = sum(1 for fixture in fixtures.values() if fixture["valid"])
    print(f"{path}: {len(fixtures)} vectors, {valid} valid by leanSpec", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

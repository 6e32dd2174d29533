"""Generate XMSS signature vectors with leanSpec, each with leanSpec's own verdict.

Run with an interpreter that imports leanSpec (``../shared/peers/setup-leanspec.sh`` makes
one), in the configuration to generate (``LEAN_ENV=test``; the production scheme is
too slow to sign with in leanSpec's Python):

    LEAN_ENV=test VENV/bin/python scripts/gen_xmss_vectors.py OUT_DIR [--keys 3] [--seed 1]
    LEAN_ENV=prod VENV/bin/python scripts/gen_xmss_vectors.py OUT_DIR --verify-ours FILE

The second form is the other direction: leanSpec's verdicts on signatures that lean_p2p
made (``scripts/xmss_sign_ours.py`` writes FILE), in either scheme (the production one
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

Key generation for those signatures draws leanSpec's own randomness (``secrets``);
``--seed`` fixes only the choice of messages, slots and corruptions.

The first form also writes ``OUT_DIR/xmss_key/lstar/<scheme>/keys.json``: keys that
leanSpec generates from a seed, with its randomness (the parameter, the PRF key, the
digests that pad sparse tree layers) replaced by lean_p2p's seeded stream, as
``lean_p2p.crypto.keys`` documents it and as this file implements it again,
independently. Each carries the public key, the secret key in leanSpec's SSZ, the secret
key after each ``advance_preparation``, and signatures across every prepared window, so
that a test can demand that lean_p2p makes the same bytes from the same seed.

In the second form, for each of our signatures made by a seeded key, leanSpec also
re-derives the signature's one-time part (rho and the released chain hashes) from the
seed with its own PRF, encoding and chains, and records the signature it would make
with our authentication path: ``"leanSpecSignature"``.

The vectors are generated, never committed: CI makes them before the tests.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import sys
from pathlib import Path
from typing import Any

MODULUS = 2**31 - 2**24 + 1
SEED_DOMAIN = b"lean_p2p/xmss/keygen/v1"
#: (seed, activation slot, requested slots) of the seeded test-scheme keys: the whole
#: lifetime, the smallest key, an interval starting inside a bottom tree (the top tree
#: padded on both sides), and one that slides back from the end of the lifetime.
KEY_CASES = (
    (b"lean_p2p key 0", 0, 256),
    (b"lean_p2p key 1", 0, 1),
    (b"lean_p2p key 2", 37, 70),
    (b"lean_p2p key 3", 250, 6),
)


class SeededDraws:
    """lean_p2p's stand-in for the operating system's randomness in key generation:
    draw i is SHAKE128(domain || len(seed) (4 bytes, little-endian) || seed || i (8
    bytes, big-endian)); a field element is 16 bytes of it, big-endian, mod p."""

    def __init__(self, seed: bytes) -> None:
        self.prefix = SEED_DOMAIN + len(seed).to_bytes(4, "little") + seed
        self.draws = 0

    def raw(self, length: int) -> bytes:
        data = hashlib.shake_128(self.prefix + self.draws.to_bytes(8, "big")).digest(length)
        self.draws += 1
        return data

    def field_elements(self, count: int) -> list[int]:
        data = self.raw(16 * count)
        return [int.from_bytes(data[16 * i : 16 * i + 16], "big") % MODULUS for i in range(count)]


def seeded_key_gen(scheme: Any, seed: bytes, activation: int, slots: int) -> Any:
    """leanSpec's key_gen with its randomness drawn from ``seed``'s stream."""
    from lean_spec.spec.crypto.koalabear import Fp
    from lean_spec.spec.crypto.xmss import field, prf
    from lean_spec.spec.ssz import Uint64

    draws = SeededDraws(seed)
    saved = (field.random_field_elements, prf.PRFKey.generate)
    field.random_field_elements = lambda length: [  # type: ignore[assignment]
        Fp(value=value) for value in draws.field_elements(length)
    ]
    prf.PRFKey.generate = classmethod(lambda cls: cls(draws.raw(32)))  # type: ignore[method-assign,assignment]
    try:
        return scheme.key_gen(Uint64(activation), Uint64(slots))
    finally:
        field.random_field_elements, prf.PRFKey.generate = saved  # type: ignore[method-assign]


def key_vectors(scheme: Any, name: str, seed: int) -> dict[str, dict[str, Any]]:
    """Seeded keys, their advances, and signatures across every prepared window."""
    from lean_spec.spec.ssz import Bytes32, Uint64

    rng = random.Random(seed)
    fixtures: dict[str, dict[str, Any]] = {}
    for index, (key_seed, activation, slots) in enumerate(KEY_CASES):
        pair = seeded_key_gen(scheme, key_seed, activation, slots)
        secret_key = pair.secret_key
        preparations = []
        while True:
            prepared = scheme.get_prepared_interval(secret_key)
            signatures = []
            for slot in sorted(rng.sample(list(prepared), 2)):
                message = bytes(rng.getrandbits(8) for _ in range(32))
                signature = scheme.sign(secret_key, Uint64(slot), Bytes32(message))
                signatures.append(
                    {
                        "slot": slot,
                        "message": "0x" + message.hex(),
                        "signature": "0x" + signature.encode_bytes().hex(),
                    }
                )
            preparations.append(
                {"secretKey": "0x" + secret_key.encode_bytes().hex(), "signatures": signatures}
            )
            advanced = scheme.advance_preparation(secret_key)
            if advanced.left_bottom_tree_index == secret_key.left_bottom_tree_index:
                break
            secret_key = advanced
        fixtures[f"seeded_key{index}_from{activation}_for{slots}"] = {
            "scheme": name,
            "seed": "0x" + key_seed.hex(),
            "activationSlot": activation,
            "numActiveSlots": slots,
            "publicKey": "0x" + pair.public_key.encode_bytes().hex(),
            "preparations": preparations,
        }
    return fixtures


def leanspec_signature(scheme: Any, seed: bytes, slot: int, message: bytes, ours: bytes) -> str:
    """The signature leanSpec's signing makes for a key from ``seed`` (its PRF, its
    encoding search, its chains), carrying the authentication path of ``ours``."""
    from lean_spec.spec.crypto.koalabear import Fp
    from lean_spec.spec.crypto.xmss.containers import Signature
    from lean_spec.spec.crypto.xmss.encoding import target_sum_encode
    from lean_spec.spec.crypto.xmss.prf import PRFKey
    from lean_spec.spec.crypto.xmss.types import HashDigestList, Parameter
    from lean_spec.spec.ssz import Bytes32, Uint64

    config = scheme.config
    draws = SeededDraws(seed)
    parameter = Parameter(
        data=[Fp(value=value) for value in draws.field_elements(config.PARAMETER_LENGTH)]
    )
    prf_key = PRFKey(draws.raw(32))
    for attempt in range(config.MAX_TRIES):
        rho = prf_key.derive_randomness(config, Uint64(slot), Bytes32(message), Uint64(attempt))
        codeword = target_sum_encode(
            scheme.poseidon, config, parameter, Uint64(slot), rho, Bytes32(message)
        )
        if codeword is not None:
            break
    else:
        raise RuntimeError("no encoding")
    hashes = [
        scheme.poseidon.hash_chain(
            config=config,
            parameter=parameter,
            epoch=Uint64(slot),
            chain_index=chain,
            start_step=0,
            num_steps=steps,
            start_digest=prf_key.derive_chain_start(config, Uint64(slot), Uint64(chain)),
        )
        for chain, steps in enumerate(codeword)
    ]
    path = Signature.decode_bytes(ours).path
    signature = Signature(path=path, rho=rho, hashes=HashDigestList(data=hashes))
    return "0x" + signature.encode_bytes().hex()


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
    """leanSpec's verdicts on signatures made by lean_p2p (scripts/xmss_sign_ours.py),
    those of this process's scheme only, each also corrupted."""
    scheme, name = _scheme()
    rng = random.Random(seed)
    ours = [entry for entry in json.loads(path.read_text()) if entry["scheme"] == name]
    if len(ours) < 2:
        raise SystemExit(f"{path}: fewer than two {name} signatures to check")
    fixtures: dict[str, dict[str, Any]] = {}
    for index, entry in enumerate(ours):
        # the next signature by another key (a real key signs several of them)
        other = next(
            candidate
            for candidate in ours[index + 1 :] + ours[:index]
            if candidate["publicKey"] != entry["publicKey"]
        )
        keys = (bytes.fromhex(entry["publicKey"]), bytes.fromhex(other["publicKey"]))
        cases = _cases(
            rng,
            scheme.config,
            keys=keys,
            slot=int(entry["slot"]),
            message=bytes.fromhex(entry["message"]),
            signature=bytes.fromhex(entry["signature"]),
        )
        found = _fixtures(scheme, name, f"ours{index}_slot{entry['slot']}", cases)
        if "seed" in entry:
            valid = found[f"ours{index}_slot{entry['slot']}_valid"]
            valid["leanSpecSignature"] = leanspec_signature(
                scheme,
                bytes.fromhex(entry["seed"]),
                int(entry["slot"]),
                bytes.fromhex(entry["message"]),
                bytes.fromhex(entry["signature"]),
            )
        fixtures.update(found)
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
        keys = key_vectors(_scheme()[0], name, args.seed)
        key_path = args.out / "xmss_key" / "lstar" / name / "keys.json"
        key_path.parent.mkdir(parents=True, exist_ok=True)
        key_path.write_text(json.dumps(keys, indent=1) + "\n")
        print(f"{key_path}: {len(keys)} seeded keys", file=sys.stderr)
    directory = args.out / "xmss_signature" / "lstar" / name
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / filename
    path.write_text(json.dumps(fixtures, indent=1) + "\n")
    valid = sum(1 for fixture in fixtures.values() if fixture["valid"])
    print(f"{path}: {len(fixtures)} vectors, {valid} valid by leanSpec", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Write signatures made by lean_p2p, for leanSpec to verify and to re-derive.

    .venv/bin/python scripts/xmss_sign_ours.py OUT.json [--count 4] [--workers N]

Two kinds, in both schemes (test and production):

- signatures by seeded real keys (``lean_p2p.crypto.generate_key_pair``): in the test
  scheme two whole-lifetime keys, each signing across its prepared intervals as it
  advances; in the production scheme one key of the smallest interval (two bottom trees,
  131,072 slots: about a minute of C on two cores), signing at both ends of each bottom
  tree. Each entry carries its key's seed, so that leanSpec can re-derive the signature's
  one-time part from it;
- ``--count`` signatures by one-leaf keys (``sign_one_leaf``) over slots spread across the
  whole lifetime, the last slot included, which real keys of a short interval never reach.

``scripts/gen_xmss_vectors.py --verify-ours`` then records leanSpec's verdict on each and
on its corruptions.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any

from lean_p2p.containers.scheme import PRODUCTION_SCHEME, TEST_SCHEME, XmssScheme
from lean_p2p.crypto import generate_key_pair, prepare, sign, sign_one_leaf

#: (seed, slots to sign) of the real keys, per scheme; each key covers its slots.
REAL_KEYS: dict[str, list[tuple[bytes, list[int]]]] = {
    TEST_SCHEME.name: [
        (b"ours test 0", [0, 17, 31, 32, 100, 255]),
        (b"ours test 1", [5, 64, 200]),
    ],
    PRODUCTION_SCHEME.name: [
        (b"ours production 0", [0, 1, 65_535, 65_536, 131_071]),
    ],
}


def _message(*parts: object) -> bytes:
    return hashlib.sha256(" ".join(map(str, parts)).encode()).digest()


def _entry(
    scheme: XmssScheme, public_key: bytes, slot: int, message: bytes, signature: bytes
) -> dict[str, Any]:
    return {
        "scheme": scheme.name,
        "publicKey": public_key.hex(),
        "slot": slot,
        "message": message.hex(),
        "signature": signature.hex(),
    }


def real_signatures(scheme: XmssScheme, workers: int | None) -> list[dict[str, Any]]:
    entries = []
    for seed, slots in REAL_KEYS[scheme.name]:
        started = time.perf_counter()

        def progress(done: int, total: int, name: str = seed.decode()) -> None:
            print(f"  {scheme.name} key {name}: bottom tree {done}/{total}", file=sys.stderr)

        pair = generate_key_pair(
            min(slots),
            max(slots) - min(slots) + 1,
            seed=seed,
            scheme=scheme,
            workers=workers,
            on_bottom_tree=progress if scheme is PRODUCTION_SCHEME else None,
        )
        print(
            f"  {scheme.name} key {seed.decode()}: generated in "
            f"{time.perf_counter() - started:.1f} s",
            file=sys.stderr,
        )
        secret_key = pair.secret_key
        for slot in slots:
            secret_key = prepare(secret_key, slot, workers)
            message = _message(scheme.name, seed.hex(), slot)
            entry = _entry(scheme, pair.public_key, slot, message, sign(secret_key, slot, message))
            entry["seed"] = seed.hex()
            entries.append(entry)
    return entries


def one_leaf_signatures(scheme: XmssScheme, count: int) -> list[dict[str, Any]]:
    entries = []
    for index in range(count):
        message = _message(scheme.name, index)
        # slots spread over the lifetime, both parities, the last one included
        lifetime = 2**scheme.log_lifetime
        slot = (lifetime - 1) if index == 0 else (index * 2_654_435_761) % lifetime
        public_key, signature = sign_one_leaf(index + 1, slot, message, scheme)
        entries.append(_entry(scheme, public_key, slot, message, signature))
    return entries


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--count", type=int, default=4, help="one-leaf signatures per scheme")
    parser.add_argument("--workers", type=int, default=None, help="key generation threads")
    args = parser.parse_args(argv)
    entries = []
    for scheme in (TEST_SCHEME, PRODUCTION_SCHEME):
        entries += real_signatures(scheme, args.workers)
        entries += one_leaf_signatures(scheme, args.count)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(entries, indent=1) + "\n")
    print(f"{args.out}: {len(entries)} signatures", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

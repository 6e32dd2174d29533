"""Write signatures by lean_p2p's one-leaf keys, for leanSpec to verify.

    .venv/bin/python scripts/xmss_one_leaf.py OUT.json [--count 4]

Each scheme (test and production) gets ``--count`` signatures, deterministic in their
index, over distinct messages and slots; ``scripts/gen_xmss_vectors.py --verify-ours``
then records leanSpec's verdict on each and on its corruptions.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

from lean_p2p.containers.scheme import PRODUCTION_SCHEME, TEST_SCHEME
from lean_p2p.crypto import sign_one_leaf


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--count", type=int, default=4)
    args = parser.parse_args(argv)
    entries = []
    for scheme in (TEST_SCHEME, PRODUCTION_SCHEME):
        for index in range(args.count):
            seed = index + 1
            message = hashlib.sha256(f"{scheme.name} {index}".encode()).digest()
            # slots spread over the lifetime, both parities, the last one included
            slot = (
                (2**scheme.log_lifetime - 1)
                if index == 0
                else (index * 2_654_435_761) % (2**scheme.log_lifetime)
            )
            public_key, signature = sign_one_leaf(seed, slot, message, scheme)
            entries.append(
                {
                    "scheme": scheme.name,
                    "publicKey": public_key.hex(),
                    "slot": slot,
                    "message": message.hex(),
                    "signature": signature.hex(),
                }
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(entries, indent=1) + "\n")
    print(f"{args.out}: {len(entries)} signatures", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

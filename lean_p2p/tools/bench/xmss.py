"""``lean-p2p bench xmss``: XMSS verifications per second, ours beside leanSpec's.

Runs on the command's main thread, which starts the worker threads and, with
``--leanspec-python``, leanSpec in a process of its own. Every verification is a full
one over a valid signature (by a one-leaf key, :func:`lean_p2p.crypto.sign_one_leaf`,
which costs the verifier exactly what a real key's signature costs): the codeword, every
chain to its end, the leaf and the whole path. Our verifier runs in C without the GIL,
so N worker threads verify in parallel; each row gives the total rate of its workers.
Key generation and signing with real keys are not measured: they are not built yet.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from lean_p2p.containers.scheme import PRODUCTION_SCHEME, TEST_SCHEME, XmssScheme

__all__ = ["COLUMNS", "measure_ours", "run_benchmark"]

COLUMNS = ("config", "operation", "implementation", "workers", "verify_per_s", "note")

_LEANSPEC_RUNNER = r"""
import json, sys, time
from lean_spec.spec.crypto.xmss.interface import TARGET_SIGNATURE_SCHEME as scheme
from lean_spec.spec.crypto.xmss.containers import PublicKey, Signature
from lean_spec.spec.ssz import Bytes32, Uint64
entry = json.load(open(sys.argv[1]))
seconds = float(sys.argv[2])
key = PublicKey.decode_bytes(bytes.fromhex(entry["publicKey"]))
signature = Signature.decode_bytes(bytes.fromhex(entry["signature"]))
slot, message = Uint64(entry["slot"]), Bytes32(bytes.fromhex(entry["message"]))
assert scheme.verify(key, slot, message, signature)  # warm-up (numba compiles), and valid
count, started = 0, time.perf_counter()
while time.perf_counter() - started < seconds:
    scheme.verify(key, slot, message, signature)
    count += 1
print(json.dumps({"verify_per_s": count / (time.perf_counter() - started)}))
"""


def _signed(scheme: XmssScheme) -> tuple[bytes, int, bytes, bytes]:
    from lean_p2p.crypto import sign_one_leaf

    slot = 2**scheme.log_lifetime - 3  # a path that turns at every level's low bit
    message = bytes(range(32))
    public_key, signature = sign_one_leaf(1, slot, message, scheme)
    return public_key, slot, message, signature


def measure_ours(scheme: XmssScheme, workers: int, seconds: float) -> float:
    """Verifications per second of ``workers`` threads verifying for ``seconds``."""
    from lean_p2p.crypto import verify

    public_key, slot, message, signature = _signed(scheme)
    if not verify(public_key, slot, message, signature, scheme).valid:
        raise RuntimeError("the benchmark's own signature does not verify")
    counts = [0] * workers
    start = threading.Barrier(workers + 1)
    deadline = [0.0]

    def work(index: int) -> None:
        start.wait()
        done = 0
        while time.perf_counter() < deadline[0]:
            verify(public_key, slot, message, signature, scheme)
            done += 1
        counts[index] = done

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(workers)]
    for thread in threads:
        thread.start()
    deadline[0] = time.perf_counter() + seconds
    began = time.perf_counter()
    start.wait()
    for thread in threads:
        thread.join()
    return sum(counts) / (time.perf_counter() - began)


def measure_leanspec(python: str, scheme: XmssScheme, seconds: float) -> float:
    """leanSpec's verifications per second, one thread, in its own interpreter."""
    public_key, slot, message, signature = _signed(scheme)
    entry = {
        "publicKey": public_key.hex(),
        "slot": slot,
        "message": message.hex(),
        "signature": signature.hex(),
    }
    with tempfile.TemporaryDirectory(prefix="lean-p2p-bench-xmss-") as directory:
        entry_path = Path(directory) / "entry.json"
        entry_path.write_text(json.dumps(entry))
        runner = Path(directory) / "runner.py"
        runner.write_text(_LEANSPEC_RUNNER)
        env = dict(os.environ, LEAN_ENV="test" if scheme is TEST_SCHEME else "prod")
        done = subprocess.run(
            [python, str(runner), str(entry_path), str(seconds)],
            capture_output=True,
            text=True,
            env=env,
            timeout=600,
            check=False,
        )
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"leanSpec's run failed: {last[:200]}")
    rate: float = json.loads(done.stdout.strip().splitlines()[-1])["verify_per_s"]
    return rate


def run_benchmark(args: argparse.Namespace) -> int:
    from lean_p2p.crypto import availability
    from lean_p2p.tools.report import print_table, write_json
    from lean_p2p.tools.running import Progress

    if not availability().startswith("available"):
        print(f"lean-p2p bench xmss: native XMSS {availability()}", file=sys.stderr)
        return 2
    seconds = 0.5 if args.quick else args.seconds
    workers = [int(count) for count in args.workers.split(",") if count]
    progress = Progress("bench xmss")
    rows: list[dict[str, Any]] = []
    for scheme in (TEST_SCHEME, PRODUCTION_SCHEME):
        spec_rate = None
        if args.leanspec_python:
            progress.update(f"{scheme.name}: leanSpec", force=True)
            try:
                spec_rate = measure_leanspec(args.leanspec_python, scheme, seconds * 2)
            except (OSError, RuntimeError, subprocess.TimeoutExpired) as error:
                rows.append(
                    {
                        "config": scheme.name,
                        "operation": "verify",
                        "implementation": "leanSpec",
                        "note": f"not measured: {error}",
                    }
                )
            else:
                rows.append(
                    {
                        "config": scheme.name,
                        "operation": "verify",
                        "implementation": "leanSpec",
                        "workers": 1,
                        "verify_per_s": spec_rate,
                        "note": "its Python (numba) verifier, one thread",
                    }
                )
        for count in workers:
            progress.update(f"{scheme.name}: ours, {count} worker(s)", force=True)
            rate = measure_ours(scheme, count, seconds)
            note = "C, GIL released"
            if spec_rate:
                note += f"; {rate / spec_rate:.1f}x leanSpec"
            rows.append(
                {
                    "config": scheme.name,
                    "operation": "verify",
                    "implementation": "lean_p2p",
                    "workers": count,
                    "verify_per_s": rate,
                    "note": note,
                }
            )
    progress.done()
    machine = f"{os.cpu_count()} cores"
    print_table(rows, COLUMNS, title=f"XMSS verification, full verifications ({machine})")
    if args.json:
        write_json(args.json, rows)
    return 0

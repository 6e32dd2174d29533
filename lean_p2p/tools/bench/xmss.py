"""``lean-p2p bench xmss``: XMSS key generation, signing and verification, ours beside
leanSpec's.

Runs on the command's main thread, which starts the worker threads and, with
``--leanspec-python``, leanSpec in a process of its own. Per scheme and worker count:

- ``keygen``: seconds to generate a key: in the test scheme one of the whole lifetime
  (256 slots), in the production scheme the smallest one (two bottom trees, 131,072
  slots; about a minute, so ``--quick`` leaves it out). ``workers`` threads compute the
  leaves.
- ``sign``: signatures per second by ``workers`` threads signing with one real key across
  its prepared interval (the randomness search, the released chains, the path).
- ``verify``: full verifications per second of a valid signature (by a one-leaf key,
  :func:`lean_p2p.crypto.sign_one_leaf`, which costs the verifier exactly what a real
  key's signature costs): the codeword, every chain to its end, the leaf, the whole path.

Ours runs in C without the GIL, so N worker threads work in parallel; each row gives the
total rate of its workers. leanSpec runs on one thread; it cannot generate a production
key in any reasonable time, so it has no production keygen or sign row.
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
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lean_p2p.containers.scheme import PRODUCTION_SCHEME, TEST_SCHEME, XmssScheme
from lean_p2p.tools.running import Progress

if TYPE_CHECKING:
    from lean_p2p.crypto import XmssSecretKey

__all__ = ["COLUMNS", "measure_keygen", "measure_ours", "measure_sign", "run_benchmark"]

COLUMNS = (
    "config",
    "operation",
    "implementation",
    "workers",
    "keygen_s",
    "sign_per_s",
    "verify_per_s",
    "note",
)

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
result = {"verify_per_s": count / (time.perf_counter() - started)}
if sys.argv[3] == "test":
    started = time.perf_counter()
    pair = scheme.key_gen(Uint64(0), Uint64(256))
    result["keygen_s"] = time.perf_counter() - started
    prepared = list(scheme.get_prepared_interval(pair.secret_key))
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        slot = Uint64(prepared[count % len(prepared)])
        scheme.sign(pair.secret_key, slot, Bytes32(count.to_bytes(32, "little")))
        count += 1
    result["sign_per_s"] = count / (time.perf_counter() - started)
print(json.dumps(result))
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
    return _in_threads(
        workers,
        seconds,
        lambda _worker, _call: verify(public_key, slot, message, signature, scheme),
    )


def _in_threads(workers: int, seconds: float, work: Callable[[int, int], object]) -> float:
    """Calls per second of ``work(worker, call)`` on ``workers`` threads for ``seconds``."""
    counts = [0] * workers
    start = threading.Barrier(workers + 1)
    deadline = [0.0]

    def loop(index: int) -> None:
        start.wait()
        done = 0
        while time.perf_counter() < deadline[0]:
            work(index, done)
            done += 1
        counts[index] = done

    threads = [threading.Thread(target=loop, args=(i,), daemon=True) for i in range(workers)]
    for thread in threads:
        thread.start()
    deadline[0] = time.perf_counter() + seconds
    began = time.perf_counter()
    start.wait()
    for thread in threads:
        thread.join()
    return sum(counts) / (time.perf_counter() - began)


def measure_keygen(
    scheme: XmssScheme, workers: int, progress: Callable[[str], None] | None = None
) -> tuple[float, XmssSecretKey]:
    """Seconds to generate the scheme's benchmark key (see the module), and the key."""
    from lean_p2p.crypto import generate_key_pair

    def on_bottom_tree(done: int, total: int) -> None:
        if progress is not None:
            progress(f"bottom tree {done}/{total}")

    slots = 256 if scheme is TEST_SCHEME else 1
    started = time.perf_counter()
    pair = generate_key_pair(
        0, slots, seed=b"bench xmss", scheme=scheme, workers=workers, on_bottom_tree=on_bottom_tree
    )
    return time.perf_counter() - started, pair.secret_key


def measure_sign(secret_key: XmssSecretKey, workers: int, seconds: float) -> float:
    """Signatures per second of ``workers`` threads signing with ``secret_key``, each
    call at the next slot of its prepared interval, over a message of its own."""
    from lean_p2p.crypto import sign

    slots = list(secret_key.prepared_interval)

    def work(worker: int, call: int) -> None:
        message = (worker << 32 | call).to_bytes(32, "little")
        sign(secret_key, slots[call % len(slots)], message)

    return _in_threads(workers, seconds, work)


def measure_leanspec(python: str, scheme: XmssScheme, seconds: float) -> dict[str, float]:
    """leanSpec's rates, one thread, in its own interpreter: ``verify_per_s``, and in the
    test scheme ``keygen_s`` and ``sign_per_s``."""
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
            [python, str(runner), str(entry_path), str(seconds), scheme.name],
            capture_output=True,
            text=True,
            env=env,
            timeout=600,
            check=False,
        )
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"leanSpec's run failed: {last[:200]}")
    rates: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return rates


def run_benchmark(args: argparse.Namespace) -> int:
    from lean_p2p.crypto import availability
    from lean_p2p.tools.report import print_table, write_json

    if not availability().startswith("available"):
        print(f"lean-p2p bench xmss: native XMSS {availability()}", file=sys.stderr)
        return 2
    seconds = 0.5 if args.quick else args.seconds
    workers = [int(count) for count in args.workers.split(",") if count]
    progress = Progress("bench xmss")
    rows: list[dict[str, Any]] = []
    for scheme in (TEST_SCHEME, PRODUCTION_SCHEME):
        spec: dict[str, float] = {}
        if args.leanspec_python:
            progress.update(f"{scheme.name}: leanSpec", force=True)
            try:
                spec = measure_leanspec(args.leanspec_python, scheme, seconds * 2)
            except (OSError, RuntimeError, subprocess.TimeoutExpired) as error:
                rows.append(_row(scheme, "verify", "leanSpec", note=f"not measured: {error}"))
            else:
                rows.extend(_leanspec_rows(scheme, spec))
        rows.extend(
            _our_rows(
                scheme, workers, seconds=seconds, spec=spec, quick=args.quick, progress=progress
            )
        )
    progress.done()
    machine = f"{os.cpu_count()} cores"
    print_table(rows, COLUMNS, title=f"XMSS key generation, signing, verification ({machine})")
    if args.json:
        write_json(args.json, rows)
    return 0


_RATES = {"keygen": "keygen_s", "sign": "sign_per_s", "verify": "verify_per_s"}


def _row(
    scheme: XmssScheme,
    operation: str,
    implementation: str,
    *,
    workers: int | None = None,
    value: float | None = None,
    note: str = "",
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "config": scheme.name,
        "operation": operation,
        "implementation": implementation,
    }
    if workers is not None:
        row["workers"] = workers
    if value is not None:
        row[_RATES[operation]] = value
    row["note"] = note
    return row


def _step(progress: Progress, label: str, step: str) -> None:
    progress.update(f"{label}: {step}", force=True)


def _versus(operation: str, ours: float, spec: dict[str, float]) -> str:
    theirs = spec.get(_RATES[operation])
    if not theirs:
        return ""
    ratio = theirs / ours if operation == "keygen" else ours / theirs
    return f"; {ratio:.0f}x leanSpec"


def _leanspec_rows(scheme: XmssScheme, spec: dict[str, float]) -> list[dict[str, Any]]:
    rows = []
    for operation, field_name in _RATES.items():
        if field_name in spec:
            note = "its Python (numba), one thread"
            if operation == "keygen":
                note += "; whole lifetime"
            rows.append(
                _row(scheme, operation, "leanSpec", workers=1, value=spec[field_name], note=note)
            )
    return rows


def _our_rows(
    scheme: XmssScheme,
    workers: list[int],
    *,
    seconds: float,
    spec: dict[str, float],
    quick: bool,
    progress: Progress,
) -> list[dict[str, Any]]:
    rows = []
    key = None
    what = "whole lifetime" if scheme is TEST_SCHEME else "131,072 slots"
    if scheme is PRODUCTION_SCHEME and quick:
        rows.append(_row(scheme, "keygen", "lean_p2p", note="left out of --quick (a minute)"))
        rows.append(_row(scheme, "sign", "lean_p2p", note="left out of --quick (needs a key)"))
    else:
        for count in workers:
            label = f"{scheme.name}: keygen, {count} worker(s)"
            progress.update(label, force=True)
            took, key = measure_keygen(scheme, count, partial(_step, progress, label))
            note = f"C, {what}" + _versus("keygen", took, spec)
            rows.append(_row(scheme, "keygen", "lean_p2p", workers=count, value=took, note=note))
        assert key is not None
        for count in workers:
            progress.update(f"{scheme.name}: sign, {count} worker(s)", force=True)
            rate = measure_sign(key, count, seconds)
            note = "C, GIL released" + _versus("sign", rate, spec)
            rows.append(_row(scheme, "sign", "lean_p2p", workers=count, value=rate, note=note))
    for count in workers:
        progress.update(f"{scheme.name}: verify, {count} worker(s)", force=True)
        rate = measure_ours(scheme, count, seconds)
        note = "C, GIL released" + _versus("verify", rate, spec)
        rows.append(_row(scheme, "verify", "lean_p2p", workers=count, value=rate, note=note))
    return rows

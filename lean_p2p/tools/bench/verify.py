"""``lean-p2p bench verify``: how long the loop makes events wait while signatures are
verified, with the verification on worker threads, on the loop, or not at all.

Runs on the command's main thread, one event loop (uvloop unless ``--no-uvloop``) per
case, in one process, one case after the other. Each case is the node's own structure:
a :class:`~lean_p2p.runtime.Mailbox` with the node's ``control`` and ``verified`` lanes,
and a submitter on the loop that asks for ``--rate`` verifications a second (XMSS
signatures of the chosen scheme, each a full verification of a valid signature).

- ``none``: the submitter runs, nothing is verified (the baseline);
- ``workers``: :class:`~lean_p2p.node.verification.VerificationService` with
  ``--workers`` threads scheduled as ``--priorities`` say, results back through the
  ``verified`` lane (what a node with ``verification="xmss"`` does);
- ``loop``: each signature verified on the loop as it is submitted (what the store's
  synchronous verifier costs the loop).

The loop's responsiveness is measured the way a network thread feels it: a probe thread
puts an event into the ``control`` lane every millisecond, stamped with
``time.perf_counter()``, and the handler records how long it waited. Rows carry the
percentiles of that wait (``lag_*_us``), the verifications achieved per second, and for
``workers`` and ``loop`` the rise of the p99 over ``none`` in the same repeat. With
``--repeats`` the table gives each case's median over the repeats.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lean_p2p.containers.scheme import SCHEMES, XmssScheme
from lean_p2p.node.verification import default_workers
from lean_p2p.tools import report
from lean_p2p.tools.running import INTERRUPTS, Progress
from lean_p2p.tools.stress import loop_factory

__all__ = ["COLUMNS", "CaseResult", "measure_case", "run_benchmark"]

COLUMNS = (
    "case",
    "scheme",
    "rate",
    "workers",
    "verified_per_s",
    "lag_p50_us",
    "lag_p99_us",
    "lag_p999_us",
    "lag_max_us",
    "p99_rise_us",
    "note",
)
_PROBE_INTERVAL = 0.001
_SUBMIT_INTERVAL = 0.005


@dataclass(frozen=True, slots=True)
class CaseResult:
    case: str
    verified: int
    seconds: float
    lags: list[float]  # seconds each probe waited for the loop

    @property
    def verified_per_s(self) -> float:
        return self.verified / self.seconds

    def percentile(self, fraction: float) -> float:
        return report.percentile(sorted(self.lags), fraction)


def _signed(scheme: XmssScheme) -> tuple[bytes, int, bytes, bytes]:
    from lean_p2p.crypto import sign_one_leaf

    slot = 2**scheme.log_lifetime - 3
    message = bytes(range(32))
    public_key, signature = sign_one_leaf(7, slot, message, scheme)
    return public_key, slot, message, signature


async def _run_case(
    case: str,
    scheme: XmssScheme,
    *,
    rate: float,
    workers: int,
    priority: str,
    seconds: float,
    stop: threading.Event,
) -> CaseResult:
    from lean_p2p.crypto import verify
    from lean_p2p.node.verification import (
        SignatureCheck,
        VerificationService,
        VerifiedBatch,
        VerifySignatures,
    )
    from lean_p2p.runtime import Mailbox
    from lean_p2p.runtime.lanes import CONTROL, LEAN_LANES, VERIFIED

    public_key, slot, message, signature = _signed(scheme)
    check = SignatureCheck(public_key, slot, message, signature)
    loop = asyncio.get_running_loop()
    lags: list[float] = []
    verified = 0
    service: VerificationService | None = None

    def handle(lane: str, item: object) -> None:
        nonlocal verified
        if lane == CONTROL:
            lags.append(time.perf_counter() - item)  # type: ignore[operator]
        elif isinstance(item, VerifiedBatch):
            assert service is not None
            service.settle(item)
            verified += sum(1 for result in item.results if result.all_valid)

    lanes = [spec for spec in LEAN_LANES if spec.name in (CONTROL, VERIFIED)]
    mailbox = Mailbox(lanes, handle)
    if case == "workers":
        service = VerificationService(
            lambda c: verify(c.public_key, c.slot, c.message, c.signature, scheme).valid,
            lambda batch: mailbox.put(VERIFIED, batch),
            loop.call_soon,
            workers=workers,
            priority=priority,
        )

    def submit_one(ticket: int) -> None:
        nonlocal verified
        if case == "workers":
            assert service is not None
            service.submit(VerifySignatures(ticket, (check,)))
        elif case == "loop":
            verified += verify(public_key, slot, message, signature, scheme).valid

    stop_probe = threading.Event()

    def probe() -> None:
        while not stop_probe.wait(_PROBE_INTERVAL):
            mailbox.put(CONTROL, time.perf_counter())

    started = time.perf_counter()
    deadline = started + seconds
    submitted = 0
    done = loop.create_future()

    def tick() -> None:
        nonlocal submitted
        now = time.perf_counter()
        due = int((min(now, deadline) - started) * rate)
        for ticket in range(submitted, due):
            submit_one(ticket)
        submitted = max(submitted, due)
        if now < deadline and not stop.is_set():
            loop.call_later(_SUBMIT_INTERVAL, tick)
        elif not done.done():
            done.set_result(None)

    prober = threading.Thread(target=probe, name="bench-verify-probe", daemon=True)
    prober.start()
    loop.call_soon(tick)
    await done
    stop_probe.set()
    prober.join()
    elapsed = time.perf_counter() - started
    if service is not None:
        # What no worker started is cancelled; the mailbox's close hands over the rest.
        service.close()
        await asyncio.to_thread(service.join, 30.0)
    await mailbox.aclose()
    return CaseResult(case, verified, elapsed, lags)


def measure_case(
    case: str,
    scheme: XmssScheme,
    *,
    rate: float,
    workers: int = 1,
    priority: str = "nice",
    seconds: float,
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
    stop: threading.Event | None = None,
) -> CaseResult:
    """One case (``none``, ``workers`` or ``loop``) on a fresh event loop; ``stop`` (set
    by Ctrl-C) ends it early, with a partial result."""
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(
            _run_case(
                case,
                scheme,
                rate=rate,
                workers=workers,
                priority=priority,
                seconds=seconds,
                stop=stop or threading.Event(),
            )
        )


@dataclass(frozen=True, slots=True)
class _Case:
    case: str
    workers: int = 0
    priority: str = ""

    @property
    def label(self) -> str:
        if self.case != "workers":
            return self.case
        return f"workers ({self.workers}, {self.priority})"


def run_benchmark(args: argparse.Namespace) -> int:
    from lean_p2p.crypto import availability

    if not availability().startswith("available"):
        print(f"lean-p2p bench verify: native XMSS {availability()}", file=sys.stderr)
        return 2
    scheme = SCHEMES[args.scheme]
    seconds = 2.0 if args.quick else args.seconds
    repeats = 1 if args.quick else args.repeats
    factory = loop_factory("asyncio" if args.no_uvloop else "uvloop")
    worker_counts = (
        [int(n) for n in args.workers.split(",")] if args.workers else [default_workers()]
    )
    cases = [_Case("none"), _Case("loop")] + [
        _Case("workers", count, priority)
        for count in worker_counts
        for priority in args.priorities.split(",")
    ]
    progress = Progress("bench verify")
    results: dict[_Case, list[CaseResult]] = {case: [] for case in cases}
    rises: dict[_Case, list[float]] = {case: [] for case in cases}
    stop = threading.Event()
    # The first Ctrl-C ends the case in hand (its repeat is dropped) and prints the rest;
    # raising KeyboardInterrupt instead could land while a case builds its loop.
    with INTERRUPTS.stopping(stop.set):
        for repeat in range(repeats):
            measured: list[tuple[_Case, CaseResult]] = []
            for case in cases:
                if stop.is_set():
                    break
                progress.update(f"repeat {repeat + 1}/{repeats}: {case.label}", force=True)
                measured.append(
                    (
                        case,
                        measure_case(
                            case.case,
                            scheme,
                            rate=args.rate,
                            workers=case.workers or 1,
                            priority=case.priority or "nice",
                            seconds=seconds,
                            loop_factory=factory,
                            stop=stop,
                        ),
                    )
                )
            if stop.is_set():
                break  # a repeat is kept whole, or not at all: its rises pair with "none"
            baseline = measured[0][1].percentile(0.99)
            for case, result in measured:
                results[case].append(result)
                rises[case].append(result.percentile(0.99) - baseline)
    progress.done()
    rows = [_row(case, scheme, args, results[case], rises[case]) for case in cases if results[case]]
    loop_name = "asyncio" if args.no_uvloop else "uvloop"
    report.print_table(
        rows,
        COLUMNS,
        title=f"loop lag while verifying {args.rate:.0f} {scheme.name} signatures/s "
        f"({loop_name}, {seconds:.0f} s a case, median of {repeats})",
    )
    if args.json:
        report.write_json(args.json, rows)
    return 0


def _row(
    case: _Case,
    scheme: XmssScheme,
    args: argparse.Namespace,
    results: list[CaseResult],
    rises: list[float],
) -> dict[str, Any]:
    def median(values: list[float]) -> float:
        return statistics.median(values)

    row: dict[str, Any] = {
        "case": case.label,
        "scheme": scheme.name,
        "rate": args.rate,
        "workers": case.workers,
        "priority": case.priority,
        "verified_per_s": median([r.verified_per_s for r in results]),
        "lag_p50_us": median([r.percentile(0.5) * 1e6 for r in results]),
        "lag_p99_us": median([r.percentile(0.99) * 1e6 for r in results]),
        "lag_p999_us": median([r.percentile(0.999) * 1e6 for r in results]),
        "lag_max_us": median([max(r.lags) * 1e6 for r in results]),
        "probes": sum(len(r.lags) for r in results),
        "repeats": len(results),
        "note": {
            "none": "no verification: the baseline",
            "workers": "on worker threads, results through the mailbox",
            "loop": "on the loop, as submitted",
        }[case.case],
    }
    if case.case != "none":
        row["p99_rise_us"] = median(rises) * 1e6
    return row

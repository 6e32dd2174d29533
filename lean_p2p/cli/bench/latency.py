"""``lean-p2p bench latency``: its options. Main thread.

Argument parsing only; the benchmark is :mod:`lean_p2p.tools.bench.latency`, which
prints its table and writes its JSON.
"""

from __future__ import annotations

import argparse

from lean_p2p.tools.running import output_file

DESCRIPTION = "where the mailbox's enqueue->handler delay comes from: wakeup, GIL, GC, queueing"


def configure(parser: argparse.ArgumentParser) -> None:
    from lean_p2p.tools.bench.bridge import LOOPS

    parser.add_argument(
        "--quick", action="store_true", help="at most 20,000 events a case, one repeat"
    )
    parser.add_argument("--json", metavar="PATH", type=output_file, help="write the rows as JSON")
    parser.add_argument("--loops", nargs="+", choices=LOOPS, default=list(LOOPS), metavar="LOOP")
    parser.add_argument(
        "--rates",
        nargs="+",
        type=int,
        default=[20_000, 100_000],
        metavar="N",
        help="total events per second over all producers (20000 100000)",
    )
    parser.add_argument("--events", type=int, default=60_000, help="events a case (60000)")
    parser.add_argument("--repeats", type=int, default=3, help="repeats of every case (3)")
    parser.add_argument(
        "--levers",
        action="store_true",
        help=(
            "also 8 Python producers with the switch interval at 1 ms, and with gc.freeze(); "
            "and the native producers at nice 10, below the loop thread"
        ),
    )


def run(args: argparse.Namespace) -> int:
    from lean_p2p.tools.bench.latency import run_benchmark

    return run_benchmark(args)

"""``lean-p2p bench native``: its options. Main thread.

Argument parsing only; the benchmark is :mod:`lean_p2p.tools.bench.native`, which
prints its table and writes its JSON.
"""

from __future__ import annotations

import argparse

from lean_p2p.tools.bench.native import LOOP_STATES, PACED_RATE, PATHS
from lean_p2p.tools.running import output_file

DESCRIPTION = "native producers: C ring vs ctypes callback, loop idle/busy, 1/2/8 producers"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="fewer events, one repeat")
    parser.add_argument("--json", metavar="PATH", type=output_file, help="write the rows as JSON")
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    parser.add_argument(
        "--producers", default="1,2,8", help="comma-separated native producer counts"
    )
    parser.add_argument("--paths", default=",".join(PATHS), help="comma-separated paths")
    parser.add_argument(
        "--loop-states", default=",".join(LOOP_STATES), help="comma-separated loop states"
    )
    parser.add_argument("--repeat", type=int, help="runs per case (median); default 3, quick 1")
    parser.add_argument("--max-seconds", type=float, help="stop a case's producers after this long")
    parser.add_argument(
        "--rate", type=int, default=PACED_RATE, help="total events/s of the paced latency runs"
    )
    parser.add_argument("--events", type=int, help="flat-out events per case (all paths)")
    parser.add_argument(
        "--drain-events",
        type=int,
        help="events of the drain-only measurement (default 200,000; quick 50,000; 0: skip)",
    )


def run(args: argparse.Namespace) -> int:
    from lean_p2p.tools.bench.native import run_benchmark

    return run_benchmark(args)

"""``lean-p2p bench verify``: its options. Main thread.

Argument parsing only; the benchmark is :mod:`lean_p2p.tools.bench.verify`, which
prints its table and writes its JSON.
"""

from __future__ import annotations

import argparse

from lean_p2p.tools.running import output_file

DESCRIPTION = "the loop's lag while it verifies signatures: on worker threads, on the loop, or none"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="2 s a case, one repeat")
    parser.add_argument("--json", metavar="PATH", type=output_file, help="write the rows as JSON")
    parser.add_argument(
        "--rate", type=float, default=2000.0, help="verifications asked per second (2000)"
    )
    parser.add_argument(
        "--workers",
        help="comma-separated verifier thread counts (default: one fewer than the cores)",
    )
    parser.add_argument(
        "--priorities",
        default="nice,idle",
        help="comma-separated worker scheduling: normal, nice, idle (default nice,idle)",
    )
    parser.add_argument(
        "--scheme", choices=("test", "production"), default="production", help="XMSS scheme"
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds a case (10)")
    parser.add_argument("--repeats", type=int, default=3, help="repeats of every case (3)")
    parser.add_argument("--no-uvloop", action="store_true", help="use the stock asyncio loop")


def run(args: argparse.Namespace) -> int:
    from lean_p2p.tools.bench.verify import run_benchmark

    return run_benchmark(args)

"""``lean-p2p bench p2p``: its options. Main thread.

Argument parsing only; the benchmark is :mod:`lean_p2p.tools.bench.p2p`, which
prints its table and writes its JSON.
"""

from __future__ import annotations

import argparse

from lean_p2p.tools.running import output_file

DESCRIPTION = "catch-up requests and time: range sync vs parent walk, clean and chaotic"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seeds", type=int, default=100, help="seeded runs per scenario")
    parser.add_argument("--behind", type=int, default=1000, help="blocks the client lacks")
    parser.add_argument("--quick", action="store_true", help="5 seeds per scenario")
    parser.add_argument(
        "--json", metavar="PATH", type=output_file, help="also write the rows as JSON"
    )


def run(args: argparse.Namespace) -> int:
    from lean_p2p.tools.bench.p2p import run_benchmark

    return run_benchmark(args)

"""``lean-p2p bench storage``: its options. Main thread.

Argument parsing only; the benchmark is :mod:`lean_p2p.tools.bench.storage`, which
prints its tables and writes its JSON.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from lean_p2p.tools.running import output_file

DESCRIPTION = "chain database engines (SQLite WAL, LMDB) on this node's writes, and the loop's cost"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="64 slots, one repeat")
    parser.add_argument("--json", metavar="PATH", type=output_file, help="write the rows as JSON")
    parser.add_argument("--slots", type=int, default=400, help="chain length in slots (400)")
    parser.add_argument("--validators", type=int, default=16, help="validators (16)")
    parser.add_argument("--repeats", type=int, default=3, help="repeats of every case (3)")
    parser.add_argument(
        "--block-interval-ms",
        type=float,
        default=5.0,
        help="the loop cases import one block every this many ms (5)",
    )
    parser.add_argument(
        "--dir", type=Path, help="where the databases go (default: the temp dir; pick a disk)"
    )
    parser.add_argument("--no-uvloop", action="store_true", help="use the stock asyncio loop")


def run(args: argparse.Namespace) -> int:
    from lean_p2p.tools.bench.storage import run_benchmark

    return run_benchmark(args)

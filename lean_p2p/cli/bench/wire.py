"""``lean-p2p bench wire``: its options. Main thread.

Argument parsing only; the benchmark is :mod:`lean_p2p.tools.bench.wire`, which
prints its table and writes its JSON.
"""

from __future__ import annotations

import argparse

from lean_p2p.tools.running import output_file

DESCRIPTION = "SSZ encode/decode/root and snappy throughput vs py-ssz and remerkleable"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="short runs (smoke test)")
    parser.add_argument("--json", metavar="PATH", type=output_file, help="write the rows as JSON")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per figure")
    parser.add_argument(
        "--impl",
        action="append",
        choices=["lean_p2p", "py-ssz", "remerkleable"],
        help="SSZ implementations to compare (repeatable; default all)",
    )


def run(args: argparse.Namespace) -> int:
    from lean_p2p.tools.bench.wire import run_benchmark

    return run_benchmark(args)

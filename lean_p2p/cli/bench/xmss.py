"""``lean-p2p bench xmss``: its options. Main thread.

Argument parsing only; the benchmark is :mod:`lean_p2p.tools.bench.xmss`, which
prints its table and writes its JSON.
"""

from __future__ import annotations

import argparse

from lean_p2p.tools.running import output_file

DESCRIPTION = (
    "XMSS key generation, sign/s and verify/s per scheme and worker count, beside leanSpec's"
)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--quick",
        action="store_true",
        help="half a second per row, no production key (it takes a minute)",
    )
    parser.add_argument("--json", metavar="PATH", type=output_file, help="write the rows as JSON")
    parser.add_argument(
        "--workers", default="1,2", help="comma-separated worker thread counts (default 1,2)"
    )
    parser.add_argument("--seconds", type=float, default=3.0, help="seconds per row (default 3)")
    parser.add_argument(
        "--leanspec-python",
        metavar="PYTHON",
        help="an interpreter that imports lean_spec (../shared/peers/setup-leanspec.sh): "
        "its verifier in the same run",
    )


def run(args: argparse.Namespace) -> int:
    from lean_p2p.tools.bench.xmss import run_benchmark

    return run_benchmark(args)

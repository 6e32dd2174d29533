"""``lean-p2p bench bridge``: its options. Main thread.

Argument parsing only; the benchmark is :mod:`lean_p2p.tools.bench.bridge`, which
prints its table and writes its JSON.
"""

from __future__ import annotations

import argparse

from lean_p2p.tools.bench.bridge import DEFAULT_VARIANTS, LOOPS, VARIANTS
from lean_p2p.tools.running import output_file

DESCRIPTION = "mailbox vs call_soon_threadsafe vs janus vs mutex: events/s, p50/p99, wakeups"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="a run of under a minute")
    parser.add_argument("--json", metavar="PATH", type=output_file, help="write the rows as JSON")
    parser.add_argument(
        "--variants",
        nargs="+",
        choices=VARIANTS,
        default=list(DEFAULT_VARIANTS),
        metavar="VARIANT",
        help=f"of {', '.join(VARIANTS)} (default: {' '.join(DEFAULT_VARIANTS)})",
    )
    parser.add_argument("--loops", nargs="+", choices=LOOPS, default=list(LOOPS), metavar="LOOP")
    parser.add_argument("--producers", nargs="+", type=int, metavar="N")
    parser.add_argument(
        "--linger-us", type=float, metavar="US", help="the mailbox's linger (default: off)"
    )


def run(args: argparse.Namespace) -> int:
    from lean_p2p.tools.bench.bridge import run_benchmark

    return run_benchmark(args)

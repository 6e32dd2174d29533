"""``lean-p2p bench consensus``: its options. Main thread.

Argument parsing only; the benchmark is :mod:`lean_p2p.tools.bench.consensus`, which
prints its table and writes its JSON.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from lean_p2p.tools.running import output_file

DESCRIPTION = (
    "consensus: fork_choice vector replay (vs leanSpec), on_block vs history, get_head, votes/s"
)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="smaller sizes, fewer repeats")
    parser.add_argument("--json", type=output_file, metavar="PATH", help="write the rows as JSON")
    parser.add_argument(
        "--fixtures", type=Path, help="leanSpec fixtures root (default: the usual place)"
    )
    parser.add_argument(
        "--leanspec-python",
        metavar="PYTHON",
        help="an interpreter that can import lean_spec (and its prover module or a "
        "stand-in): replays the same vectors with the spec, side by side",
    )
    parser.add_argument(
        "--leanspec-path",
        default="",
        metavar="PATHS",
        help="PYTHONPATH entries for --leanspec-python (os.pathsep separated)",
    )
    parser.add_argument(
        "--only",
        choices=("replay", "on_block", "get_head", "votes"),
        action="append",
        help="run only these parts (repeatable)",
    )


def run(args: argparse.Namespace) -> int:
    from lean_p2p.tools.bench.consensus import run_benchmark

    return run_benchmark(args)

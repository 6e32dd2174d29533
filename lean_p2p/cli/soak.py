"""``lean-p2p soak``: a 4-node devnet under kills, pauses and malformed gossip. Main thread.

Argument parsing and output only; the run is :mod:`lean_p2p.tools.soak`. Prints the
verdict as JSON (the timeline and history go only to ``--json``) and exits 1 when it
did not pass.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from lean_p2p.tools.running import output_file

DESCRIPTION = "a 4-node devnet for minutes with a kill, a pause and malformed gossip; a verdict"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--duration", type=float, default=600.0, help="seconds after genesis")
    parser.add_argument("--dir", type=Path, help="devnet directory (default: a temp dir)")
    parser.add_argument("--json", type=output_file, help="write the verdict as JSON here")
    parser.add_argument(
        "--max-rss-mb", type=float, default=600.0, help="memory bound per node (default 600)"
    )
    parser.add_argument(
        "--max-growth-pct",
        type=float,
        default=25.0,
        help="memory growth bound over the second half, in percent (default 25)",
    )
    parser.add_argument(
        "--restart-delay", type=float, default=20.0, help="seconds node 3 stays down"
    )


def run(args: argparse.Namespace) -> int:
    from lean_p2p.tools.running import configure_logging, run_loop
    from lean_p2p.tools.soak import run_soak

    configure_logging("ERROR")
    verdict = run_loop(lambda stop: run_soak(args, stop))
    summary = {k: v for k, v in verdict.items() if k not in {"log", "history"}}
    print(json.dumps(summary, indent=2))
    if args.json is not None:
        args.json.write_text(json.dumps(verdict, indent=2) + "\n")
    if verdict["interrupted"]:
        return 130  # the command line says so; the verdict above is partial
    return 0 if verdict["passed"] else 1

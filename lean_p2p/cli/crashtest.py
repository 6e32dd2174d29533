"""``lean-p2p crashtest``: SIGKILL a node process during import, again and again. Main thread.

Argument parsing and output only; the run is :mod:`lean_p2p.tools.crashtest`. Prints a
progress line per kill, then the table; exits 1 unless every restart was clean, no
committed block was lost and no restored state was inconsistent.
"""

from __future__ import annotations

import argparse
import json
import threading
from pathlib import Path
from typing import Any

from lean_p2p.tools.running import output_file

DESCRIPTION = "kill a node process with SIGKILL at random points of its import; check restarts"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kills", type=int, default=100, help="kills (default 100)")
    parser.add_argument(
        "--slots", type=int, default=400, help="length of the imported chain (default 400)"
    )
    parser.add_argument("--dir", type=Path, help="work directory (default: a temp dir)")
    parser.add_argument("--seed", type=int, help="seed for the kill points")
    parser.add_argument("--json", type=output_file, help="write the result as JSON here")


def run(args: argparse.Namespace) -> int:
    import logging

    from lean_p2p.tools.crashtest import CrashTestResult, KillRecord, run_crash_test
    from lean_p2p.tools.running import INTERRUPTS, Progress, say

    # The chain it imports is signed with placeholders on purpose: no warning about it.
    logging.getLogger("lean_p2p.consensus.signatures").setLevel(logging.ERROR)

    if args.kills < 1 or args.slots < 8:
        say("lean-p2p crashtest: --kills must be at least 1 and --slots at least 8")
        return 2
    progress = Progress("crashtest", interval=0.0)

    def show(result: CrashTestResult, record: KillRecord) -> None:
        progress.update(
            f"kill {result.kills}/{args.kills}: {record.blocks_stored} blocks on disk, "
            f"finalized {record.finalized_slot}, clean {result.clean_restarts}, "
            f"lost {result.lost_committed_blocks}, inconsistent {result.inconsistent_states}"
        )

    stop = threading.Event()
    # The first Ctrl-C ends the run after the kill in hand, with the table so far.
    with INTERRUPTS.stopping(stop.set):
        result = run_crash_test(
            args.kills,
            slots=args.slots,
            directory=args.dir,
            seed=args.seed,
            on_progress=show,
            should_stop=stop.is_set,
        )
    progress.done()
    print(result.table())
    for problem in result.problems:
        print(f"problem: {problem}")
    summary: dict[str, Any] = result.as_dict()
    if args.json is not None:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
    return 0 if result.passed else 1

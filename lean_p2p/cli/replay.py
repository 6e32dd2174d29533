"""``lean-p2p replay``: replay a recording into a fresh node. Main thread, then its loop.

Feeds every recorded item, in recorded order at its recorded time, into a node built
from the recording's header, and prints the final head, checkpoints and store
fingerprint, and the replay's speed against the recorded wall time. ``--expect-head``
and ``--expect-fingerprint`` turn it into a check (exit 1 on mismatch).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from lean_p2p.tools.running import output_file

DESCRIPTION = "replay a recorded event file into a fresh node and print the final head"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recording", type=Path, help="a file written by lean-p2p node --record")
    parser.add_argument(
        "--speed",
        choices=("max", "recorded"),
        default="max",
        help="max: as fast as possible (default); recorded: keep the recorded spacing",
    )
    parser.add_argument("--json", type=output_file, help="write the result as JSON here")
    parser.add_argument("--expect-head", help="0x-hex head root the replay must reach")
    parser.add_argument("--expect-fingerprint", help="0x-hex store fingerprint to match")
    parser.add_argument("--log-level", default="ERROR", help="logging level (default ERROR)")


def run(args: argparse.Namespace) -> int:
    from lean_p2p.node.recording import RecordingError
    from lean_p2p.node.replay import replay_recording
    from lean_p2p.tools.running import configure_logging, run_loop

    configure_logging(args.log_level)
    try:
        result = run_loop(
            lambda _stop: replay_recording(args.recording, speed=args.speed), cancel_on_stop=True
        )
    except (RecordingError, OSError) as error:
        print(f"lean-p2p replay: {error}")
        return 2
    document = result.as_dict()
    print(json.dumps(document, indent=2))
    if args.json is not None:
        args.json.write_text(json.dumps(document, indent=2) + "\n")
    mismatches = [
        name
        for name, expected, actual in (
            ("head", args.expect_head, document["head_root"]),
            ("fingerprint", args.expect_fingerprint, document["fingerprint"]),
        )
        if expected is not None and expected.lower() != actual
    ]
    for name in mismatches:
        print(f"lean-p2p replay: {name} differs from the expected value")
    return 1 if mismatches or result.handler_errors else 0

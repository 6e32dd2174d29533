"""``lean-p2p spectest [PATH] [--format FORMAT]... [--json OUT]``. Main thread of the CLI.

Runs every vector of the supported formats (or of the ``--format`` ones) under the
fixtures root and prints passed / failed / skipped per format. Exit code 0 when no
vector failed and no requested format was missing, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

DESCRIPTION = "run leanSpec fixture vectors; prints passed/failed/skipped per format"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "path",
        nargs="?",
        type=Path,
        help="fixtures root holding ssz/, networking_codec/ ... "
        "(default: $LEAN_P2P_LEANSPEC_FIXTURES or ../shared/fixtures/leanspec)",
    )
    parser.add_argument(
        "--format",
        action="append",
        dest="formats",
        metavar="FORMAT",
        help="run only this format (repeatable); default: every supported format",
    )
    parser.add_argument("--json", type=Path, metavar="OUT", help="write {format: counts}")
    parser.add_argument(
        "--show-failures", type=int, default=10, metavar="N", help="print N failures per format"
    )


def run(args: argparse.Namespace) -> int:
    from lean_p2p.tools.report import print_table
    from lean_p2p.tools.spectest.locate import HOW_TO_GET, default_fixtures_root
    from lean_p2p.tools.spectest.runner import FormatCounts, discover_plugins, run_format

    root: Path = args.path or default_fixtures_root()
    if not root.is_dir():
        print(f"{root} is not a directory. {HOW_TO_GET}", file=sys.stderr)
        return 1
    plugins = discover_plugins()
    requested: list[str] = args.formats or sorted(plugins)
    unknown = [fmt for fmt in requested if fmt not in plugins]
    if unknown:
        print(f"unsupported format(s) {unknown}; supported: {sorted(plugins)}", file=sys.stderr)
        return 1
    counts: dict[str, FormatCounts] = {}
    for fmt in requested:
        counts[fmt] = tally = FormatCounts()
        if not (root / fmt).is_dir():
            print(f"warning: {root / fmt} is missing", file=sys.stderr)
        for result in run_format(root, fmt, plugins[fmt]):
            tally.add(result)
    rows = [{"format": fmt, **tally.as_json()} for fmt, tally in counts.items()]
    print_table(
        rows, ["format", "passed", "failed", "skipped"], title=f"leanSpec vectors in {root}"
    )
    for fmt, tally in counts.items():
        for failure in tally.failures[: args.show_failures]:
            print(f"FAILED {fmt} {failure.path.relative_to(root)} {failure.test_id}")
            print(f"    {failure.detail[:500]}")
    if args.json:
        document = {fmt: tally.as_json() for fmt, tally in counts.items()}
        args.json.write_text(json.dumps(document, indent=2) + "\n")
    missing = any(tally.passed + tally.failed + tally.skipped == 0 for tally in counts.values())
    failed = any(tally.failed for tally in counts.values())
    return 1 if failed or missing else 0

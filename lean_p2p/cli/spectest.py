"""``lean-p2p spectest [PATH] [--format FORMAT]... [--json OUT]``. Main thread of the CLI.

Runs every vector of the formats present under the fixtures root (or of the
``--format`` ones) and prints passed / failed / skipped per format; the supported
formats the root lacks are named on stderr. A format present under
the root that has no plug-in here is reported too, every one of its vectors counted as
skipped, so nothing in the fixtures goes unmentioned. Exit code 0 when no vector failed
and no requested format was missing, 1 otherwise; with ``--strict``, any skipped vector
fails the run too.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from lean_p2p.tools.running import output_file

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
    parser.add_argument("--json", type=output_file, metavar="OUT", help="write {format: counts}")
    parser.add_argument(
        "--show-failures", type=int, default=10, metavar="N", help="print N failures per format"
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="fail when any vector is skipped, including formats without a plug-in",
    )


def run(args: argparse.Namespace) -> int:
    from lean_p2p.tools.report import print_table
    from lean_p2p.tools.running import Progress
    from lean_p2p.tools.spectest.locate import HOW_TO_GET, default_fixtures_root
    from lean_p2p.tools.spectest.runner import (
        FormatCounts,
        count_vectors,
        discover_plugins,
        present_formats,
        run_format,
    )

    root: Path = args.path or default_fixtures_root()
    if not root.is_dir():
        print(f"{root} is not a directory. {HOW_TO_GET}", file=sys.stderr)
        return 1
    plugins = discover_plugins()
    present = present_formats(root)
    # By default: every format present under the root, supported or not. The supported
    # formats it lacks are named, not failed: fixture trees come from several sources
    # (leanSpec's filler, scripts/gen_xmss_vectors.py).
    requested: list[str] = args.formats or present
    if not requested:
        print(f"no vector files under {root}. {HOW_TO_GET}", file=sys.stderr)
        return 1
    unknown = [fmt for fmt in requested if fmt not in plugins and fmt not in present]
    if unknown:
        print(f"unsupported format(s) {unknown}; supported: {sorted(plugins)}", file=sys.stderr)
        return 1
    if not args.formats:
        absent = sorted(set(plugins) - set(present))
        if absent:
            print(f"not present under {root}: {', '.join(absent)}", file=sys.stderr)
    counts: dict[str, FormatCounts] = {}
    unsupported = [fmt for fmt in requested if fmt not in plugins]
    progress = Progress("spectest")
    for fmt in requested:
        counts[fmt] = tally = FormatCounts()
        if fmt not in plugins:
            # Present in the fixtures, but nothing here runs it: say so, with its size.
            tally.skipped = count_vectors(root, fmt)
            continue
        if not (root / fmt).is_dir():
            print(f"warning: {root / fmt} is missing", file=sys.stderr)
        for result in run_format(root, fmt, plugins[fmt]):
            tally.add(result)
            progress.update(f"{fmt}: {tally.passed + tally.failed + tally.skipped} vectors")
    progress.done()
    rows = [
        {
            "format": fmt,
            **tally.as_json(),
            "note": "no plug-in: every vector skipped" if fmt in unsupported else "",
        }
        for fmt, tally in counts.items()
    ]
    print_table(
        rows,
        ["format", "passed", "failed", "skipped", "note"],
        title=f"leanSpec vectors in {root}",
    )
    for fmt, tally in counts.items():
        for failure in tally.failures[: args.show_failures]:
            print(f"FAILED {fmt} {failure.path.relative_to(root)} {failure.test_id}")
            print(f"    {failure.detail[:500]}")
    if args.json:
        document: dict[str, dict[str, int | bool]] = {
            fmt: {**tally.as_json(), **({"unsupported": True} if fmt in unsupported else {})}
            for fmt, tally in counts.items()
        }
        args.json.write_text(json.dumps(document, indent=2) + "\n")
    missing = any(tally.passed + tally.failed + tally.skipped == 0 for tally in counts.values())
    failed = any(tally.failed for tally in counts.values())
    skipped = sum(tally.skipped for tally in counts.values())
    if args.strict and skipped:
        print(f"--strict: {skipped} vectors skipped", file=sys.stderr)
        return 1
    return 1 if failed or missing else 0

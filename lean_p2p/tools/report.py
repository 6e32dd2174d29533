"""Shared output of the benchmarks: an aligned table on stdout and JSON rows on disk.

Runs on the benchmark's main thread.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["environment", "format_table", "median", "percentile", "print_table", "write_json"]

Row = Mapping[str, Any]


def _cell(value: Any) -> str:
    if isinstance(value, float):
        if value == 0:
            return "0"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.3g}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return "" if value is None else str(value)


def format_table(rows: Sequence[Row], columns: Sequence[str]) -> str:
    """Render rows as a right-aligned text table with the given columns."""
    cells = [[_cell(row.get(column)) for column in columns] for row in rows]
    widths = [
        max([len(column), *(len(line[index]) for line in cells)])
        for index, column in enumerate(columns)
    ]
    header = "  ".join(column.rjust(width) for column, width in zip(columns, widths, strict=True))
    rule = "  ".join("-" * width for width in widths)
    body = ["  ".join(c.rjust(w) for c, w in zip(line, widths, strict=True)) for line in cells]
    return "\n".join([header, rule, *body])


def print_table(rows: Sequence[Row], columns: Sequence[str], title: str | None = None) -> None:
    if title:
        print(f"\n{title}")
    print(format_table(rows, columns), flush=True)


def environment() -> dict[str, Any]:
    """What a reader needs to judge a result: machine, interpreter, time."""
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def write_json(path: str | os.PathLike[str], rows: Sequence[Row]) -> None:
    """Write the table's rows as a JSON list; each row also names the environment."""
    env = environment()
    document = [{**row, "environment": env} for row in rows]
    target = Path(path)
    # Commands check their output path before the work (running.output_file); this
    # also covers a directory removed meanwhile, so the results are not lost at the end.
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(document, indent=2, default=str) + "\n")


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of already sorted values (fraction in [0, 1])."""
    if not sorted_values:
        return float("nan")
    rank = min(len(sorted_values) - 1, max(0, round(fraction * (len(sorted_values) - 1))))
    return sorted_values[rank]

"""Catch-up report: how many requests and how long a node 1,000 blocks behind needs.

Runs on the main thread of ``lean-p2p bench p2p`` (options: :mod:`lean_p2p.cli.bench.p2p`).
Each scenario runs the two-node simulation (:mod:`lean_p2p.tools.simulation`) over many seeds
and prints one row: range sync with batched parent fetch (this design) beside the
one-parent-at-a-time walk it replaces (``range_sync=False``), on a clean link and under
chaos. Request counts and simulated seconds are exact functions of the seed; only the
wall-clock column depends on the machine.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Sequence
from typing import Any

from lean_p2p.tools.memory_chain import build_chain
from lean_p2p.tools.report import print_table, write_json
from lean_p2p.tools.running import Progress
from lean_p2p.tools.simulation import Chaos, TwoNodeSimulation

__all__ = ["SCENARIOS", "run_benchmark", "run_scenario"]

#: A link with a 50 ms round trip, so that round trips show in the simulated time.
WAN = Chaos(min_delay=0.025, max_delay=0.025)
HARSH_WAN = Chaos(
    drop=0.02, duplicate=0.05, mismatch=0.02, min_delay=0.025, max_delay=0.5, resets=1
)
HEAVY_WAN = Chaos(drop=0.1, duplicate=0.1, mismatch=0.1, min_delay=0.025, max_delay=2.0, resets=3)

#: name -> (chaos, client uses range sync)
SCENARIOS: dict[str, tuple[Chaos, bool]] = {
    "parent walk (baseline), clean": (WAN, False),
    "range + batched by-root, clean": (WAN, True),
    "range + batched by-root, harsh chaos": (HARSH_WAN, True),
    "range + batched by-root, heavy chaos": (HEAVY_WAN, True),
}


def run_scenario(name: str, seeds: Sequence[int], behind: int) -> dict[str, Any]:
    chaos, range_sync = SCENARIOS[name]
    chain = build_chain(behind + 2)
    requests: list[int] = []
    seconds: list[float] = []
    wall: list[float] = []
    converged = 0
    for seed in seeds:
        started = time.perf_counter()
        result = TwoNodeSimulation(
            chain[: behind + 1],
            seed=seed,
            chaos=chaos,
            gossip_blocks=chain[behind + 1 :],
            client_range_sync=range_sync,
            gossip_window=(0.1, 0.1),
        ).run()
        wall.append((time.perf_counter() - started) * 1000)
        converged += result.converged
        counts = result.client_requests
        requests.append(
            counts.get("BlocksByRangeRequest", 0) + counts.get("BlocksByRootRequest", 0)
        )
        seconds.append(result.simulated_seconds)
    return {
        "scenario": name,
        "blocks_behind": behind + 1,  # the gossiped head makes it one more
        "runs": len(seeds),
        "converged": converged,
        "block_requests_median": statistics.median(requests),
        "block_requests_max": max(requests),
        "catch_up_s_median": statistics.median(seconds),
        "wall_ms_median": statistics.median(wall),
    }


def run_benchmark(args: argparse.Namespace) -> int:
    seeds = range(5 if args.quick else args.seeds)
    progress = Progress("bench p2p")
    rows = []
    for index, name in enumerate(SCENARIOS, start=1):
        progress.update(f"scenario {index} of {len(SCENARIOS)}: {name}", force=True)
        rows.append(run_scenario(name, seeds, args.behind))
    progress.done()
    baseline = rows[0]["block_requests_median"]
    for row in rows:
        row["requests_vs_baseline"] = row["block_requests_median"] / baseline
    columns = [
        "scenario",
        "blocks_behind",
        "runs",
        "converged",
        "block_requests_median",
        "block_requests_max",
        "requests_vs_baseline",
        "catch_up_s_median",
        "wall_ms_median",
    ]
    print_table(rows, columns, title="Catching up: two P2P cores over a simulated link")
    if args.json:
        write_json(args.json, rows)
    return 0

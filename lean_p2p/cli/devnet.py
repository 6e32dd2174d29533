"""``lean-p2p devnet``: a local devnet of node processes on loopback. Main thread.

Generates genesis and keys (real XMSS keys for every validator, test scheme by default,
in the keystore layout leanSpec's node reads: see :mod:`lean_p2p.node.keys`), starts
``--nodes`` node processes, prints a progress line a
second (slot, head range, justified, finalized, peers, events/s, drops), stops them in
order after ``--duration`` seconds past genesis, and prints (and with ``--json`` writes)
the summary: ``finalized_slot``, ``justified_slot``, ``head_agreement``, ``lost_events``.
Exit code 0 only if heads agree, nothing was lost, finality moved and every node exited
cleanly; otherwise 1, with one line on stderr per reason. Ctrl-C stops the nodes in
order and prints the summary so far (exit code 130).

``--leanspec K`` adds K leanSpec nodes (a mixed devnet, :mod:`lean_p2p.tools.devnet`):
the progress line then shows every node's head/justified/finalized, the end a table of
each node and its implementation, and the summary ``implementations_agree``. leanSpec
runs on ``--leanspec-python``, or on a venv built with the shared
``setup-leanspec.sh`` into the cache directory (``--leanspec-cache``) on first use.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from lean_p2p.tools.running import output_file

DESCRIPTION = "run a local devnet of N node processes on loopback and report finality"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--nodes", type=int, default=4, help="node processes (default 4)")
    parser.add_argument("--validators", type=int, default=4, help="validators (default 4)")
    parser.add_argument(
        "--duration", type=float, default=60.0, help="seconds to run after genesis (default 60)"
    )
    parser.add_argument("--json", type=output_file, help="write the summary as JSON here")
    parser.add_argument("--dir", type=Path, help="devnet directory (default: a new temp dir)")
    parser.add_argument(
        "--genesis-delay", type=float, default=12.0, help="seconds from now to genesis"
    )
    parser.add_argument("--record", action="store_true", help="each node records its events")
    parser.add_argument("--log-level", default="WARNING", help="log level of the nodes")
    parser.add_argument(
        "--scheme",
        choices=("test", "production"),
        default="test",
        help="XMSS parameters of the validators' keys: test (256 slots, fast; the default) "
        "or production (2^32 slots; a minute of key generation per key on two cores)",
    )
    parser.add_argument(
        "--mocked-signatures",
        action="store_true",
        help="placeholder signatures and no verification, as the test vectors have "
        "(default: real XMSS keys, every node verifies)",
    )
    parser.add_argument("--seed", help="make the validators' keys from this text (default: random)")
    parser.add_argument(
        "--leanspec",
        type=int,
        default=0,
        metavar="K",
        help="also run K leanSpec nodes on the same genesis, validators split between the "
        "implementations (default 0)",
    )
    parser.add_argument(
        "--leanspec-python",
        type=Path,
        help="the python of a venv made by setup-leanspec.sh (default: build one into the "
        "cache directory on first use, about two minutes)",
    )
    parser.add_argument(
        "--leanspec-stock",
        action="store_true",
        help="run leanSpec unchanged, without the launcher's workarounds for its known "
        "defects (they then show: docs/interop.md)",
    )
    parser.add_argument(
        "--late-join",
        type=float,
        metavar="SECONDS",
        help="start the last node of each kind this long after genesis (ours then joins "
        "through leanSpec's nodes alone, leanSpec's through ours) and report its catch-up",
    )
    parser.add_argument(
        "--late-checkpoint-sync",
        action="store_true",
        help="our late joiner starts from the finalized state of a running node (leanSpec's "
        "first with --leanspec, else ours) over its API instead of genesis",
    )
    parser.add_argument(
        "--restart-at",
        type=float,
        metavar="SECONDS",
        help="restart one running node of each kind this long after genesis and report "
        "its catch-up",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        metavar="DIR",
        help="our nodes keep their chains in DIR/<name> and restart from them (persists "
        "between runs of one devnet directory)",
    )
    parser.add_argument(
        "--restart-all-at",
        type=float,
        metavar="SECONDS",
        help="stop every node this long after genesis and start them all again from their "
        "databases (--data-dir, default DIR/data); report what they kept and when they "
        "finalized on top of it",
    )
    parser.add_argument(
        "--node-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="pass ARG to every one of our `lean-p2p node` processes (repeatable; write "
        "--node-arg=--no-gc-freeze for an option)",
    )
    parser.add_argument(
        "--scenario",
        type=Path,
        metavar="FILE",
        help="run the faults of a scenario file (scenarios/*.yaml: partitions, lossy and slow "
        "links, kills and restarts on a slot timeline) and check its expectations; the "
        "scenario sets the nodes and the length, --dir, --json, --genesis-delay and "
        "--log-level still apply",
    )
    parser.add_argument(
        "--leanspec-cache",
        type=Path,
        help="where a built leanSpec venv is kept (default: $LEAN_P2P_CACHE, else "
        "~/.cache/lean-p2p)",
    )


def run(args: argparse.Namespace) -> int:
    from lean_p2p.tools.devnet import (
        DevnetOptions,
        check_signing_options,
        devnet_failures,
        joins_table_text,
        nodes_table_text,
        run_devnet,
    )
    from lean_p2p.tools.leanspec import LeanSpecUnavailable
    from lean_p2p.tools.running import run_loop, say

    if args.scenario is not None:
        return _run_scenario(args)
    if args.nodes < 1 or args.validators < 1:
        print("lean-p2p devnet: need at least one node and one validator")
        return 2
    options = DevnetOptions(
        nodes=args.nodes,
        validators=args.validators,
        duration=args.duration,
        directory=args.dir,
        genesis_delay=args.genesis_delay,
        record=args.record,
        log_level=args.log_level,
        signatures="mocked" if args.mocked_signatures else "real",
        scheme=args.scheme,
        seed=args.seed.encode() if args.seed is not None else None,
        leanspec=args.leanspec,
        leanspec_python=args.leanspec_python,
        leanspec_cache=args.leanspec_cache,
        leanspec_stock=args.leanspec_stock,
        late_join=args.late_join,
        late_checkpoint_sync=args.late_checkpoint_sync,
        restart_at=args.restart_at,
        data_dir=args.data_dir,
        restart_all_at=args.restart_all_at,
        extra_node_args=tuple(args.node_arg),
    )
    problem = check_signing_options(options)
    if problem is not None:
        print(f"lean-p2p devnet: {problem}")
        return 2
    try:
        summary = run_loop(lambda stop: run_devnet(options, stop=stop))
    except LeanSpecUnavailable as error:
        print(f"lean-p2p devnet: {error}")
        return 2
    table = nodes_table_text(summary)
    if table:
        print(f"\nevery node at the end:\n{table}\n", flush=True)
    if summary.get("joins"):
        print(f"late and restarted nodes:\n{joins_table_text(summary)}\n", flush=True)
    headline = {
        key: summary[key]
        for key in (
            "finalized_slot",
            "justified_slot",
            "head_slot",
            "head_agreement",
            "finalized_roots_agree",
            "lost_events",
            "dropped_events",
            "handled_events",
            "exit_codes",
            "interrupted",
            "implementations_agree",
            "whole_restart",
        )
        if key in summary
    }
    print("summary: " + json.dumps(headline), flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps(summary, indent=2, default=str) + "\n")
    if summary["interrupted"]:
        return 130  # the command line says so; the summary above is partial
    failures = devnet_failures(summary)
    for reason in failures:
        say(f"devnet failed: {reason}")
    return 1 if failures else 0


def _run_scenario(args: argparse.Namespace) -> int:
    from lean_p2p.tools.running import EXIT_INTERRUPTED, run_loop
    from lean_p2p.tools.scenario import (
        ScenarioError,
        checks_text,
        load_scenario,
        run_scenario,
        write_summary,
    )

    try:
        scenario = load_scenario(args.scenario)
    except ScenarioError as error:
        print(f"lean-p2p devnet: {error}")
        return 2
    summary = run_loop(
        lambda stop: run_scenario(
            scenario,
            directory=args.dir,
            genesis_delay=args.genesis_delay,
            log_level=args.log_level,
            stop=stop,
        )
    )
    if summary["plot"] is None:
        print("\ninterrupted before any node started", flush=True)
    else:
        print(f"\n{checks_text(summary)}\nplot: {summary['plot']}", flush=True)
    if args.json is not None:
        write_summary(args.json, summary)
    if summary["interrupted"]:
        return EXIT_INTERRUPTED
    return 0 if summary["passed"] else 1

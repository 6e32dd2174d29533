"""``lean-p2p node``: run one node from devnet files. Main thread, then the node's loop.

Reads ``config.yaml``, ``validator-config.yaml``, ``validators.yaml``, ``nodes.yaml`` and
the node's key from ``--devnet DIR``, runs until SIGINT/SIGTERM (or ``--duration``), stops
in order, and optionally writes the final report (``--report-json``) and a recording of
every handled event (``--record``). ``--checkpoint-sync-url`` starts it from another
node's finalized state, fetched before its loop starts. ``--data-dir`` keeps its chain in
a database there and restarts from it (a database holding a chain wins over
``--checkpoint-sync-url``).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING

from lean_p2p.tools.running import output_file

if TYPE_CHECKING:
    from lean_p2p.node.config import NodeConfig
    from lean_p2p.node.node import Node

DESCRIPTION = "run one lean node from devnet files (config.yaml, validator-config.yaml, ...)"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--devnet", type=Path, required=True, help="devnet directory")
    parser.add_argument("--name", required=True, help="this node's name in validator-config.yaml")
    parser.add_argument(
        "--record", type=output_file, help="record every handled event to this file"
    )
    parser.add_argument("--duration", type=float, help="stop after this many seconds")
    parser.add_argument("--report-json", type=output_file, help="write the final node report here")
    parser.add_argument("--log-level", default="WARNING", help="logging level (default WARNING)")
    parser.add_argument("--no-uvloop", action="store_true", help="use the stock asyncio loop")
    parser.add_argument(
        "--bootnode",
        action="append",
        default=[],
        metavar="MULTIADDR",
        help="dial this peer (/ip4/../udp/../quic-v1/p2p/<peer id>) instead of the devnet's "
        "nodes.yaml; repeatable",
    )
    parser.add_argument(
        "--checkpoint-sync-url",
        metavar="URL",
        help="start from the finalized state another node serves at URL (its /lean/v0 API, "
        "ours or leanSpec's) instead of genesis",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        metavar="DIR",
        help="keep the chain in a database in DIR and restart from it (default: in memory)",
    )
    parser.add_argument(
        "--no-gc-freeze",
        action="store_true",
        help="runtime policy: by default, once started, the node collects garbage once and "
        "freezes the heap (gc.freeze), so later full collections, pauses of the loop "
        "thread, skip what start-up made; this leaves the collector as it was. The switch "
        "interval is never changed (a shorter one measured no gain). See docs/latency.md",
    )
    parser.add_argument(
        "--clock-skew",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="run the node's clock this many seconds ahead of the system's (negative: "
        "behind), as a node with a badly set clock would; for fault scenarios",
    )
    parser.add_argument(
        "--no-yield-to-loop",
        action="store_true",
        help="runtime policy: by default, when the network thread's hand-off of an event "
        "wakes the loop, that thread waits (the GIL released) up to 0.5 ms for the loop "
        "to drain, since otherwise it keeps retaking the GIL and the loop waits "
        "milliseconds for it; this turns the wait off. See docs/latency.md",
    )
    parser.add_argument(
        "--no-path-mtu-discovery",
        action="store_true",
        help="keep every QUIC datagram at 1,200 bytes: by default each connection, once "
        "its handshake is done, probes its path with a padded PING and sends datagrams "
        "of the largest size the peer acknowledges (up to 16,384 bytes; far fewer "
        "datagrams per block). See docs/driver.md",
    )
    parser.add_argument(
        "--accept-empty-proofs",
        action="store_true",
        help="accept empty aggregate and block proofs, as leanSpec's stand-in prover makes "
        "them (a devnet shared with leanSpec's node; needs a keystore)",
    )


def run(args: argparse.Namespace) -> int:
    from lean_p2p.node.checkpoint_sync import CheckpointSyncError
    from lean_p2p.node.config import DevnetConfigError, load_node_config
    from lean_p2p.node.database import DatabaseError
    from lean_p2p.node.keys import KeystoreError
    from lean_p2p.tools.running import configure_logging, run_loop

    configure_logging(args.log_level)
    try:
        config = load_node_config(args.devnet, args.name, record_path=args.record)
        if args.bootnode:
            config = dataclasses.replace(config, bootnodes=tuple(_checked(args.bootnode)))
        if args.checkpoint_sync_url:
            config = dataclasses.replace(config, checkpoint_sync_url=args.checkpoint_sync_url)
        if args.data_dir is not None:
            config = dataclasses.replace(config, data_dir=args.data_dir.absolute())
        if args.no_gc_freeze:
            config = dataclasses.replace(config, gc_freeze=False)
        if args.no_yield_to_loop:
            config = dataclasses.replace(config, yield_to_loop_s=0.0)
        if args.no_path_mtu_discovery:
            config = dataclasses.replace(config, path_mtu_discovery=False)
        if args.accept_empty_proofs:
            if config.keystore is None:
                raise DevnetConfigError(
                    "--accept-empty-proofs needs a devnet that signs for real (a keystore)"
                )
            config = dataclasses.replace(config, accept_empty_proofs=True)
        node = _build(config, clock_skew_s=args.clock_skew)
    except (DevnetConfigError, KeystoreError) as error:
        print(f"lean-p2p node: {error}")
        return 2
    except CheckpointSyncError as error:
        print(f"lean-p2p node: checkpoint sync failed: {error}")
        return 1
    except DatabaseError as error:
        print(f"lean-p2p node: {error}")
        return 1
    return run_loop(lambda stop: _main(node, args, stop), use_uvloop=not args.no_uvloop)


def _checked(addresses: list[str]) -> list[str]:
    """Each ``--bootnode`` must name its peer: a dial is checked against that identity."""
    from lean_p2p.node.config import DevnetConfigError
    from lean_p2p.p2p.core import bootnode_peer_id

    for address in addresses:
        if bootnode_peer_id(address) is None:
            raise DevnetConfigError(f"--bootnode {address}: expected .../p2p/<peer id>")
    return addresses


def _build(config: NodeConfig, *, clock_skew_s: float = 0.0) -> Node:
    """The node, its signature scheme selected and its keys read (before any loop)."""
    from lean_p2p.containers import select_signature_scheme
    from lean_p2p.node.checkpoint_sync import fetch_anchor
    from lean_p2p.node.clock import SystemClock
    from lean_p2p.node.keys import keystore_scheme
    from lean_p2p.node.node import Node

    if config.keystore is not None:
        # Before anything decodes: the scheme fixes the size of every signature.
        select_signature_scheme(keystore_scheme(config.keystore))
    from lean_p2p.node.persistence import open_chain

    anchor = None
    opened = None
    if config.data_dir is not None:
        opened = open_chain(config.data_dir, config.genesis)
        if opened.stored is not None:
            stored = opened.stored
            print(
                f"node {config.name}: restarting from {opened.database.path}: finalized slot "
                f"{stored.finalized_slot}, {len(stored.blocks)} blocks above it",
                flush=True,
            )
    if config.checkpoint_sync_url is not None and (opened is None or opened.stored is None):
        # Blocking HTTP, here on the main thread before the node's loop exists.
        anchor = fetch_anchor(config.checkpoint_sync_url, config.genesis)
        print(
            f"node {config.name}: checkpoint sync from {anchor.source}: finalized slot "
            f"{anchor.slot}, root 0x{anchor.root.hex()}",
            flush=True,
        )
    clock = SystemClock(skew_s=clock_skew_s) if clock_skew_s else None
    return Node(config, anchor=anchor, opened=opened, clock=clock)


async def _main(node: Node, args: argparse.Namespace, stop: asyncio.Event) -> int:
    from lean_p2p.node.node import NodeFailed

    config = node.config
    await node.start()
    print(f"node {config.name} peer_id={node.peer_id} api={node.api_ports}", flush=True)
    waiters = [
        asyncio.ensure_future(stop.wait()),
        asyncio.ensure_future(node.wait_stopped()),
    ]
    if args.duration is not None:
        waiters.append(asyncio.ensure_future(asyncio.sleep(args.duration)))
    _, pending = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    for waiter in pending:
        waiter.cancel()
    exit_code = 0
    try:
        await node.stop()
    except NodeFailed as error:
        print(f"lean-p2p node: {error}", flush=True)
        exit_code = 1
    report = node.report().as_dict()
    if args.report_json is not None:
        args.report_json.write_text(json.dumps(report, indent=2) + "\n")
    print(
        f"node {config.name} stopped: head={report['head_slot']} "
        f"justified={report['justified_slot']} finalized={report['finalized_slot']} "
        f"handled={report['handled']} lost={report['lost_events']}",
        flush=True,
    )
    return exit_code

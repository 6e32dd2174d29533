"""``lean-p2p bench gossip``: its options. Main thread.

Argument parsing only; the benchmark is :mod:`lean_p2p.tools.bench.gossip`, which
prints its table and writes its JSON.
"""

from __future__ import annotations

import argparse

from lean_p2p.tools.bench.gossip import VARIANTS
from lean_p2p.tools.running import output_file

DESCRIPTION = "gossip msgs/s and latency, req/resp round trips/s: lean driver vs stock py-libp2p"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="short run (under a minute)")
    parser.add_argument("--json", metavar="PATH", type=output_file, help="write the rows as JSON")
    parser.add_argument(
        "--variants",
        default="",
        help="comma-separated of lean, stock, stock-quic, lean-signed, lean-no-yield, "
        "lean-no-pmtud, lean-switch-1ms, lean-switch-100us (default: lean,stock with "
        "--quick, the first six otherwise; lean-signed verifies every attestation's "
        "production signature before counting it; lean-no-yield is lean without the "
        "node's GIL hand-over to the loop; lean-no-pmtud is lean without path-MTU "
        "discovery; lean-switch-* run the receiver with that switch interval)",
    )
    parser.add_argument(
        "--repeats", type=int, default=0, help="repetitions (default 2 quick, 3 full)"
    )
    parser.add_argument(
        "--datagram-size",
        type=int,
        default=1200,
        help="lean QUIC datagram size each connection starts with (1200 default; path-MTU "
        "discovery then probes for more)",
    )
    parser.add_argument(
        "--dialer",
        choices=("sender", "receiver"),
        default="sender",
        help="lean only: which side dials the connection the gossip flows over "
        "(default sender: gossip arrives on the receiver's listener; receiver: on a "
        "connection it dialed)",
    )
    parser.add_argument(
        "--sender-nice",
        type=_niceness,
        default=0,
        metavar="N",
        help="run the sending side at nice N and each receiver at the priority the command "
        "started with, as if the sender were another machine: on a small box the two "
        "processes otherwise compete for the same cores (needs the right to raise a "
        "priority back: root or CAP_SYS_NICE)",
    )
    parser.add_argument("--role", choices=list(VARIANTS), help=argparse.SUPPRESS)


def _niceness(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 19:
        raise argparse.ArgumentTypeError(f"a nice value is 0 to 19, not {value}")
    return value


def run(args: argparse.Namespace) -> int:
    from lean_p2p.tools.bench.gossip import run_benchmark

    return run_benchmark(args)

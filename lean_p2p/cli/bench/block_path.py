"""``lean-p2p bench block-path``: its options. Main thread.

Argument parsing only; the benchmark is :mod:`lean_p2p.tools.bench.block_path`, which
prints its table and writes its JSON.
"""

from __future__ import annotations

import argparse

from lean_p2p.tools.running import output_file

DESCRIPTION = (
    "where one block's time goes in the lean driver: encoding, framing, QUIC on each "
    "side, parsing, message id, decoding"
)


def configure(parser: argparse.ArgumentParser) -> None:
    from lean_p2p.tools.bench.block_path import BLOCK_SIZES, DATAGRAM_SIZES

    parser.add_argument("--quick", action="store_true", help="3 blocks a case (under a minute)")
    parser.add_argument("--json", metavar="PATH", type=output_file, help="write the rows as JSON")
    parser.add_argument(
        "--block-sizes",
        nargs="+",
        type=_positive,
        default=list(BLOCK_SIZES),
        metavar="BYTES",
        help="encoded block sizes (100000 500000 2000000)",
    )
    parser.add_argument(
        "--datagram-sizes",
        nargs="+",
        type=_datagram_size,
        default=list(DATAGRAM_SIZES),
        metavar="BYTES",
        help="QUIC datagram sizes (1200, where connections start, and 16384, what "
        "path-MTU discovery reaches on loopback)",
    )
    parser.add_argument(
        "--repeats",
        type=_positive,
        default=0,
        help="blocks a case (default 15, 5 for 1 MB and more)",
    )
    parser.add_argument(
        "--quic",
        nargs="+",
        choices=("aioquic", "qh3"),
        default=["aioquic"],
        metavar="LIBRARY",
        help="the QUIC library of the in-memory pair: aioquic (what the driver runs) "
        "and/or qh3 (aioquic's API, its packet work in Rust; needs pip install qh3)",
    )


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"a count or size of at least 1, not {value}")
    return value


def _datagram_size(text: str) -> int:
    from lean_p2p.driver.pmtu import AIOQUIC_MAX_DATAGRAM

    value = int(text)
    if not 1200 <= value <= AIOQUIC_MAX_DATAGRAM:
        raise argparse.ArgumentTypeError(
            f"a QUIC datagram is 1200 to {AIOQUIC_MAX_DATAGRAM} bytes here, not {value}"
        )
    return value


def run(args: argparse.Namespace) -> int:
    from lean_p2p.tools.bench.block_path import run_benchmark

    return run_benchmark(args)

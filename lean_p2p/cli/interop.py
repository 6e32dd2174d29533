"""``lean-p2p interop``: our network driver against leanSpec's node. Main thread.

Argument parsing only; the harness is :mod:`lean_p2p.tools.interop`. Paths are checked
while parsing, so a wrong one is a usage error (exit 2) before anything starts.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lean_p2p.tools.running import output_file

DESCRIPTION = "run our network driver against leanSpec's node on loopback; a table of checks"

#: the validator index leanSpec runs as in --validator mode (kept in step with the tool)
_LEANSPEC_VALIDATOR_INDEX = 0


def _leanspec_tree(text: str) -> Path:
    path = Path(text)
    if not (path / "lean_spec" / "__init__.py").is_file():
        raise argparse.ArgumentTypeError(f"{path}: no lean_spec package there")
    return path


def _executable(text: str) -> Path:
    path = Path(text)
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise argparse.ArgumentTypeError(f"{path}: not an executable")
    return path


def _directory(text: str) -> Path:
    path = Path(text)
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"{path}: not a directory")
    return path


class _AggregatorMode(argparse.Action):
    """``--aggregator`` is validator mode with aggregation: it sets both flags."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        namespace.aggregator = True
        namespace.validator = True


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Run our NetworkDriver against leanSpec's node over QUIC-v1 on loopback: "
        "connect, Status both ways, block mesh, gossip import, range sync, "
        "BlocksByRoot both ways. Prints a table of checks; exits 1 if one fails."
    )
    parser.add_argument(
        "--leanspec",
        type=_leanspec_tree,
        required=True,
        help="leanSpec source tree (holds lean_spec/)",
    )
    parser.add_argument(
        "--python",
        type=_executable,
        required=True,
        help="Python 3.12 interpreter with leanSpec's dependencies",
    )
    parser.add_argument(
        "--stubs",
        type=_directory,
        default=None,
        help="directory with numba and lean_multisig_py stand-ins (default: written to a "
        "temporary directory)",
    )
    parser.add_argument(
        "--stock",
        action="store_true",
        help="run leanSpec unchanged (its BlocksByRoot responder then has no block lookup)",
    )
    parser.add_argument(
        "--timeout", type=float, default=30.0, help="seconds per check (default 30)"
    )
    parser.add_argument(
        "--startup-timeout",
        type=float,
        default=120.0,
        help="seconds for leanSpec to start and connect (default 120)",
    )
    parser.add_argument("--log", type=output_file, default=None, help="keep leanSpec's output here")
    parser.add_argument(
        "--leanspec-verbose", action="store_true", help="run leanSpec with --verbose (DEBUG)"
    )
    parser.add_argument(
        "--validator",
        action="store_true",
        help=f"run leanSpec as validator {_LEANSPEC_VALIDATOR_INDEX} (XMSS keys generated for "
        "it, LEAN_ENV=test) and check its block and attestation gossip instead of ours",
    )
    parser.add_argument(
        "--aggregator",
        action=_AggregatorMode,
        nargs=0,
        default=False,
        help="--validator, with leanSpec also aggregating (--is-aggregator); checks its "
        "aggregate gossip too",
    )
    parser.add_argument(
        "--json", type=output_file, default=None, help="write the table as JSON rows"
    )


def run(args: argparse.Namespace) -> int:
    from lean_p2p.tools.interop import run_interop

    return run_interop(args)

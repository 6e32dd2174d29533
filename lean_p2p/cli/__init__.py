"""The ``lean-p2p`` command line.

Runs on the main thread of the command's own process. Each subcommand lives in its own
module here (each benchmark in ``cli/bench/``), which parses its options and calls the
tool that does the work (:mod:`lean_p2p.tools`). A module is imported when the parser
is built; a command module exposes

- ``DESCRIPTION: str`` — one line for ``--help``;
- ``configure(parser: argparse.ArgumentParser) -> None`` — adds its options;
- ``run(args: argparse.Namespace) -> int`` — does the work, returns the exit code.

Command modules keep their top-level imports light (heavy imports go inside ``run``)
so that ``lean-p2p --help`` stays fast.

What every command gets from here, without writing it (see
:mod:`lean_p2p.tools.running`): ``--quiet`` (no progress on stderr); Ctrl-C handled the
same way everywhere (the first stops the command, which prints what it has, then
``lean-p2p`` exits 130 with one line and no traceback; a second exits at once); and
an ``OSError`` at the end of a run (a file that cannot be written) reported in one line
with exit code 1. Output paths use :func:`lean_p2p.tools.running.output_file`.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import logging
import sys
import warnings
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

__all__ = ["BENCHMARKS", "COMMANDS", "build_parser", "entry_point", "main"]

#: subcommand name -> module implementing it
COMMANDS: dict[str, str] = {
    "node": "lean_p2p.cli.node",
    "devnet": "lean_p2p.cli.devnet",
    "stress": "lean_p2p.cli.stress",
    "spectest": "lean_p2p.cli.spectest",
    "profile": "lean_p2p.cli.profile",
    "replay": "lean_p2p.cli.replay",
    "interop": "lean_p2p.cli.interop",
    "soak": "lean_p2p.cli.soak",
    "crashtest": "lean_p2p.cli.crashtest",
}

#: ``lean-p2p bench NAME`` -> module implementing the benchmark
BENCHMARKS: dict[str, str] = {
    "bridge": "lean_p2p.cli.bench.bridge",
    "native": "lean_p2p.cli.bench.native",
    "wire": "lean_p2p.cli.bench.wire",
    "consensus": "lean_p2p.cli.bench.consensus",
    "gossip": "lean_p2p.cli.bench.gossip",
    "block-path": "lean_p2p.cli.bench.block_path",
    "p2p": "lean_p2p.cli.bench.p2p",
    "xmss": "lean_p2p.cli.bench.xmss",
    "verify": "lean_p2p.cli.bench.verify",
    "storage": "lean_p2p.cli.bench.storage",
    "latency": "lean_p2p.cli.bench.latency",
}


def _load(module_name: str) -> ModuleType | None:
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        # Only a missing command module itself is tolerated; a missing dependency of an
        # existing module is a real error and must surface.
        if error.name == module_name:
            return None
        raise


def _add_command(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    module_name: str,
) -> None:
    module = _load(module_name)
    if module is None:
        return
    description: str = module.DESCRIPTION
    parser = subparsers.add_parser(name, help=description, description=description)
    module.configure(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    parser.set_defaults(_run=module.run, _command=parser.prog)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lean-p2p",
        description="Event-loop core for Ethereum lean-consensus clients.",
    )
    parser.add_argument("--version", action="version", version=_version())
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        _add_command(subparsers, name, module_name)
    bench = subparsers.add_parser(
        "bench",
        help="run a benchmark; prints a table and writes JSON with --json",
        description="Benchmarks: each prints a table and writes JSON with --json PATH.",
    )
    bench_subparsers = bench.add_subparsers(title="benchmarks", metavar="BENCHMARK")
    for name, module_name in BENCHMARKS.items():
        _add_command(bench_subparsers, name, module_name)
    bench.set_defaults(_run=lambda _args: _print_help(bench))
    return parser


def _print_help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _version() -> str:
    from lean_p2p import __version__

    return f"lean-p2p {__version__}"


def main(argv: Sequence[str] | None = None) -> int:
    from lean_p2p.tools.running import EXIT_INTERRUPTED, INTERRUPTS, say, set_quiet

    parser = build_parser()
    args = parser.parse_args(argv)
    run = getattr(args, "_run", None)
    if run is None:
        return _print_help(parser)
    command: str = args._command
    set_quiet(args.quiet)
    INTERRUPTS.begin_run()
    try:
        exit_code: int = run(args)
    except KeyboardInterrupt:
        say(f"{command}: interrupted")
        INTERRUPTS.wait_for_threads()
        return EXIT_INTERRUPTED
    except OSError as error:
        # A path that could not be read or written: say which, in one line.
        say(f"{command}: {error}")
        return 1
    if INTERRUPTS.interrupted:
        say(f"{command}: interrupted; the results above are partial")
        INTERRUPTS.wait_for_threads()
        return EXIT_INTERRUPTED
    return exit_code


def entry_point() -> int:
    """The ``lean-p2p`` executable: :func:`main`, then the process exits."""
    from lean_p2p.tools.running import INTERRUPTS

    # A KeyboardInterrupt lands between any two bytecodes, so it can leave an object
    # half-built (an event loop interrupted in its __init__), whose finalizer then fails
    # as it is freed, during the command's unwinding or at exit; Python prints that as
    # a traceback. Likewise a task the interrupt landed in (a bench's busy loop) holds
    # it as its exception, and asyncio logs "Task exception was never retrieved" with
    # the whole traceback when the task is freed. The interrupt is reported in one line
    # already, so both are dropped once the run was interrupted, and only then. So is
    # the RuntimeWarning about a coroutine that was never awaited: the interrupt can land
    # between a coroutine's creation and its first step (the argument of a Runner.run),
    # and the warning comes when the interrupt's traceback lets the coroutine go. (Not
    # in main(): callers in the same process keep their own hook, logging and warnings.)
    sys.unraisablehook = functools.partial(
        _unless_interrupted, sys.unraisablehook, lambda: INTERRUPTS.interrupted
    )
    warnings.showwarning = functools.partial(
        _show_warning_unless_interrupted, warnings.showwarning, lambda: INTERRUPTS.interrupted
    )
    logging.getLogger("asyncio").addFilter(_drop_interrupt_records)
    return main()


def _unless_interrupted(
    hook: Callable[[Any], object], interrupted: Callable[[], bool], unraisable: Any
) -> None:
    if not interrupted():
        hook(unraisable)


#: how CPython words the RuntimeWarning about a coroutine freed before its first step
_NEVER_AWAITED = "was never awaited"


def _show_warning_unless_interrupted(
    show: Callable[..., object],
    interrupted: Callable[[], bool],
    message: Warning | str,
    category: type[Warning],
    *where: Any,
) -> None:
    """``warnings.showwarning`` (``where``: its filename, lineno, file and line), except
    for a coroutine never awaited once the run was interrupted."""
    if interrupted() and issubclass(category, RuntimeWarning) and _NEVER_AWAITED in str(message):
        return
    show(message, category, *where)


def _drop_interrupt_records(record: logging.LogRecord) -> bool:
    """A logging filter: False (drop) for a record that reports a KeyboardInterrupt."""
    return not (record.exc_info is not None and isinstance(record.exc_info[1], KeyboardInterrupt))


if __name__ == "__main__":
    sys.exit(entry_point())

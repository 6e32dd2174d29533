"""``lean-p2p stress``: the mailbox race-condition scenario at any scale.

Runs on the command's main thread, which becomes the loop thread; producers run on
their own threads. Reports events, lost, duplicated, reordered, wrong-thread accesses,
events/s and lane statistics; exits 1 if any event was lost, duplicated or reordered.

Producer kinds plug in through :func:`producer_groups`: each kind adds its option in
:func:`configure` and one line there (Python threads are the built-in kind).
"""

from __future__ import annotations

import argparse
import logging
from typing import TYPE_CHECKING

from lean_p2p.tools.running import output_file

if TYPE_CHECKING:
    from lean_p2p.tools.stress import ProducerGroup, StressResult

DESCRIPTION = "mailbox race-condition stress run: N producers, M events, exactly-once check"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--producers", type=int, default=8, help="Python producer threads")
    parser.add_argument(
        "--native", type=int, default=0, metavar="N", help="native pthreads pushing via the C ring"
    )
    parser.add_argument(
        "--native-path",
        choices=["direct", "feeder"],
        default="direct",
        help="how the ring hands events to the mailbox: direct, the mailbox sink's one C call "
        "per batch into a lane shared with Python producers (an embedder's default); feeder, "
        "a Python sink putting each event on its producer's lane",
    )
    parser.add_argument("--events", type=int, default=1_000_000, help="total events")
    parser.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop")
    parser.add_argument("--json", metavar="PATH", type=output_file, help="write the result as JSON")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--burst-max", type=int, default=64, help="largest burst per producer")
    parser.add_argument(
        "--sleep-probability", type=float, default=0.05, help="chance of a sleep after a burst"
    )
    parser.add_argument(
        "--sleep-max-us", type=float, default=500.0, help="longest sleep between bursts"
    )
    parser.add_argument(
        "--close-after",
        type=int,
        metavar="N",
        help="close the mailbox after N handled events, racing the producers",
    )
    parser.add_argument("--timeout", type=float, default=3_600.0, help="give up after (s)")
    parser.add_argument(
        "--overload",
        action="store_true",
        help="instead: flood the standard lanes, offering 3x what a slow handler has served "
        "so far; the table reports the factor measured over the whole flood, which comes out "
        "lower because the handler keeps serving between offers",
    )


def producer_groups(args: argparse.Namespace) -> list[ProducerGroup]:
    """One group per producer kind requested on the command line."""
    from lean_p2p.tools.stress import ThreadProducers

    groups: list[ProducerGroup] = []
    if args.native:
        from lean_p2p.tools.native_stress import NativeProducers

        groups.append(NativeProducers(args.native, path=args.native_path))
    if args.producers:
        groups.append(ThreadProducers(args.producers))
    return groups


def run(args: argparse.Namespace) -> int:
    from lean_p2p.tools.running import Progress
    from lean_p2p.tools.stress import StressConfig, run_stress_command

    if args.overload:
        return _run_overload(args)

    groups = producer_groups(args)
    if args.native:
        # The ring warns once a second about the pushes it refused while full. Here
        # every refusal is expected and retried, and rejected_retries counts them all.
        logging.getLogger("lean_p2p.native.ring").setLevel(logging.ERROR)
    if not groups or args.events < 1:
        print("lean-p2p stress: need at least one producer and one event")
        return 2
    config = StressConfig(
        events=args.events,
        producers=sum(group.count for group in groups),
        loop=args.loop,
        seed=args.seed,
        burst_max=args.burst_max,
        sleep_probability=args.sleep_probability,
        sleep_max_s=args.sleep_max_us / 1e6,
        close_after=args.close_after,
        timeout_s=args.timeout,
    )
    result = run_stress_command(config, groups, Progress("stress"))
    _print(result)
    if args.json:
        from lean_p2p.tools.report import write_json

        write_json(args.json, [result.as_dict()])
    return 0 if result.ok else 1


def _run_overload(args: argparse.Namespace) -> int:
    from lean_p2p.tools.report import print_table, write_json
    from lean_p2p.tools.running import run_loop
    from lean_p2p.tools.stress import run_overload_async

    result = run_loop(
        lambda _stop: run_overload_async(), use_uvloop=args.loop == "uvloop", cancel_on_stop=True
    )
    summary = result.as_dict()
    print_table([summary], [key for key in summary if key != "mailbox"], title="overload")
    lanes = [{**lane, "dropped": sum(lane["dropped"].values())} for lane in result.mailbox["lanes"]]
    columns = ["name", "policy", "capacity", "high_water", "accepted", "handled", "dropped"]
    print_table(lanes, columns, title="lanes")
    if args.json:
        write_json(args.json, [summary])
    return 0 if result.ok else 1


def _print(result: StressResult) -> None:
    from lean_p2p.tools.report import print_table

    summary = result.as_dict()
    columns = [
        "loop",
        "producers",
        "events",
        "handled",
        "lost",
        "duplicated",
        "reordered",
        "wrong_thread",
        "state_mismatches",
        "events_per_s",
        "elapsed_s",
        "rejected_retries",
    ]
    print_table([summary], columns, title="stress")
    mailbox = result.mailbox
    lanes = [
        {
            **lane,
            "refused_retried": sum(lane["dropped"].values()),
            "handling_s": lane["handling_time_s"],
        }
        for lane in mailbox["lanes"]
    ]
    lane_columns = ["name", "policy", "capacity", "high_water", "accepted", "handled"]
    print_table(lanes, [*lane_columns, "refused_retried", "handling_s"], title="lanes")
    print(
        f"\ndrains {mailbox['drains']:,}  wakeups {mailbox['wakeups']:,}  "
        f"wakeups/event {mailbox['wakeups'] / max(1, result.handled):.4f}  "
        f"budget re-arms {mailbox['budget_exhausted']:,}  verdict {'OK' if result.ok else 'FAILED'}"
    )
    # How the counts reconcile: a refusal is not a loss, because the producer kept the
    # event and offered it again; "lost" is an accepted event that was never handled.
    print(
        "refused_retried: puts a full lane refused; rejected_retries: every refused put or "
        "native push, each retried by its producer until accepted. lost counts accepted "
        "events never handled."
    )
    if result.interrupted:
        print(
            f"interrupted: the mailbox was closed under the producers; the checks cover the "
            f"{result.events:,} events accepted before that."
        )

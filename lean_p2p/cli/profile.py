"""``lean-p2p profile``: a node under load, where its time goes. Main thread.

``--network``: a node over real sockets, loaded by a lean peer in another process
(:mod:`lean_p2p.tools.profile_network`), with a rate ramp to saturation (or one
``--rate``); writes ``report.html`` (verdict, plots, flame graph), ``profile.json``,
``flame.svg`` and ``flame.speedscope.json`` to ``--out``, and prints the step table.

Without it, synthetic events go straight into the node's lanes (no sockets): the load
runs twice at the chosen rate, profiler off, then on, and the command writes to
``--out``: ``profile.md`` (throughput, per-lane latency table, drops, the profiler's
overhead, the loop thread's hot paths), ``latency.png`` (hand-off and handling
histograms per lane), ``profile.html`` (pyinstrument's interactive view). ``--json``
writes the table rows.
"""

from __future__ import annotations

import argparse
import importlib.util
import shlex
import sys
import tempfile
from pathlib import Path
from typing import Any

from lean_p2p.tools.running import output_file

DESCRIPTION = "profile a node under synthetic load: throughput, per-lane latency, hot paths"

_SUMMARY_COLUMNS = (
    "profiled",
    "rate",
    "offered",
    "handled",
    "events_per_s",
    "loop_cpu_pct",
    "cpu_per_event_us",
    "dropped",
    "lost_events",
    "finalized_slot",
)
_LANE_COLUMNS = (
    "profiled",
    "lane",
    "handled",
    "handoff_p50_us",
    "handoff_p99_us",
    "handling_p50_us",
    "handling_p99_us",
    "dropped",
)


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text}: must be positive")
    return value


def _above_one(text: str) -> float:
    value = float(text)
    if not value > 1:
        raise argparse.ArgumentTypeError(f"{text}: must be above 1 (the ramp must rise)")
    return value


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--network",
        action="store_true",
        help="over real sockets: a load generator in another process, ramped to saturation",
    )
    parser.add_argument(
        "--rate",
        type=_positive,
        default=None,
        help="events/s (default 2000; with --network: one step at this rate, no ramp)",
    )
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per run")
    parser.add_argument(
        "--validators", type=int, default=None, help="validators (default 256; --network 4096)"
    )
    network = parser.add_argument_group("--network")
    network.add_argument("--start-rate", type=_positive, help="first step (default 600/s)")
    network.add_argument("--factor", type=_above_one, help="rate ratio between steps (default 1.4)")
    network.add_argument("--step-seconds", type=_positive, help="seconds per step (default 6)")
    network.add_argument(
        "--max-delay-ms",
        type=_positive,
        help="saturated when the queueing delay p99 passes this (default 100)",
    )
    network.add_argument(
        "--max-drop-pct", type=float, help="saturated when drops pass this %% (default 1)"
    )
    network.add_argument(
        "--slow-handler-us",
        type=_positive,
        help="burn this much CPU after every attestation: a known bottleneck to find",
    )
    network.add_argument(
        "--sampler",
        choices=("py-spy", "frames"),
        help="stack sampler for the flame graph (default: py-spy when installed, else "
        "frames: a thread of the profiled process reading every thread's stack)",
    )
    network.add_argument("--no-flame", action="store_true", help="no flame graph")
    network.add_argument(
        "--no-pin",
        action="store_true",
        help="let the node and the generator share every core (by default each has half)",
    )
    network.add_argument(
        "--no-overhead", action="store_true", help="skip the profiler-overhead steps"
    )
    parser.add_argument("--peers", type=int, default=4, help="synthetic peers (default 4)")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="report directory (default: a new lean-p2p-profile-* directory in the temp dir)",
    )
    parser.add_argument("--json", type=output_file, help="write the table rows as JSON here")
    parser.add_argument(
        "--interval", type=float, default=0.005, help="profiler sampling interval (s)"
    )
    parser.add_argument(
        "--profiler",
        choices=("py-spy", "pyinstrument"),
        help="sampler (default: py-spy when installed, else pyinstrument)",
    )
    parser.add_argument(
        "--mix",
        type=_parse_mix,
        help="shares of the load, e.g. attestation=85,aggregate=5,block=5,request=5 (the default)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="short runs (6 s at 1000/s; with --network a ramp under 30 s)",
    )


_KINDS = ("attestation", "aggregate", "block", "request")


def _parse_mix(text: str) -> dict[str, int]:
    mix: dict[str, int] = {}
    for part in text.split(","):
        kind, _, share = part.partition("=")
        if kind.strip() not in _KINDS or not share.strip().isdigit():
            raise argparse.ArgumentTypeError(
                f"{part!r}: expected KIND=SHARE with KIND one of {', '.join(_KINDS)}"
            )
        mix[kind.strip()] = int(share)
    if not any(mix.values()):
        raise argparse.ArgumentTypeError("the shares must not all be zero")
    return mix


def _missing_profile_dependencies(profiler: str | None, has_py_spy: bool) -> list[str]:
    """The profiling extra's packages this run needs but cannot import."""
    import importlib.util

    missing = [name for name in ("matplotlib",) if importlib.util.find_spec(name) is None]
    wants_pyinstrument = profiler == "pyinstrument" or (profiler is None and not has_py_spy)
    if wants_pyinstrument and importlib.util.find_spec("pyinstrument") is None:
        missing.append("pyinstrument" if profiler else "py-spy or pyinstrument")
    if profiler == "py-spy" and not has_py_spy:
        missing.append("py-spy")
    return missing


def run(args: argparse.Namespace) -> int:
    if args.network:
        return _run_network(args)
    return _run_synthetic(args)


def _network_options(args: argparse.Namespace) -> Any:
    from lean_p2p.tools.profile_network import NetworkProfileOptions, default_sampler

    changes: dict[str, Any] = {
        name: getattr(args, name)
        for name in ("start_rate", "factor", "step_seconds", "max_delay_ms", "max_drop_pct")
        if getattr(args, name) is not None
    }
    if args.rate is not None:
        changes["rate"] = args.rate
    if args.validators is not None:
        changes["validators"] = args.validators
    if args.mix:
        changes["mix"] = args.mix
    if args.slow_handler_us:
        changes["slow_handler_us"] = args.slow_handler_us
    changes["flame"] = not args.no_flame
    changes["pin_cores"] = not args.no_pin
    changes["sampler"] = args.sampler or default_sampler()
    changes["overhead"] = not args.no_overhead
    if args.quick:
        return NetworkProfileOptions.quick(**changes)
    return NetworkProfileOptions(**changes)


def _run_network(args: argparse.Namespace) -> int:
    from lean_p2p.tools.profile import py_spy_path
    from lean_p2p.tools.profile_network import profile_network
    from lean_p2p.tools.profile_report import STEP_COLUMNS, write_report
    from lean_p2p.tools.report import print_table, write_json
    from lean_p2p.tools.running import EXIT_INTERRUPTED, configure_logging, run_loop

    configure_logging("ERROR")
    if importlib.util.find_spec("matplotlib") is None:
        print(
            "lean-p2p profile: matplotlib not installed; "
            "install the profiling extra: pip install 'lean-p2p[profile]'"
        )
        return 2
    if args.sampler == "py-spy" and py_spy_path() is None:
        print("lean-p2p profile: py-spy is not installed (pip install py-spy); --sampler frames")
        return 2
    out = _output_directory(args.out)
    if out is None:
        return 2
    options = _network_options(args)
    result = run_loop(lambda stop: profile_network(options, out, stop))
    command = "lean-p2p " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    page = write_report(result, out, command)
    print_table([step.row() for step in result.steps], STEP_COLUMNS, title="steps")
    overhead = result.overhead
    if overhead.get("cpu_cost_pct") is not None:
        print(
            f"\nprofiler overhead at {overhead['rate']:,.0f}/s: "
            f"{overhead['cpu_cost_pct']:+.1f}% CPU per handled event with py-spy "
            f"({overhead['sampler_cpu_cost_pct']:+.1f}% the sampler alone), "
            f"{overhead['throughput_cost_pct']:+.1f}% throughput"
        )
    print(f"\n{result.verdict}\n")
    if args.json is not None:
        write_json(args.json, [*(step.row() for step in result.steps), result.summary_row()])
    print(f"report: {page}")
    if result.interrupted:
        return EXIT_INTERRUPTED
    return 0 if result.lost_events == 0 else 1


def _output_directory(out: Path | None) -> Path | None:
    if out is None:
        return Path(tempfile.mkdtemp(prefix="lean-p2p-profile-"))
    if out.exists() and not out.is_dir():
        print(f"lean-p2p profile: --out {out} exists and is not a directory")
        return None
    out.mkdir(parents=True, exist_ok=True)
    return out


def _run_synthetic(args: argparse.Namespace) -> int:
    from lean_p2p.tools.profile import (
        DEFAULT_MIX,
        ProfileOptions,
        plot_latencies,
        py_spy_path,
        run_profile,
    )
    from lean_p2p.tools.report import format_table, print_table, write_json
    from lean_p2p.tools.running import Progress, configure_logging, run_loop

    configure_logging("ERROR")
    missing = _missing_profile_dependencies(args.profiler, py_spy_path() is not None)
    if missing:
        print(
            f"lean-p2p profile: {', '.join(missing)} not installed; "
            "install the profiling extra: pip install 'lean-p2p[profile]'"
        )
        return 2
    out = _output_directory(args.out)
    if out is None:
        return 2
    args.out = out
    rate, duration = (1000.0, 6.0) if args.quick else (args.rate or 2000.0, args.duration)
    options = ProfileOptions(
        rate=rate,
        duration=duration,
        validators=args.validators or 256,
        peers=args.peers,
        sample_interval=args.interval,
        mix=args.mix or dict(DEFAULT_MIX),
        profiler=args.profiler or ("py-spy" if py_spy_path() else "pyinstrument"),
    )
    progress = Progress("profile")
    progress.update(
        f"run 1 of 2: {duration:.0f} s at {rate:,.0f} events/s, no profiler", force=True
    )
    plain = run_loop(lambda _stop: run_profile(options, profiled=False), cancel_on_stop=True)
    progress.update(f"run 2 of 2: the same under {options.profiler}", force=True)
    profiled = run_loop(lambda _stop: run_profile(options, profiled=True), cancel_on_stop=True)
    progress.done()
    runs = [plain, profiled]
    summary = [run_.summary_row() for run_ in runs]
    lanes = [row for run_ in runs for row in run_.lane_rows()]
    overhead = 100 * (profiled.cpu_per_event_us / plain.cpu_per_event_us - 1)
    print_table(summary, _SUMMARY_COLUMNS, title="throughput (loop thread)")
    print_table(lanes, _LANE_COLUMNS, title="latency per lane (microseconds)")
    print(f"\nprofiler overhead: {overhead:+.1f}% loop CPU per handled event")
    plot_latencies(runs, args.out / "latency.png")
    if profiled.profile_html:
        (args.out / "profile.html").write_text(profiled.profile_html)
    command = "lean-p2p " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    (args.out / "profile.md").write_text(
        "\n".join(
            [
                "# Node profile under synthetic load",
                "",
                f"Command: `{command}`",
                "",
                "## Throughput",
                "```",
                format_table(summary, _SUMMARY_COLUMNS),
                "```",
                f"Profiler overhead: {overhead:+.1f}% loop-thread CPU per handled event.",
                "",
                "## Latency per lane (microseconds)",
                "```",
                format_table(lanes, _LANE_COLUMNS),
                "```",
                "![latency](latency.png)",
                "",
                f"## Where the loop thread spends its time ({options.profiler})",
                "```",
                profiled.profile_text,
                "```",
                "",
            ]
        )
    )
    if args.json is not None:
        write_json(args.json, [*summary, *lanes, {"profiler_overhead_pct": overhead}])
    print(f"report: {args.out / 'profile.md'}")
    return 0 if plain.lost_events == 0 and profiled.lost_events == 0 else 1

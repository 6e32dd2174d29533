"""The report of ``lean-p2p profile --network``: one self-contained HTML file, and JSON.

Main thread, after the run. The plots are matplotlib figures written as inline SVG (no
file beside the page, nothing fetched), the flame graph is
:func:`lean_p2p.tools.flamegraph.render_svg`. Each plot sits in a ``<figure
data-plot=NAME>``; a short script marks each figure with the size it rendered at
(``data-rendered``), which is how the tests check, in a real browser, that every plot
shows.
"""

from __future__ import annotations

import html
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lean_p2p.tools import flamegraph
from lean_p2p.tools.profile_network import NETWORK_LANES, NetworkProfile, Step

__all__ = ["PLOTS", "STEP_COLUMNS", "write_report"]

#: the figures every report has, in order
PLOTS = ("throughput", "delay", "cpu", "timeline", "flame")
STEP_COLUMNS = (
    "step",
    "phase",
    "offered_per_s",
    "sent_per_s",
    "handled_per_s",
    "delay_p50_ms",
    "delay_p99_ms",
    "delay_max_ms",
    "dropped",
    "loop_lag_p99_ms",
    "gil_wait_p99_ms",
    "loop_cpu_pct",
    "driver_cpu_pct",
    "rss_mb",
    "saturated",
)

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1250px; color: #222; }
.verdict { font-size: 1.15em; background: #f3f6fa; border-left: 5px solid #3a6ea5;
           padding: 0.8em 1.2em; }
table { border-collapse: collapse; font-size: 0.78em; }
.steps { overflow-x: auto; }
td, th { border: 1px solid #ccc; padding: 2px 6px; text-align: right; }
tr.saturated td { background: #fde8e8; }
figure { margin: 1.5em 0; }
figcaption { color: #555; font-size: 0.9em; }
code { background: #f4f4f4; padding: 0 3px; }
"""
_CHECK = """
window.addEventListener('load', function () {
  document.querySelectorAll('figure[data-plot]').forEach(function (figure) {
    var svg = figure.querySelector('svg');
    var box = svg ? svg.getBoundingClientRect() : {width: 0, height: 0};
    figure.setAttribute('data-rendered', Math.round(box.width) + 'x' + Math.round(box.height));
  });
  document.body.setAttribute('data-checked', 'yes');
});
"""


def _figure_svg(figure: Any) -> str:
    import matplotlib.pyplot as plt

    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(figure)
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def _ramp_steps(result: NetworkProfile) -> list[Step]:
    return sorted(
        (s for s in result.steps if s.phase in ("ramp", "refine", "fixed")),
        key=lambda s: s.offered_rate,
    )


def _plot_throughput(result: NetworkProfile) -> str:
    import matplotlib.pyplot as plt

    steps = _ramp_steps(result)
    offered = [s.offered_rate for s in steps]
    figure, axis = plt.subplots(figsize=(7, 4.2))
    axis.plot(offered, offered, ":", color="grey", label="offered")
    axis.plot(offered, [s.sent_total / s.seconds for s in steps], "s-", label="sent")
    axis.plot(offered, [s.handled_rate for s in steps], "o-", label="handled")
    for step in steps:
        if step.saturated:
            axis.plot(step.offered_rate, step.handled_rate, "rx", markersize=12)
    if result.saturation_rate:
        axis.axvline(result.saturation_rate, color="green", alpha=0.4, label="saturation")
    axis.set_xlabel("offered load (events/s)")
    axis.set_ylabel("events/s")
    axis.set_title("Throughput against offered load (x: saturated)")
    axis.legend()
    axis.grid(alpha=0.3)
    return _figure_svg(figure)


def _plot_delay(result: NetworkProfile) -> str:
    import matplotlib.pyplot as plt

    steps = _ramp_steps(result)
    figure, axis = plt.subplots(figsize=(7, 4.2))
    for lane in NETWORK_LANES:
        for which, style in (("p50", "--"), ("p99", "-")):
            points = [
                (s.offered_rate, s.window["lanes"][lane][f"delay_{which}_ms"])
                for s in steps
                if lane in s.window["lanes"]
                and s.window["lanes"][lane][f"delay_{which}_ms"] is not None
            ]
            if points:
                xs, ys = zip(*points, strict=True)
                axis.plot(
                    xs, [max(y, 1e-3) for y in ys], style, marker=".", label=f"{lane} {which}"
                )
    axis.axhline(result.options.max_delay_ms, color="red", alpha=0.4, label="threshold")
    axis.set_yscale("log")
    axis.set_xlabel("offered load (events/s)")
    axis.set_ylabel("queueing delay (ms)")
    axis.set_title("Queueing delay (emit -> handler) per lane")
    axis.legend(fontsize="x-small", ncol=2)
    axis.grid(alpha=0.3)
    return _figure_svg(figure)


def _plot_cpu(result: NetworkProfile) -> str:
    import matplotlib.pyplot as plt

    steps = _ramp_steps(result)
    threads = sorted(
        {name for s in steps for name in s.window["cpu_percent"]},
        key=lambda n: -max(s.window["cpu_percent"].get(n, 0.0) for s in steps),
    )[:6]
    figure, axis = plt.subplots(figsize=(7, 4.2))
    offered = [s.offered_rate for s in steps]
    for name in threads:
        axis.plot(
            offered, [s.window["cpu_percent"].get(name, 0.0) for s in steps], "o-", label=name
        )
    axis.plot(
        offered, [sum(s.window["cpu_percent"].values()) for s in steps], "k:", label="process"
    )
    axis.axhline(100, color="grey", alpha=0.4)
    axis.set_xlabel("offered load (events/s)")
    axis.set_ylabel("CPU (% of one core)")
    axis.set_title("CPU per thread")
    axis.legend(fontsize="small")
    axis.grid(alpha=0.3)
    return _figure_svg(figure)


def _plot_timeline(result: NetworkProfile) -> str:
    import matplotlib.pyplot as plt

    samples = result.timeline
    figure, (rates, delays, memory) = plt.subplots(3, 1, figsize=(11, 7), sharex=True)
    t = [s["t"] for s in samples]

    def lane_sum(sample: dict[str, Any], key: str) -> float:
        return float(sum(sample["lanes"].get(n, {}).get(key, 0) for n in NETWORK_LANES))

    rates.plot(t, [lane_sum(s, "arrived") / s["seconds"] for s in samples], label="arrived/s")
    rates.plot(t, [lane_sum(s, "handled") / s["seconds"] for s in samples], label="handled/s")
    rates.plot(t, [lane_sum(s, "dropped") / s["seconds"] for s in samples], label="dropped/s")
    rates.set_ylabel("events/s")
    rates.legend(fontsize="small", loc="upper left")
    delays.plot(
        t,
        [max(s["lanes"].get(n, {}).get("delay_p99_ms", 0) for n in NETWORK_LANES) for s in samples],
        label="delay p99",
    )
    delays.plot(t, [s["loop_lag_max_ms"] for s in samples], label="loop lag max")
    delays.plot(t, [s["gil_wait_p99_ms"] for s in samples], label="GIL+core wait p99")
    delays.plot(t, [s["gc_pause_max_ms"] for s in samples], label="GC pause max")
    delays.set_yscale("symlog", linthresh=1)
    delays.set_ylabel("ms")
    delays.legend(fontsize="small", loc="upper left")
    memory.plot(t, [s["rss_mb"] for s in samples], color="purple", label="RSS")
    memory.set_ylabel("RSS (MiB)")
    memory.set_xlabel("seconds")
    # Shade every other step and name it at its start.
    edges: list[tuple[float, str]] = []
    for sample in samples:
        if not edges or edges[-1][1] != sample["label"]:
            edges.append((sample["t"] - sample["seconds"], sample["label"]))
    for index, (start, label) in enumerate(edges):
        end = edges[index + 1][0] if index + 1 < len(edges) else (t[-1] if t else start)
        for axis in (rates, delays, memory):
            if index % 2:
                axis.axvspan(start, end, color="grey", alpha=0.08)
        rates.annotate(
            label, (start, 1), xycoords=("data", "axes fraction"), fontsize=6, rotation=90, va="top"
        )
    figure.suptitle("Timeline (steps shaded alternately)")
    figure.tight_layout()
    return _figure_svg(figure)


def _table(
    rows: Sequence[dict[str, Any]], columns: Sequence[str], saturated: Sequence[bool]
) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = []
    for row, flag in zip(rows, saturated, strict=True):
        cells = "".join(
            f"<td>{html.escape('' if row.get(c) is None else str(row.get(c)))}</td>"
            for c in columns
        )
        body.append(f'<tr class="{"saturated" if flag else ""}">{cells}</tr>')
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _totals_html(totals: dict[str, Any]) -> str:
    """What became of everything the generator sent, counted once the queues emptied."""
    if not totals:
        return ""
    sender, receiver = totals.get("sender", {}), totals.get("receiver", {})
    unanswered = (
        sender.get("requests_sent", 0)
        - sender.get("requests_completed", 0)
        - sender.get("requests_failed", 0)
    )
    settled = "" if totals.get("settled") else " (the run was interrupted before it settled)"
    rows = [
        f"Gossip: {totals['gossip_published']:,} published, {totals['gossip_arrived']:,} taken "
        f"in by the node, <b>{totals['gossip_missing']:,} missing</b>{settled}.",
        f"Requests: {sender.get('requests_sent', 0):,} sent, "
        f"{sender.get('requests_completed', 0):,} answered, "
        f"{sender.get('requests_failed', 0):,} failed, {unanswered:,} without an answer when "
        f"the run ended; the node's driver took in {receiver.get('inbound_requests', 0):,}.",
        "What the chain made of it: "
        + ", ".join(f"{key} {value:,}" for key, value in totals.get("chain", {}).items())
        + ".",
    ]
    items = "".join(f"<li>{row}</li>" for row in rows)
    return f"<h2>After the run</h2><ul>{items}</ul>"


def write_report(result: NetworkProfile, out: Path, command: str) -> Path:
    """Write ``report.html``, ``profile.json``, ``flame.svg`` and
    ``flame.speedscope.json`` (when py-spy recorded) into ``out``; return the page."""
    import matplotlib

    matplotlib.use("Agg")
    out.mkdir(parents=True, exist_ok=True)
    (out / "profile.json").write_text(json.dumps(result.as_dict(), indent=1, default=str))
    if result.flame_stacks:
        flame_svg = flamegraph.render_svg(
            result.flame_stacks,
            f"every thread at {result.flame.get('rate', 0):,.0f} events/s "
            f"({result.flame.get('samples', 0)} samples)",
        )
        (out / "flame.svg").write_text(flame_svg)
        (out / "flame.speedscope.json").write_text(
            json.dumps(flamegraph.to_speedscope(result.flame_stacks, "lean-p2p node"))
        )
        how = (
            "py-spy from its own process, every thread, without stopping this one"
            if result.flame.get("sampler") == "py-spy"
            else "the in-process frame sampler (py-spy is not installed), every thread; it "
            "cannot tell waiting from running"
        )
        flame_note = (
            f"{how}; hover a frame for its samples. Also as <code>flame.svg</code> and "
            "<code>flame.speedscope.json</code> (open in https://www.speedscope.app)."
        )
    else:
        reason = result.flame.get("error") or "no flame step ran"
        flame_svg = (
            '<svg xmlns="http://www.w3.org/2000/svg" width="600" height="40">'
            f'<text x="10" y="25">no flame graph: {html.escape(str(reason))}</text></svg>'
        )
        flame_note = html.escape(str(reason))
    steps = result.steps
    rows = [step.row() for step in steps]
    figures = {
        "throughput": (_plot_throughput(result), "Handled and sent against offered load."),
        "delay": (
            _plot_delay(result),
            "Queueing delay from the driver's emit to the handler's start, per network lane.",
        ),
        "cpu": (_plot_cpu(result), "CPU per thread of the profiled process (/proc)."),
        "timeline": (_plot_timeline(result), "The whole run, every half second."),
        "flame": (flame_svg, flame_note),
    }
    bottleneck = result.bottleneck
    functions = "".join(
        f"<li><code>{html.escape(f['function'])}</code>: {f['own_pct']:.1f}% own, "
        f"{f['total_pct']:.1f}% inclusive</li>"
        for f in bottleneck.get("top_functions", [])
    )
    overhead = result.overhead
    overhead_text = (
        f"At {overhead['rate']:,.0f} events/s, {overhead['pairs']} pair(s) of steps: "
        f"{overhead['cpu_us_per_event_off']:.0f} µs of CPU per handled event with the "
        f"profiler off, {overhead['cpu_us_per_event_on']:.0f} µs on, py-spy's process "
        f"included (<b>{overhead['cpu_cost_pct']:+.1f}%</b>). Of that, the sampler, which "
        f"runs through the whole ramp: <b>{overhead['sampler_cpu_cost_pct']:+.1f}%</b>; "
        f"py-spy, which records only the flame step and these: "
        f"{overhead['py_spy_cpu_pct']:.0f}% of a core in its own process. Handled: "
        f"{overhead['handled_off_per_s']:,.0f}/s off, {overhead['handled_on_per_s']:,.0f}/s "
        f"on ({overhead['throughput_cost_pct']:+.1f}%)."
        if overhead and overhead.get("cpu_cost_pct") is not None
        else "Not measured in this run."
    )
    options = result.options
    sections = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        "<title>lean-p2p node profile</title>",
        f"<style>{_STYLE}</style></head><body>",
        "<h1>lean-p2p node profile over real sockets</h1>",
        f"<p class='verdict' id='verdict'>{html.escape(result.verdict)}</p>",
        f"<p>Command: <code>{html.escape(command)}</code></p>",
        "<h2>Bottleneck</h2>",
        f"<p>Thread <b>{html.escape(str(bottleneck.get('thread', '?')))}</b> at "
        f"{bottleneck.get('cpu_pct', 0):.0f}% of a core; the process's threads together "
        f"{bottleneck.get('process_python_cpu_pct', 0):.0f}%.</p>",
        f"<ol>{functions}</ol>" if functions else "<p>No flame graph samples.</p>",
        "<h2>Steps</h2>",
        f"<div class='steps'>{_table(rows, STEP_COLUMNS, [s.saturated for s in steps])}</div>",
        "<p>Saturated (red) means: queueing delay p99 above "
        f"{options.max_delay_ms:g} ms, drops above {options.max_drop_pct:g}% of arrivals, "
        f"or fewer than {options.min_handled_pct:g}% of the sent events handled within the "
        "step. <code>gen</code>: the generator sent less than 90% of the rate asked.</p>",
        f"<h2>Profiler overhead</h2><p>{overhead_text}</p>",
        _totals_html(result.totals),
    ]
    for name in PLOTS:
        svg, caption = figures[name]
        sections.append(
            f"<h2>{name.capitalize()}</h2><figure data-plot='{name}'>{svg}"
            f"<figcaption>{caption}</figcaption></figure>"
        )
    sections += [
        "<h2>How to read it</h2><ul>",
        "<li>Loop lag: how late a 10 ms timer on the loop ran.</li>",
        "<li>GIL+core wait: how late a Python thread of this process woke from a 10 ms "
        "sleep; CPython cannot tell how long the loop thread itself waited for the GIL, "
        "but this is what any of its threads pays to run again.</li>",
        "<li>CPU per thread from <code>/proc/self/task</code>; RSS from "
        "<code>/proc/self/statm</code>.</li>",
        "</ul>",
        f"<script>{_CHECK}</script></body></html>",
    ]
    page = out / "report.html"
    page.write_text("\n".join(sections))
    return page

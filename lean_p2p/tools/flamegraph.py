"""Flame graphs from py-spy's collapsed stacks: an SVG, a speedscope file, top functions.

py-spy ``record --format raw --threads`` writes one line per distinct stack:
``thread (TID): NAME;frame (file:line);...;frame (file:line) COUNT``. One recording
gives all three outputs here, so the profiler records once and shows the same samples
everywhere. Pure functions on strings (any thread).
"""

from __future__ import annotations

import hashlib
import html
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "WAITING",
    "Stack",
    "function_of",
    "is_waiting",
    "parse_collapsed",
    "render_svg",
    "thread_samples",
    "to_speedscope",
    "top_functions",
]

_THREAD = re.compile(r"^thread \((0x[0-9a-fA-F]+|\d+)\)(?::\s*(.*))?$")
_FRAME = re.compile(r"^(?P<name>.*?) \((?P<file>.*?)(?::(?P<line>\d+))?\)$")


@dataclass(frozen=True, slots=True)
class Stack:
    thread_id: int
    thread_name: str
    frames: tuple[str, ...]  # root first, ``name (file:line)``
    count: int

    @property
    def thread(self) -> str:
        return f"{self.thread_name} ({self.thread_id})"


def parse_collapsed(raw: str) -> list[Stack]:
    """py-spy's raw lines; lines that are not stacks are skipped."""
    stacks = []
    for line in raw.splitlines():
        body, _, count_text = line.rpartition(" ")
        if not body or not count_text.isdigit():
            continue
        head, *frames = body.split(";")
        match = _THREAD.match(head)
        if match is None:
            continue
        thread_id = int(match.group(1), 0)
        name = (match.group(2) or "").strip() or f"thread {thread_id}"
        stacks.append(Stack(thread_id, name, tuple(frames), int(count_text)))
    return stacks


def function_of(frame: str) -> str:
    """``name (file:line)`` -> ``name (file)``: one entry per function, not per line."""
    match = _FRAME.match(frame)
    if match is None:
        return frame
    return f"{match['name']} ({match['file']})"


def thread_samples(stacks: Iterable[Stack]) -> Counter[int]:
    """Samples per thread id (py-spy samples a thread only while it runs Python, or
    with ``--idle`` also while it waits)."""
    counts: Counter[int] = Counter()
    for stack in stacks:
        counts[stack.thread_id] += stack.count
    return counts


#: functions that wait rather than work, by method name and file: py-spy may sample a
#: thread inside its poll (it cannot always tell a blocked system call from a running
#: one), and a person reading the graph skips these
WAITING = frozenset(
    {
        ("get_events", "trio/_core/_io_epoll.py"),
        ("select", "selectors.py"),
        ("poll", "selectors.py"),
        ("wait", "threading.py"),
        ("_wait_for_tstate_lock", "threading.py"),
        # asyncio's runner: its own samples are the event loop's native code (uvloop's
        # run, mostly its wait for I/O), which py-spy cannot see into
        ("run", "asyncio/runners.py"),
    }
)


def is_waiting(function: str) -> bool:
    """Whether ``function`` (``[Class.]name (file)``) is one of :data:`WAITING`."""
    match = _FRAME.match(function)
    if match is None:
        return False
    name = match["name"].rsplit(".", 1)[-1]
    return any(name == waiting and match["file"].endswith(file) for waiting, file in WAITING)


def top_functions(
    stacks: Iterable[Stack], thread_id: int, limit: int = 5, *, skip_waiting: bool = False
) -> list[dict[str, Any]]:
    """The thread's functions by own samples (the flame graph's widest tops), with
    their share of the thread's samples, own and inclusive, in percent. With
    ``skip_waiting``, functions that wait (:func:`is_waiting`) are not listed (their
    samples still count in the total)."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for stack in stacks:
        if stack.thread_id != thread_id:
            continue
        total += stack.count
        functions = [function_of(frame) for frame in stack.frames]
        if functions:
            own[functions[-1]] += stack.count
        for function in set(functions):
            inclusive[function] += stack.count
    if not total:
        return []
    ranked = [
        (function, count)
        for function, count in own.most_common()
        if not (skip_waiting and is_waiting(function))
    ]
    return [
        {
            "function": function,
            "own_pct": 100 * count / total,
            "total_pct": 100 * inclusive[function] / total,
        }
        for function, count in ranked[:limit]
    ]


@dataclass
class _Node:
    name: str
    count: int = 0
    children: dict[str, _Node] = field(default_factory=dict)


def _tree(stacks: Iterable[Stack]) -> _Node:
    root = _Node("all")
    for stack in stacks:
        root.count += stack.count
        node = root
        for frame in (stack.thread, *stack.frames):
            child = node.children.get(frame)
            if child is None:
                child = node.children[frame] = _Node(frame)
            child.count += stack.count
            node = child
    return root


def _colour(name: str) -> str:
    # Warm colours, stable per function: the same function has the same colour
    # in every graph of a report.
    digest = hashlib.blake2b(function_of(name).encode(), digest_size=3).digest()
    return f"rgb({205 + digest[0] % 50},{80 + digest[1] % 130},{digest[2] % 55})"


def _depth(node: _Node, minimum: float, scale: float) -> int:
    shown = [c for c in node.children.values() if c.count * scale >= minimum]
    return 1 + max((_depth(child, minimum, scale) for child in shown), default=0)


def render_svg(stacks: Sequence[Stack], title: str, *, width: int = 1200, row: int = 17) -> str:
    """A flame graph (root at the bottom), one tower per thread; a frame's tooltip
    gives its samples and share. Frames narrower than half a pixel are left out."""
    root = _tree(stacks)
    total = root.count or 1
    scale = (width - 20) / total
    height = _depth(root, 0.5, scale) * row + 30
    parts: list[str] = []

    def place(node: _Node, x: float, depth: int) -> None:
        y = height - 5 - (depth + 1) * row  # the root at the bottom
        parts.append(_frame_svg(node, x, y, node.count * scale, total))
        offset = x
        for child in sorted(node.children.values(), key=lambda c: c.name):
            if child.count * scale >= 0.5:
                place(child, offset, depth + 1)
            offset += child.count * scale

    place(root, 10.0, 0)
    body = "\n".join(parts)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="monospace" font-size="11">'
        f'<text x="{width // 2}" y="16" text-anchor="middle" font-size="14">'
        f"{html.escape(title)}</text>\n{body}\n</svg>"
    )


def _frame_svg(node: _Node, x: float, y: int, width: float, total: int) -> str:
    label = node.name
    share = 100 * node.count / total
    characters = int(width / 6.6)
    text = ""
    if characters >= 3:
        shown = label if len(label) <= characters else label[: characters - 2] + ".."
        text = f'<text x="{x + 3:.1f}" y="{y + 12}">{html.escape(shown)}</text>'
    return (
        f"<g><title>{html.escape(label)} ({node.count} samples, {share:.1f}%)</title>"
        f'<rect x="{x:.1f}" y="{y}" width="{max(width - 0.5, 0.5):.1f}" height="{16}" '
        f'fill="{_colour(label)}" rx="2"/>{text}</g>'
    )


def to_speedscope(stacks: Sequence[Stack], name: str) -> dict[str, Any]:
    """A speedscope file (https://www.speedscope.app), one sampled profile per thread."""
    frames: list[dict[str, Any]] = []
    index: dict[str, int] = {}

    def frame_index(frame: str) -> int:
        found = index.get(frame)
        if found is None:
            match = _FRAME.match(frame)
            entry: dict[str, Any] = {"name": frame}
            if match is not None:
                entry = {"name": match["name"], "file": match["file"]}
                if match["line"]:
                    entry["line"] = int(match["line"])
            found = index[frame] = len(frames)
            frames.append(entry)
        return found

    by_thread: dict[str, list[Stack]] = {}
    for stack in stacks:
        by_thread.setdefault(stack.thread, []).append(stack)
    profiles = []
    for thread, members in sorted(by_thread.items()):
        samples = [[frame_index(frame) for frame in stack.frames] for stack in members]
        weights = [stack.count for stack in members]
        profiles.append(
            {
                "type": "sampled",
                "name": thread,
                "unit": "none",
                "startValue": 0,
                "endValue": sum(weights),
                "samples": samples,
                "weights": weights,
            }
        )
    return {
        "$schema": "https://www.speedscope.app/file-format-schema.json",
        "name": name,
        "exporter": "lean-p2p",
        "activeProfileIndex": 0,
        "shared": {"frames": frames},
        "profiles": profiles,
    }

"""What a node does to the interpreter at start, and the garbage-collection pauses it sees.

Loop thread: :func:`apply_runtime_policy` runs once, when the node has started (its
state loaded, its driver running). :class:`GcPauses` is read on the loop thread; its
callback runs on whichever thread triggered a collection, with the GIL held, and
CPython never runs two collections at once, so its plain counters need no lock.

The policy, measured in ``docs/latency.md``:

- **Freeze the heap after start-up** (``gc.freeze()``, after one full collection). The
  objects alive at that point (modules, the py-libp2p host, the genesis or restored
  state) move to a generation the collector never scans again, so each later full
  collection, a pause of the loop thread whoever triggers it, walks only what came
  after. On by default; ``NodeConfig.gc_freeze=False`` (``lean-p2p node
  --no-gc-freeze``) leaves the collector as it was, for an embedder whose process
  holds more than the node. Freezing is for the whole process, done once per
  process, and not undone. Its one side effect: frozen objects are invisible to
  ``gc.get_referrers`` and ``gc.get_objects``, so tools that walk the heap (memory
  profilers, leak finders) see only what came after the freeze; call ``gc.unfreeze()``
  before using one, or opt out.
- **The network's thread yields the GIL to the loop.** When the driver's put of an
  event wakes the loop, the driver thread then waits, the GIL released, until that
  drain has ended, for at most ``NodeConfig.yield_to_loop_s`` (0.5 ms; see
  :meth:`lean_p2p.runtime.Mailbox.sender`). Otherwise the driver, which goes on running
  py-libp2p in Python, releases and retakes the GIL around each system call before the
  woken loop thread gets it, and the interpreter never forces the hand-over: the loop
  waited milliseconds. ``NodeConfig.yield_to_loop_s=0`` (``lean-p2p node
  --no-yield-to-loop``) turns it off.
- **The switch interval stays at CPython's 5 ms.** A shorter one (1 ms, 100 us) was
  measured and gave no consistent gain in the hand-off's tail (``lean-p2p bench latency
  --levers``, ``lean-p2p bench gossip --variants lean,lean-switch-1ms,lean-switch-100us``):
  a producer that retakes the GIL after each system call restarts the timer that would
  force the switch.
"""

from __future__ import annotations

import gc
import logging
import sys
import time
from dataclasses import dataclass
from typing import Any

__all__ = ["GcPauses", "apply_runtime_policy"]

logger = logging.getLogger(__name__)


#: Set by the first node that froze the heap: the heap is frozen once per process.
_frozen_in_this_process = False


def apply_runtime_policy(*, gc_freeze: bool, node: str, yield_to_loop_s: float = 0.0) -> None:
    """Apply the node's interpreter policy and log what was done (loop thread).

    The heap is frozen once per process: a second node in the same process (a test
    run, an embedder running several) finds it done and says so. The GIL hand-over is
    the node's mailbox senders' (``yield_to_loop_s``); it is only reported here."""
    _freeze_heap(gc_freeze, node)
    if yield_to_loop_s:
        logger.info(
            "runtime policy: the network's thread yields the GIL to the loop, for up to "
            "%g ms, after a hand-off that wakes it",
            yield_to_loop_s * 1e3,
            extra={"node": node, "yield_to_loop_s": yield_to_loop_s},
        )
    else:
        logger.info(
            "runtime policy: the network's thread does not yield the GIL to the loop "
            "(yield_to_loop_s 0)",
            extra={"node": node, "yield_to_loop_s": 0.0},
        )


def _freeze_heap(gc_freeze: bool, node: str) -> None:
    global _frozen_in_this_process
    if not gc_freeze:
        logger.info(
            "runtime policy: garbage collector left as it was (gc_freeze off)",
            extra={"node": node},
        )
        return
    if _frozen_in_this_process:
        logger.info(
            "runtime policy: heap already frozen by an earlier node in this process",
            extra={"node": node, "frozen_objects": gc.get_freeze_count()},
        )
        return
    _frozen_in_this_process = True
    # Collect first: freezing moves garbage too, and frozen garbage is never freed.
    before_ms = _full_collection_ms()
    gc.freeze()
    # What a full collection costs from now on: the number that shows the policy works.
    after_ms = _full_collection_ms()
    logger.info(
        "runtime policy: heap frozen after start-up (%d objects the collector will not "
        "scan again): a full collection, a pause of the loop thread, took %.1f ms before "
        "and %.1f ms after; switch interval unchanged at %.1f ms",
        gc.get_freeze_count(),
        before_ms,
        after_ms,
        _switch_interval_ms(),
        extra={
            "node": node,
            "frozen_objects": gc.get_freeze_count(),
            "full_collection_before_ms": before_ms,
            "full_collection_after_ms": after_ms,
        },
    )


def _full_collection_ms() -> float:
    started = time.perf_counter()
    gc.collect()
    return (time.perf_counter() - started) * 1e3


def _switch_interval_ms() -> float:
    return sys.getswitchinterval() * 1e3


@dataclass(slots=True)
class _Generation:
    collections: int = 0
    pause_total_s: float = 0.0
    pause_max_s: float = 0.0


class GcPauses:
    """Every garbage collection in the process from :meth:`install` to :meth:`remove`:
    count, total and longest pause, per generation (``gc.callbacks``)."""

    def __init__(self) -> None:
        self._generations = [_Generation() for _ in range(3)]
        self._started = 0.0
        self._installed = False

    def install(self) -> None:
        if not self._installed:
            gc.callbacks.append(self._on_collection)
            self._installed = True

    def remove(self) -> None:
        if self._installed:
            gc.callbacks.remove(self._on_collection)
            self._installed = False

    def _on_collection(self, phase: str, info: dict[str, Any]) -> None:
        now = time.perf_counter()
        if phase == "start":
            self._started = now
            return
        generation = self._generations[info["generation"]]
        pause = now - self._started
        generation.collections += 1
        generation.pause_total_s += pause
        generation.pause_max_s = max(generation.pause_max_s, pause)

    def as_dict(self) -> dict[str, Any]:
        """Per generation and in all, pauses in milliseconds; and the frozen objects."""
        generations = self._generations
        return {
            "collections": sum(g.collections for g in generations),
            "pause_total_ms": sum(g.pause_total_s for g in generations) * 1e3,
            "pause_max_ms": max(g.pause_max_s for g in generations) * 1e3,
            "by_generation": [
                {
                    "generation": index,
                    "collections": g.collections,
                    "pause_total_ms": g.pause_total_s * 1e3,
                    "pause_max_ms": g.pause_max_s * 1e3,
                }
                for index, g in enumerate(generations)
            ],
            "frozen_objects": gc.get_freeze_count(),
        }

"""Runs leanSpec fixture vectors through format plug-ins. Runs on the caller's thread.

Plug-in protocol
================

Each supported fixture format is one module ``lean_p2p/tools/spectest/formats/<name>.py``;
the runner discovers every module of the :mod:`lean_p2p.tools.spectest.formats` package that
defines both of:

``FORMAT: str``
    The fixture directory it handles (``"ssz"``, ``"state_transition"`` ...); vectors
    live under ``<fixtures root>/<FORMAT>/**/*.json``.

``run_vector(test_id: str, fixture: Mapping[str, Any]) -> None``
    Runs ONE fixture (one entry of a vector file's top-level object). Returns normally
    when the vector passes; raises :class:`VectorFailure` (with a message saying what
    differed) when it does not; raises :class:`VectorSkipped` when the plug-in cannot
    run this kind of vector (an unsupported ``kind`` or type). Any other exception
    escaping ``run_vector`` is counted as a failure, never as a pass or a skip.

A plug-in is a pure function of the fixture: no global state between vectors, so the
runner may call it in any order. Adding a format means adding a module; nothing here or
in the CLI changes. The target for every supported format is: none failed, none skipped.
"""

from __future__ import annotations

import enum
import importlib
import json
import pkgutil
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

__all__ = [
    "FormatCounts",
    "Outcome",
    "PluginError",
    "VectorFailure",
    "VectorResult",
    "VectorSkipped",
    "count_vectors",
    "discover_plugins",
    "present_formats",
    "run_file",
    "run_format",
    "run_plugin_vector",
    "vector_files",
]

PLUGIN_PACKAGE = "lean_p2p.tools.spectest.formats"

RunVector = Callable[[str, Mapping[str, Any]], None]


class VectorFailure(AssertionError):
    """A vector's expected outcome did not hold (raised by plug-ins)."""


class VectorSkipped(Exception):
    """A plug-in cannot run this vector; the runner counts it as skipped."""


class PluginError(Exception):
    """A formats module that does not follow the plug-in protocol, or an unknown format."""


class Outcome(enum.Enum):
    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True, slots=True)
class VectorResult:
    format: str
    path: Path
    test_id: str
    outcome: Outcome
    detail: str = ""


@dataclass(slots=True)
class FormatCounts:
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    failures: list[VectorResult] = field(default_factory=list)

    def add(self, result: VectorResult) -> None:
        if result.outcome is Outcome.PASSED:
            self.passed += 1
        elif result.outcome is Outcome.SKIPPED:
            self.skipped += 1
        else:
            self.failed += 1
            self.failures.append(result)

    def as_json(self) -> dict[str, int]:
        return {"passed": self.passed, "failed": self.failed, "skipped": self.skipped}


def discover_plugins() -> dict[str, RunVector]:
    """``FORMAT -> run_vector`` for every plug-in module in the formats package."""
    package = importlib.import_module(PLUGIN_PACKAGE)
    plugins: dict[str, RunVector] = {}
    for info in pkgutil.iter_modules(package.__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{PLUGIN_PACKAGE}.{info.name}")
        name, run_vector = _plugin_of(module)
        if name in plugins:
            raise PluginError(f"two plug-ins claim format {name!r}")
        plugins[name] = run_vector
    return plugins


def _plugin_of(module: ModuleType) -> tuple[str, RunVector]:
    name = getattr(module, "FORMAT", None)
    run_vector = getattr(module, "run_vector", None)
    if not isinstance(name, str) or not callable(run_vector):
        raise PluginError(f"{module.__name__} must define FORMAT: str and run_vector()")
    return name, run_vector


def vector_files(root: Path, fmt: str) -> list[Path]:
    """Every vector file of ``fmt`` under the fixtures ``root``, sorted."""
    directory = root / fmt
    return sorted(directory.rglob("*.json")) if directory.is_dir() else []


def present_formats(root: Path) -> list[str]:
    """Every format directory under ``root`` that holds at least one vector file."""
    if not root.is_dir():
        return []
    return sorted(
        entry.name
        for entry in root.iterdir()
        if entry.is_dir() and next(entry.rglob("*.json"), None) is not None
    )


def count_vectors(root: Path, fmt: str) -> int:
    """How many vectors ``fmt`` has under ``root`` (a file that cannot be read counts
    as one, as :func:`run_file` counts it as one failure)."""
    total = 0
    for path in vector_files(root, fmt):
        try:
            document = json.loads(path.read_text())
        except (OSError, ValueError):
            total += 1
            continue
        total += len(document) if isinstance(document, dict) else 1
    return total


def run_plugin_vector(
    fmt: str, run_vector: RunVector, path: Path, test_id: str, fixture: Mapping[str, Any]
) -> VectorResult:
    """One fixture through one plug-in; every exception becomes an outcome."""
    try:
        run_vector(test_id, fixture)
    except VectorSkipped as skipped:
        return VectorResult(fmt, path, test_id, Outcome.SKIPPED, str(skipped))
    except VectorFailure as failure:
        return VectorResult(fmt, path, test_id, Outcome.FAILED, str(failure))
    except Exception as error:  # a crashing plug-in is a failure, never a pass
        detail = f"{type(error).__name__}: {error}"
        return VectorResult(fmt, path, test_id, Outcome.FAILED, detail)
    return VectorResult(fmt, path, test_id, Outcome.PASSED)


def run_file(fmt: str, run_vector: RunVector, path: Path) -> Iterator[VectorResult]:
    """Every fixture of one vector file; an unreadable file is one failure."""
    try:
        document = json.loads(path.read_text())
        if not isinstance(document, dict):
            raise ValueError("the top level is not a JSON object")
    except (OSError, ValueError) as error:
        yield VectorResult(fmt, path, path.name, Outcome.FAILED, f"unreadable: {error}")
        return
    for test_id, fixture in document.items():
        if not isinstance(fixture, dict):
            yield VectorResult(fmt, path, test_id, Outcome.FAILED, "fixture is not an object")
            continue
        yield run_plugin_vector(fmt, run_vector, path, test_id, fixture)


def run_format(root: Path, fmt: str, run_vector: RunVector) -> Iterable[VectorResult]:
    """Every vector of one format under ``root``."""
    for path in vector_files(root, fmt):
        yield from run_file(fmt, run_vector, path)

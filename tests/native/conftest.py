"""Fixtures of the native tests: the ring library and a freshly compiled producer driver.

Runs on the test's main thread.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lean_p2p.native.library import LIBRARY_ENV, NativeUnavailable, load_library
from lean_p2p.tools.native_producers import ProducerDriver, ProducerRun
from tests.native.cbuild import PRODUCERS_SOURCE, RING_SOURCE, compile_c, running_in_ci


def native_build_hint() -> str:
    return "install gcc and the Python headers, then `pip install -e .` (see setup.py)"


@pytest.fixture(scope="session", autouse=True)
def ring_library(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The ring library: the package's build, or (not built here) one compiled now."""
    try:
        load_library()
        return
    except NativeUnavailable as error:
        if running_in_ci():
            pytest.fail(f"CI=true and the package's native build is missing: {error}")
    built = compile_c(
        [RING_SOURCE],
        tmp_path_factory.mktemp("ring") / "liblean_p2p_ring.so",
        shared=True,
        extra=["-fvisibility=hidden"],
    )
    os.environ[LIBRARY_ENV] = str(built)
    load_library()


@pytest.fixture(scope="session")
def compiled_producer_driver(tmp_path_factory: pytest.TempPathFactory) -> ProducerDriver:
    """The C producer driver, compiled by the tests from bindings/testing."""
    output: Path = tmp_path_factory.mktemp("producers") / "libproducers.so"
    compile_c([PRODUCERS_SOURCE], output, shared=True, extra=["-fvisibility=hidden"])
    return ProducerDriver(output)


class StoppingDriver(ProducerDriver):
    """The driver, remembering its runs so that a failing test cannot leave producer
    threads spinning behind it: teardown stops and joins them."""

    def __init__(self, driver: ProducerDriver) -> None:
        super().__init__(driver.path)
        self.runs: list[ProducerRun] = []

    def start(self, *args: Any, **kwargs: Any) -> ProducerRun:
        run = super().start(*args, **kwargs)
        self.runs.append(run)
        return run


@pytest.fixture
def producer_driver(compiled_producer_driver: ProducerDriver) -> Iterator[ProducerDriver]:
    driver = StoppingDriver(compiled_producer_driver)
    yield driver
    for run in driver.runs:
        run.stop()
        run.free()

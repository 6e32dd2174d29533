"""Fixtures shared by the runtime's tests."""

from __future__ import annotations

import asyncio

import pytest

from lean_p2p.runtime import mailbox as mailbox_module
from lean_p2p.runtime.mailbox import Mailbox


def publish_build_hint() -> str:
    return "install gcc and the Python headers, then `pip install -e .` (see setup.py)"


@pytest.fixture(params=["atomic", "bracketed"])
def publish_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test with each way a put keeps its closed test and its publish together:
    one C call (the default where it is built) and the in-flight bracket (everywhere
    else). Mailboxes made with the default ``atomic_publish`` take the path in force."""
    if request.param == "bracketed":
        monkeypatch.setattr(mailbox_module, "_PUBLISHER", None)
    elif mailbox_module._PUBLISHER is None:
        pytest.fail(f"the C publish step is not built: {publish_build_hint()}")
    return str(request.param)


@pytest.fixture(params=["c", "python"])
def serve_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test with each way the drain serves a few items of a lane: one C call
    (``_publish.serve``, the default where it is built) and the Python loop (everywhere
    else, ``serve_in_python``). Every drain in the test takes the path in force."""
    if request.param == "python":
        monkeypatch.setattr(mailbox_module, "_SERVE", mailbox_module.serve_in_python)
    elif mailbox_module._SERVE is mailbox_module.serve_in_python:
        pytest.fail(f"the C serving loop is not built: {publish_build_hint()}")
    return str(request.param)


async def settle(mailbox: Mailbox) -> None:
    """Yield to the loop until no drain is pending and every lane is empty."""
    for attempt in range(10_000):
        stats = mailbox.statistics()
        if stats.depth == 0 and mailbox._idle_token:
            return
        await asyncio.sleep(0 if attempt < 1_000 else 0.001)
    raise AssertionError(f"mailbox did not settle: {mailbox.statistics()}")

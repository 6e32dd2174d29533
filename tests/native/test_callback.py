"""The ctypes callback path: native pthreads call a Python ``lean_p2p_push_fn``.

The tests run on the loop thread; the callback runs on the C driver's pthreads.
"""

from __future__ import annotations

import ctypes
import logging
import sys
from collections.abc import Iterator

import pytest

from lean_p2p.native import PUSH_FUNCTION_TYPE, CallbackBridge, EventKind, NativeEvent, PushResult
from lean_p2p.native.library import EventStruct
from lean_p2p.runtime import LaneSpec, Mailbox, MailboxClosed, OverflowPolicy
from lean_p2p.tools.native_producers import ProducerDriver
from tests.native.delivery import Collector, assert_exactly_once_in_order, busy_python


@pytest.fixture
def short_switch_interval() -> Iterator[None]:
    """A 0.5 ms GIL switch interval: the callbacks' GIL waits stay short, so the test's
    bounded waits hold however loaded the machine is (the wait itself is benchmarked)."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(0.0005)
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


@pytest.mark.usefixtures("short_switch_interval")
@pytest.mark.parametrize("pin_thread_state", [True, False], ids=["pinned", "unpinned"])
async def test_callbacks_from_pthreads_reach_the_mailbox_exactly_once_in_order(
    producer_driver: ProducerDriver, pin_thread_state: bool
) -> None:
    collector = Collector()
    mailbox = Mailbox(
        [LaneSpec("native", capacity=100_000, policy=OverflowPolicy.REJECT_NEWEST, quantum=256)],
        lambda _lane, item: collector(item),  # type: ignore[arg-type]
    )
    bridge = CallbackBridge(
        lambda event: mailbox.put("native", event), pin_thread_state=pin_thread_state
    )
    # Each callback waits for the GIL while the loop thread runs Python (up to one
    # switch interval per call), so the count stays small; throughput is benchmarked.
    threads, events_per_thread = 4, 500
    run = producer_driver.start(
        bridge.function_address,
        None,
        threads=threads,
        events_per_thread=events_per_thread,
        on_thread_exit_address=bridge.detach_address,
    )
    await busy_python(run.done)
    totals = run.join()
    await busy_python(lambda: len(collector.events) == totals.accepted)
    await mailbox.aclose()

    assert totals.accepted == threads * events_per_thread
    assert_exactly_once_in_order(collector, run)
    statistics = bridge.statistics()
    assert statistics.calls == statistics.accepted == threads * events_per_thread
    expected_pins = 4 if pin_thread_state else 0
    assert statistics.pinned_threads == statistics.detached_threads == expected_pins


def _call(bridge: CallbackBridge, event: EventStruct | None) -> int:
    function = PUSH_FUNCTION_TYPE(bridge.function_address)
    result: int = function(None, ctypes.pointer(event) if event is not None else None)
    return result


def _event(kind: int = EventKind.GOSSIP, **fields: int | None) -> EventStruct:
    event = EventStruct()
    event.kind = kind
    for name, value in fields.items():
        setattr(event, name, value)
    return event


_BYTES = ctypes.create_string_buffer(b"x" * 300)
_ADDRESS = ctypes.addressof(_BYTES)


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        pytest.param(None, PushResult.ERR_INVALID, id="null-event"),
        pytest.param(_event(kind=0), PushResult.ERR_INVALID, id="kind-0"),
        pytest.param(_event(kind=99), PushResult.ERR_INVALID, id="kind-99"),
        pytest.param(_event(peer_id_len=3), PushResult.ERR_INVALID, id="null-peer-with-length"),
        pytest.param(_event(payload_len=3), PushResult.ERR_INVALID, id="null-payload-with-length"),
        pytest.param(
            _event(peer_id=_ADDRESS, peer_id_len=129), PushResult.ERR_TOO_LARGE, id="peer-over-128"
        ),
        pytest.param(
            _event(payload=_ADDRESS, payload_len=2**40),
            PushResult.ERR_TOO_LARGE,
            id="payload-over-limit",
        ),
    ],
)
def test_malformed_events_are_rejected_with_a_code(
    event: EventStruct | None, expected: PushResult
) -> None:
    received: list[NativeEvent] = []
    bridge = CallbackBridge(received.append)
    assert _call(bridge, event) == expected
    assert received == []
    statistics = bridge.statistics()
    counter = "rejected_invalid" if expected is PushResult.ERR_INVALID else "rejected_too_large"
    assert getattr(statistics, counter) == 1


def test_a_valid_event_is_copied_out_of_native_memory() -> None:
    received: list[NativeEvent] = []
    bridge = CallbackBridge(received.append, pin_thread_state=False)
    event = _event(
        EventKind.REQUEST,
        channel=2,
        request_id=7,
        peer_id=_ADDRESS,
        peer_id_len=4,
        payload=_ADDRESS,
        payload_len=0,
    )
    assert _call(bridge, event) == PushResult.OK
    assert received == [NativeEvent(EventKind.REQUEST, 2, 7, b"xxxx", b"")]


def test_sink_answers_map_to_result_codes(caplog: pytest.LogCaptureFixture) -> None:
    answers: list[object] = [False, MailboxClosed("closing"), ValueError("bug")]

    def sink(_event: NativeEvent) -> bool:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return bool(answer)

    bridge = CallbackBridge(sink, pin_thread_state=False)
    with caplog.at_level(logging.ERROR, logger="lean_p2p.native.callback"):
        results = [_call(bridge, _event(EventKind.CUSTOM)) for _ in range(3)]
    assert results == [PushResult.FULL, PushResult.ERR_CLOSED, PushResult.ERR_INVALID]
    statistics = bridge.statistics()
    assert (statistics.sink_rejected, statistics.rejected_closed, statistics.errors) == (1, 1, 1)
    assert "native callback failed" in caplog.text


async def test_callback_into_a_closed_mailbox_tells_producers_to_stop(
    producer_driver: ProducerDriver,
) -> None:
    mailbox = Mailbox(
        [LaneSpec("native", capacity=10, policy=OverflowPolicy.REJECT_NEWEST, quantum=1)],
        lambda _lane, _item: None,
    )
    await mailbox.aclose()
    bridge = CallbackBridge(lambda event: mailbox.put("native", event))
    run = producer_driver.start(
        bridge.function_address,
        None,
        threads=2,
        events_per_thread=100,
        on_thread_exit_address=bridge.detach_address,
    )
    await busy_python(run.done)
    totals = run.join()
    assert (totals.accepted, totals.closed) == (0, 2)
    assert bridge.statistics().rejected_closed == 2

"""The library loader and the C ABI: Python's view of lean_p2p.h must match the header.

Runs on the test's main thread; compiles a probe program against the header.
"""

from __future__ import annotations

import ctypes
import subprocess
from pathlib import Path

import pytest

from lean_p2p.native import EventKind, PushResult, availability
from lean_p2p.native.library import (
    ABI_VERSION,
    LIBRARY_ENV,
    EventStruct,
    NativeUnavailable,
    RingStatsStruct,
    function_address,
    load_library,
)
from lean_p2p.native.records import MAX_PEER_ID_LEN, PROTOCOL_CODES, RECORD_HEADER, TOPIC_CODES
from tests.native.cbuild import compile_c

PROBE = r"""
#include <stddef.h>
#include <stdio.h>
#include "lean_p2p.h"
#define SHOW(name) printf(#name "=%lld\n", (long long)(name))
int main(void) {
    SHOW(LEAN_P2P_ABI_VERSION); SHOW(LEAN_P2P_MAX_PEER_ID_LEN);
    SHOW(LEAN_P2P_OK); SHOW(LEAN_P2P_FULL); SHOW(LEAN_P2P_ERR_INVALID);
    SHOW(LEAN_P2P_ERR_TOO_LARGE); SHOW(LEAN_P2P_ERR_NO_MEMORY); SHOW(LEAN_P2P_ERR_CLOSED);
    SHOW(LEAN_P2P_EVENT_PEER_CONNECTED); SHOW(LEAN_P2P_EVENT_PEER_DISCONNECTED);
    SHOW(LEAN_P2P_EVENT_GOSSIP); SHOW(LEAN_P2P_EVENT_REQUEST);
    SHOW(LEAN_P2P_EVENT_RESPONSE_CHUNK); SHOW(LEAN_P2P_EVENT_RESPONSE_END);
    SHOW(LEAN_P2P_EVENT_REQUEST_FAILED); SHOW(LEAN_P2P_EVENT_CUSTOM);
    SHOW(LEAN_P2P_TOPIC_BLOCK); SHOW(LEAN_P2P_TOPIC_ATTESTATION); SHOW(LEAN_P2P_TOPIC_AGGREGATION);
    SHOW(LEAN_P2P_PROTOCOL_STATUS); SHOW(LEAN_P2P_PROTOCOL_BLOCKS_BY_ROOT);
    SHOW(LEAN_P2P_PROTOCOL_BLOCKS_BY_RANGE);
    SHOW(sizeof(lean_p2p_event)); SHOW(offsetof(lean_p2p_event, request_id));
    SHOW(offsetof(lean_p2p_event, peer_id)); SHOW(offsetof(lean_p2p_event, payload_len));
    SHOW(sizeof(lean_p2p_ring_stats)); SHOW(sizeof(lean_p2p_record_header));
    return 0;
}
"""


@pytest.fixture(scope="module")
def header_values(tmp_path_factory: pytest.TempPathFactory) -> dict[str, int]:
    directory = tmp_path_factory.mktemp("probe")
    source = directory / "probe.c"
    source.write_text(PROBE)
    program = compile_c([source], directory / "probe", shared=False)
    output = subprocess.run([program], capture_output=True, text=True, check=True, timeout=30)
    return {
        name: int(value) for name, value in (line.split("=") for line in output.stdout.splitlines())
    }


def test_python_constants_match_the_header(header_values: dict[str, int]) -> None:
    assert header_values["LEAN_P2P_ABI_VERSION"] == ABI_VERSION
    assert header_values["LEAN_P2P_MAX_PEER_ID_LEN"] == MAX_PEER_ID_LEN
    for result in PushResult:
        assert header_values[f"LEAN_P2P_{result.name}"] == result.value
    for kind in EventKind:
        assert header_values[f"LEAN_P2P_EVENT_{kind.name}"] == kind.value
    topics = {"BLOCK": "BLOCK", "ATTESTATION": "ATTESTATION", "AGGREGATION": "AGGREGATION"}
    for code, topic in TOPIC_CODES.items():
        assert header_values[f"LEAN_P2P_TOPIC_{topics[topic.name]}"] == code
    for code, protocol in PROTOCOL_CODES.items():
        assert header_values[f"LEAN_P2P_PROTOCOL_{protocol.name}"] == code


def test_python_structs_match_the_header(header_values: dict[str, int]) -> None:
    assert header_values["sizeof(lean_p2p_event)"] == ctypes.sizeof(EventStruct)
    assert header_values["offsetof(lean_p2p_event, request_id)"] == EventStruct.request_id.offset
    assert header_values["offsetof(lean_p2p_event, peer_id)"] == EventStruct.peer_id.offset
    assert header_values["offsetof(lean_p2p_event, payload_len)"] == (
        EventStruct.payload_len.offset
    )
    assert header_values["sizeof(lean_p2p_ring_stats)"] == ctypes.sizeof(RingStatsStruct)
    assert header_values["sizeof(lean_p2p_record_header)"] == RECORD_HEADER.size


def test_availability_names_the_library() -> None:
    assert availability().startswith("available (")
    assert load_library().lean_p2p_abi_version() == ABI_VERSION


def test_missing_library_is_reported_with_how_to_build(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(LIBRARY_ENV, str(tmp_path / "absent.so"))
    assert availability().startswith("unavailable: native ring library not built")
    assert "C compiler" in availability()
    with pytest.raises(NativeUnavailable):
        load_library()


def test_a_file_that_is_not_a_library_is_reported(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    bogus = tmp_path / "bogus.so"
    bogus.write_bytes(b"not an ELF file")
    monkeypatch.setenv(LIBRARY_ENV, str(bogus))
    assert availability().startswith("unavailable: cannot load")


def test_result_names_come_from_the_library() -> None:
    name = load_library().lean_p2p_result_name
    assert [name(result.value) for result in PushResult] == [
        b"ok",
        b"full",
        b"invalid",
        b"too_large",
        b"no_memory",
        b"closed",
    ]
    assert name(12345) == b"unknown"


def test_public_names_are_exported_and_importable() -> None:
    from lean_p2p import native

    assert sorted(native.__all__) == sorted(set(native.__all__))
    for name in native.__all__:
        assert getattr(native, name) is not None
    public = {name for name in vars(native) if not name.startswith("_")}
    submodules = {"callback", "library", "records", "ring", "producers", "stress"}
    assert public - submodules == set(native.__all__)


def test_function_address_is_the_c_functions_and_refuses_a_null_pointer() -> None:
    library = load_library()
    address = function_address(library.lean_p2p_ring_push)
    assert address == ctypes.cast(library.lean_p2p_ring_push, ctypes.c_void_p).value
    with pytest.raises(ValueError, match="no address"):
        function_address(ctypes.CFUNCTYPE(None)())  # a null function pointer

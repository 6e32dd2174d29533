"""Every leanSpec ``gossipsub_handler`` vector through our gossipsub router: none may
fail or skip."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from lean_p2p.tools.spectest.formats import gossipsub_handler
from lean_p2p.tools.spectest.runner import Outcome, VectorFailure, run_file
from tests.leanspec import leanspec_params


@pytest.mark.parametrize("path", leanspec_params("gossipsub_handler"))
def test_gossipsub_handler_vector(leanspec_root: Path, path: Path | None) -> None:
    assert path is not None, f"{leanspec_root}/gossipsub_handler holds no vector files"
    results = list(run_file(gossipsub_handler.FORMAT, gossipsub_handler.run_vector, path))
    assert results, f"{path} holds no fixtures"
    for result in results:
        assert result.outcome is Outcome.PASSED, f"{result.test_id}: {result.detail}"


# ------------------------------------------------- the checker is not vacuous

_FORWARD = "lstar/networking/test_gossipsub_handlers/test_message_forward_to_mesh.json"


def _fixture(root: Path, relative: str) -> dict[str, Any]:
    document = json.loads((root / gossipsub_handler.FORMAT / relative).read_text())
    [fixture] = document.values()
    assert isinstance(fixture, dict)
    return fixture


def _fails(fixture: dict[str, Any]) -> str:
    with pytest.raises(VectorFailure) as failure:
        gossipsub_handler.run_vector("altered", fixture)
    return str(failure.value)


def test_a_missing_expected_rpc_fails(leanspec_root: Path) -> None:
    fixture = _fixture(leanspec_root, _FORWARD)
    del fixture["expected"]["sentRpcs"][-1]
    assert "sent 2 RPCs, expected 1" in _fails(fixture)


def test_different_forwarded_data_fails(leanspec_root: Path) -> None:
    fixture = _fixture(leanspec_root, _FORWARD)
    fixture["expected"]["sentRpcs"][0]["publish"][0]["data"] = "0x00"
    assert "RPC 0" in _fails(fixture)


def test_an_extra_control_group_fails(leanspec_root: Path) -> None:
    fixture = _fixture(leanspec_root, _FORWARD)
    fixture["expected"]["sentRpcs"][0]["control"] = {"idontwant": [{"messageIds": []}]}
    assert "RPC 0" in _fails(fixture)


def test_a_different_mesh_after_fails(leanspec_root: Path) -> None:
    fixture = _fixture(leanspec_root, _FORWARD)
    fixture["expected"]["meshAfter"]["test_topic"].remove("senderX")
    assert "mesh after" in _fails(fixture)


def test_an_rpc_we_send_that_no_vector_expects_fails(leanspec_root: Path) -> None:
    # A message large enough for IDONTWANT: our router also sends one to each other
    # mesh peer, which this vector's expectation does not list.
    fixture = _fixture(leanspec_root, _FORWARD)
    fixture["event"]["publish"][0]["data"] = "0x" + "ab" * 2000
    for rpc in fixture["expected"]["sentRpcs"]:
        rpc["publish"][0]["data"] = fixture["event"]["publish"][0]["data"]
    assert "sent 4 RPCs, expected 2" in _fails(fixture)


def test_peers_without_a_stream_are_not_counted_as_sent_to(leanspec_root: Path) -> None:
    # leanSpec skips sends to a peer whose outbound stream is not open; our router
    # keeps them queued until it opens, so they are not "sent" yet.
    fixture = _fixture(leanspec_root, _FORWARD)
    fixture["initialState"]["peers"]["peerAx"]["withStream"] = False
    del fixture["expected"]["sentRpcs"][0]
    gossipsub_handler.run_vector("no stream", fixture)


def test_an_event_from_an_unknown_peer_is_a_failure_not_a_crash(leanspec_root: Path) -> None:
    fixture = _fixture(leanspec_root, _FORWARD)
    fixture["event"]["fromPeer"] = "strangerX"
    assert "not a registered peer" in _fails(fixture)

"""The node's network driver adapter (``lean_p2p.node.libp2p_driver``)."""

from __future__ import annotations

from typing import Any

import pytest

from lean_p2p.node.config import GenesisSpec, NodeConfig
from lean_p2p.node.libp2p_driver import LibP2PDriver
from lean_p2p.wire.keys import NodeKey


class _RecordingDriver:
    configs: list[Any] = []

    def __init__(self, config: Any, emit: Any) -> None:
        self.configs.append(config)

    def start(self) -> None:
        pass


@pytest.mark.parametrize("discovery", [True, False])
def test_the_nodes_path_mtu_choice_reaches_the_driver(
    monkeypatch: pytest.MonkeyPatch, discovery: bool
) -> None:
    import lean_p2p.driver.driver as driver_module

    monkeypatch.setattr(driver_module, "NetworkDriver", _RecordingDriver)
    _RecordingDriver.configs.clear()
    config = NodeConfig(
        name="n",
        key=NodeKey.generate(),
        genesis=GenesisSpec.placeholder(1_000, 4),
        path_mtu_discovery=discovery,
    )
    LibP2PDriver(config).start(lambda event: None)
    (driver_config,) = _RecordingDriver.configs
    assert driver_config.path_mtu_discovery is discovery
    assert driver_config.validate_on_loop  # the chain judges gossip before forwarding

"""Adapter from the node's :class:`~lean_p2p.node.node.DriverPort` to the py-libp2p driver.

``start`` and ``send`` run on the loop thread and return at once (the driver schedules
onto its trio thread with ``TrioToken.run_sync_soon``). ``stop`` asks the trio thread to
stop and waits for it in a worker thread (``asyncio.to_thread``): joining a thread on
the loop would block it.

Gossip is validated before it is forwarded: the driver holds each message until the
chain's verdict comes back (:class:`~lean_p2p.net.ReportValidation`).

Static peers are not given to the driver: the P2P core owns dialling and redialling
(it dials its bootnodes on ``DriverStarted``), so there is one source of truth for it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from lean_p2p.net.commands import Command
from lean_p2p.net.events import Event
from lean_p2p.node.config import NodeConfig

__all__ = ["LibP2PDriver"]

_JOIN_TIMEOUT = 30.0


class LibP2PDriver:
    def __init__(self, config: NodeConfig) -> None:
        self._config = config
        self._driver: object | None = None
        self.refused_commands = 0

    def start(self, emit: Callable[[Event], None]) -> None:
        from lean_p2p.driver.config import DriverConfig
        from lean_p2p.driver.driver import NetworkDriver

        driver_config = DriverConfig(
            private_key=self._config.key.private_key,
            listen_address=self._config.listen_address,
            static_peers=(),
            redial_interval=0.0,
            thread_name=f"driver:{self._config.name}",
            # The chain judges every gossip message before the driver forwards it.
            validate_on_loop=True,
            path_mtu_discovery=self._config.path_mtu_discovery,
        )
        driver = NetworkDriver(driver_config, emit)
        driver.start()
        self._driver = driver

    def send(self, command: Command) -> None:
        driver = self._driver
        if driver is None or not driver.send(command):  # type: ignore[attr-defined]
            self.refused_commands += 1  # loop thread only: a plain int is exact

    async def stop(self) -> None:
        driver = self._driver
        if driver is None:
            return
        driver.stop("node stopping")  # type: ignore[attr-defined]
        await asyncio.to_thread(driver.join, _JOIN_TIMEOUT)  # type: ignore[attr-defined]

    def statistics(self) -> dict[str, object]:
        driver = self._driver
        if driver is None:
            return {}
        stats: dict[str, object] = driver.statistics()  # type: ignore[attr-defined]
        return {**stats, "refused_commands": self.refused_commands}

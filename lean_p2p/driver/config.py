"""Configuration of the network driver: identity, listen address, static peers, limits.

Any thread: immutable values, built before the driver starts.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from lean_p2p.driver.gossipsub import GossipParams
from lean_p2p.driver.host import generate_private_key, load_private_key
from lean_p2p.driver.reqresp import ReqRespLimits
from lean_p2p.net.protocol import NETWORK_NAME, GossipTopic

__all__ = ["DEFAULT_LISTEN_ADDRESS", "DriverConfig"]

DEFAULT_LISTEN_ADDRESS = "/ip4/0.0.0.0/udp/9000/quic-v1"


@dataclass(frozen=True, slots=True)
class DriverConfig:
    """Everything the driver needs; ``private_key`` is a 32-byte secp256k1 secret."""

    private_key: bytes = field(default_factory=generate_private_key, repr=False)
    listen_address: str = DEFAULT_LISTEN_ADDRESS
    #: multiaddrs ending in ``/p2p/<peer id>``, dialled at start and redialled on loss
    static_peers: tuple[str, ...] = ()
    topics: tuple[GossipTopic, ...] = tuple(GossipTopic)
    network_name: str = NETWORK_NAME
    gossip: GossipParams = field(default_factory=GossipParams)
    reqresp: ReqRespLimits = field(default_factory=ReqRespLimits)
    dial_timeout: float = 10.0
    #: QUIC UDP payload size: 1200 is safe everywhere; up to 1452 on 1500-MTU paths
    max_datagram_size: int = 1200
    #: seconds between redials of a static peer that is not connected (0: never)
    redial_interval: float = 5.0
    #: seconds between QUIC PING probes of every connection (0: rely on the idle
    #: timeout alone); a connection silent for ``liveness_timeout`` is closed
    liveness_interval: float = 5.0
    liveness_timeout: float = 5.0
    thread_name: str = "lean-p2p-driver"

    def __post_init__(self) -> None:
        if len(self.private_key) != 32:
            raise ValueError("private_key must be a 32-byte secp256k1 secret")
        if "/quic-v1" not in self.listen_address:
            raise ValueError(f"listen address must be QUIC-v1: {self.listen_address!r}")
        if not 1200 <= self.max_datagram_size <= 65527:
            raise ValueError("max_datagram_size must be within 1200..65527")
        for address in self.static_peers:
            if "/p2p/" not in address:
                raise ValueError(f"static peer needs /p2p/<peer id>: {address!r}")

    @classmethod
    def from_files(
        cls,
        key_file: str | os.PathLike[str],
        *,
        listen_address: str = DEFAULT_LISTEN_ADDRESS,
        nodes_yaml: str | os.PathLike[str] | None = None,
        static_peers: tuple[str, ...] = (),
        exclude_peer_id: bool = True,
    ) -> DriverConfig:
        """Identity from a 64-hex key file, peers from multiaddrs and a ``nodes.yaml``.

        Our own entry in ``nodes.yaml`` (same peer id) is skipped when
        ``exclude_peer_id`` is set, so every node can share one file.
        """
        from lean_p2p.driver.enr import load_nodes_yaml
        from lean_p2p.driver.host import peer_id_from_private_key

        secret = load_private_key(key_file)
        peers = list(static_peers)
        if nodes_yaml is not None:
            own = peer_id_from_private_key(secret) if exclude_peer_id else None
            for record in load_nodes_yaml(nodes_yaml):
                if record.peer_id != own:
                    peers.append(record.multiaddr())
        return cls(private_key=secret, listen_address=listen_address, static_peers=tuple(peers))

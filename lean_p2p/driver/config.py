"""Configuration of the network driver: identity, listen address, static peers, limits.

Any thread: immutable values, built before the driver starts. The identity comes from
:class:`lean_p2p.wire.keys.NodeKey` (``NodeKey.read(path).private_key`` for a key file);
static peers from ``nodes.yaml`` come from :func:`lean_p2p.node.config.load_nodes_yaml`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lean_p2p.driver.gossipsub import GossipParams
from lean_p2p.driver.pmtu import AIOQUIC_MAX_DATAGRAM
from lean_p2p.driver.reqresp import ReqRespLimits
from lean_p2p.net.protocol import NETWORK_NAME, GossipTopic
from lean_p2p.wire.keys import NodeKey

__all__ = ["DEFAULT_LISTEN_ADDRESS", "DriverConfig"]

DEFAULT_LISTEN_ADDRESS = "/ip4/0.0.0.0/udp/9000/quic-v1"


@dataclass(frozen=True, slots=True)
class DriverConfig:
    """Everything the driver needs; ``private_key`` is a 32-byte secp256k1 secret."""

    private_key: bytes = field(default_factory=lambda: NodeKey.generate().private_key, repr=False)
    listen_address: str = DEFAULT_LISTEN_ADDRESS
    #: multiaddrs ending in ``/p2p/<peer id>``, dialled at start and redialled on loss
    static_peers: tuple[str, ...] = ()
    topics: tuple[GossipTopic, ...] = tuple(GossipTopic)
    network_name: str = NETWORK_NAME
    gossip: GossipParams = field(default_factory=GossipParams)
    reqresp: ReqRespLimits = field(default_factory=ReqRespLimits)
    dial_timeout: float = 10.0
    #: QUIC UDP payload size each connection starts with: 1200 is safe everywhere
    max_datagram_size: int = 1200
    #: probe each connection's path for larger datagrams once its handshake is done,
    #: and use the largest the peer acknowledges (lean_p2p.driver.pmtu)
    path_mtu_discovery: bool = True
    #: seconds between redials of a static peer that is not connected (0: never)
    redial_interval: float = 5.0
    #: seconds between QUIC PING probes of every connection (0: rely on the idle
    #: timeout alone); a connection silent for ``liveness_timeout`` is closed
    liveness_interval: float = 5.0
    liveness_timeout: float = 5.0
    thread_name: str = "lean-p2p-driver"
    #: hold each decoded gossip message until the loop reports a verdict
    #: (:class:`~lean_p2p.net.ReportValidation`) and forward only what it accepts; off,
    #: a message that decodes is forwarded at once (for harnesses without a loop)
    validate_on_loop: bool = False

    def __post_init__(self) -> None:
        NodeKey(self.private_key)  # KeyFileError (a ValueError) unless a valid secret
        if "/quic-v1" not in self.listen_address:
            raise ValueError(f"listen address must be QUIC-v1: {self.listen_address!r}")
        if not 1200 <= self.max_datagram_size <= AIOQUIC_MAX_DATAGRAM:
            raise ValueError(f"max_datagram_size must be within 1200..{AIOQUIC_MAX_DATAGRAM}")
        for address in self.static_peers:
            if "/p2p/" not in address:
                raise ValueError(f"static peer needs /p2p/<peer id>: {address!r}")

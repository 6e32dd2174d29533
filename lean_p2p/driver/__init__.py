"""The network driver: a py-libp2p host on its own trio thread speaking the lean protocol.

Runs on the driver's trio thread, except the owner interface of
:class:`NetworkDriver` (``start``, ``send``, ``stop``, ``statistics``: any thread, never
blocking). Events leave through the ``emit`` sink the owner passes in (the node routes
them into mailbox lanes); commands arrive through :meth:`NetworkDriver.send`.

- :mod:`~lean_p2p.driver.driver`: thread, lifecycle, command dispatch;
- :mod:`~lean_p2p.driver.host`: QUIC-v1 + libp2p-TLS host with a secp256k1 identity
  (keys and key files: :mod:`lean_p2p.wire.keys`);
- :mod:`~lean_p2p.driver.gossipsub`: the lean gossipsub router (the one module that
  replaces py-libp2p behaviour, and why);
- :mod:`~lean_p2p.driver.reqresp`: Status / BlocksByRoot / BlocksByRange on raw streams;
- :mod:`~lean_p2p.driver.config`: :class:`DriverConfig`.
"""

from lean_p2p.driver.config import DEFAULT_LISTEN_ADDRESS, DriverConfig
from lean_p2p.driver.driver import DriverCrashed, NetworkDriver
from lean_p2p.driver.gossipsub import GossipParams
from lean_p2p.driver.reqresp import ReqRespLimits

__all__ = [
    "DEFAULT_LISTEN_ADDRESS",
    "DriverConfig",
    "DriverCrashed",
    "GossipParams",
    "NetworkDriver",
    "ReqRespLimits",
]

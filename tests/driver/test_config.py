"""DriverConfig: validation and the lean gossip defaults."""

from __future__ import annotations

import pytest

from lean_p2p.driver.config import DriverConfig
from lean_p2p.driver.gossipsub import GossipParams


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"private_key": b"short"}, "32 bytes"),
        ({"private_key": bytes(32)}, "not a valid secp256k1"),
        ({"listen_address": "/ip4/0.0.0.0/tcp/9000"}, "QUIC-v1"),
        ({"static_peers": ("/ip4/127.0.0.1/udp/9000/quic-v1",)}, "/p2p/"),
    ],
)
def test_invalid_configuration_is_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DriverConfig(**kwargs)  # type: ignore[arg-type]


def test_default_gossip_parameters_are_the_lean_ones() -> None:
    params = DriverConfig().gossip
    assert params == GossipParams()
    assert (params.mesh_degree, params.mesh_degree_low, params.mesh_degree_high) == (8, 6, 12)
    assert params.gossip_degree == 6
    assert params.heartbeat_interval == 0.7
    assert (params.history_length, params.history_gossip) == (6, 3)
    assert params.seen_ttl == 24.0
    assert params.fanout_ttl == 60.0
    assert params.prune_backoff == 60.0
    assert params.max_message_size == 10 * 1024 * 1024


def test_bad_gossip_parameters_are_refused() -> None:
    with pytest.raises(ValueError):
        GossipParams(mesh_degree_low=9, mesh_degree=8)
    with pytest.raises(ValueError):
        GossipParams(history_gossip=7, history_length=6)


@pytest.mark.parametrize("size", [1199, 16_385, 65_000])
def test_a_datagram_size_outside_what_aioquic_carries_is_refused(size: int) -> None:
    with pytest.raises(ValueError, match=r"max_datagram_size must be within 1200\.\.16384"):
        DriverConfig(max_datagram_size=size)

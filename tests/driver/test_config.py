"""DriverConfig: validation and loading identity and static peers from files."""

from __future__ import annotations

from pathlib import Path

import pytest

from lean_p2p.driver.config import DriverConfig
from lean_p2p.driver.enr import encode_enr
from lean_p2p.driver.gossipsub import GossipParams
from lean_p2p.driver.host import generate_private_key, peer_id_from_private_key, write_private_key


def test_from_files_reads_key_and_nodes_yaml_skipping_itself(tmp_path: Path) -> None:
    own, other = generate_private_key(), generate_private_key()
    write_private_key(tmp_path / "node.key", own)
    (tmp_path / "nodes.yaml").write_text(
        f"- {encode_enr(own, ip='127.0.0.1', quic_port=9001)}\n"
        f"- {encode_enr(other, ip='127.0.0.1', quic_port=9002)}\n"
    )
    extra = (
        f"/ip4/127.0.0.1/udp/9003/quic-v1/p2p/{peer_id_from_private_key(generate_private_key())}"
    )
    config = DriverConfig.from_files(
        tmp_path / "node.key",
        listen_address="/ip4/127.0.0.1/udp/9001/quic-v1",
        nodes_yaml=tmp_path / "nodes.yaml",
        static_peers=(extra,),
    )
    assert config.private_key == own
    other_address = f"/ip4/127.0.0.1/udp/9002/quic-v1/p2p/{peer_id_from_private_key(other)}"
    assert config.static_peers == (extra, other_address)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"private_key": b"short"}, "32-byte"),
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

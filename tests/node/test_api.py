"""The HTTP API against the leanSpec ``api_endpoint`` vectors, plus its error cases.

The vectors describe a node started from a genesis (or from an anchor a few empty blocks
later). The source here is built exactly that way from the genesis code and the state
transition, so the test checks genesis construction, the endpoints' shapes and the
metrics contract together.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from lean_p2p.consensus.state import ChainState
from lean_p2p.consensus.state_transition import process_block, process_slots, proposer_for_slot
from lean_p2p.containers import Block, BlockBody, MultiMessageAggregate, SignedBlock, State
from lean_p2p.node.api import ApiSource, CheckpointView, ForkChoiceNode, ForkChoiceView, build_app
from lean_p2p.node.config import GenesisSpec
from lean_p2p.node.genesis import genesis_block, genesis_state
from lean_p2p.node.metrics import LEAN_METRIC_NAMES, ChainGauges, NodeMetrics
from tests.leanspec import leanspec_params


@dataclass
class AnchorSource:
    """A node's view right after starting from an anchor: one block, nothing else."""

    state: State
    block: SignedBlock
    aggregator: bool

    @property
    def root(self) -> bytes:
        return self.block.block.hash_tree_root()

    def finalized_state_ssz(self) -> bytes | None:
        return self.state.encode()

    def finalized_block_ssz(self) -> bytes | None:
        return self.block.encode()

    def justified_checkpoint(self) -> CheckpointView:
        return CheckpointView(self.block.block.slot, self.root)

    def fork_choice(self) -> ForkChoiceView:
        block = self.block.block
        anchor = CheckpointView(block.slot, self.root)
        node = ForkChoiceNode(self.root, block.slot, block.parent_root, block.proposer_index, 0)
        return ForkChoiceView(
            (node,), self.root, anchor, anchor, self.root, len(self.state.validators)
        )

    def is_aggregator(self) -> bool:
        return self.aggregator

    def set_aggregator(self, enabled: bool) -> None:
        self.aggregator = enabled


def _advance_with_empty_blocks(
    state: State, block: SignedBlock, slots: int
) -> tuple[State, SignedBlock]:
    chain = ChainState.from_container(state)
    for slot in range(1, slots + 1):
        chain = process_slots(chain, slot)
        parent_root = chain.latest_block_header.hash_tree_root()
        unsigned = Block(
            slot=slot,
            proposer_index=proposer_for_slot(slot, chain.validator_count),
            parent_root=parent_root,
            state_root=b"\x00" * 32,
            body=BlockBody(attestations=()),
        )
        chain = process_block(chain, unsigned)
        block = SignedBlock(
            block=Block(
                slot=unsigned.slot,
                proposer_index=unsigned.proposer_index,
                parent_root=parent_root,
                state_root=chain.hash_tree_root(),
                body=unsigned.body,
            ),
            proof=MultiMessageAggregate(proof=b""),
        )
    return chain.to_container(), block


@functools.cache
def _published_key_sets(root: Path) -> dict[tuple[str, int], tuple[tuple[bytes, bytes], ...]]:
    """Validator key sets by (key set digest, size), from the states other vectors publish.

    The vectors' genesis uses leanSpec's test key set; its public keys appear in the
    finalized-state vector and in the fork-choice anchor states.
    """
    found: dict[tuple[str, int], tuple[tuple[bytes, bytes], ...]] = {}
    reference = root / "api_endpoint/lstar/api/test_api_endpoints/test_finalized_state_4v.json"
    for path in [reference, *sorted((root / "fork_choice").rglob("*.json"))]:
        vector = next(iter(json.loads(path.read_text()).values()))
        digest = vector["_info"].get("keySetDigest", "")
        if "anchorState" in vector:
            listed = vector["anchorState"]["validators"]["data"]
            keys = tuple(
                (
                    bytes.fromhex(v["attestationPublicKey"][2:]),
                    bytes.fromhex(v["proposalPublicKey"][2:]),
                )
                for v in listed
            )
        elif vector.get("endpoint") == "/lean/v0/states/finalized":
            state = State.decode(bytes.fromhex(vector["expectedBody"][2:]))
            keys = tuple(
                (v.attestation_public_key, v.proposal_public_key) for v in state.validators
            )
        else:
            continue
        found.setdefault((digest, len(keys)), keys)
    return found


def _validator_keys(vector: dict[str, Any], root: Path) -> tuple[tuple[bytes, bytes], ...]:
    count = vector["genesisParams"]["numValidators"]
    keys = _published_key_sets(root).get((vector["_info"]["keySetDigest"], count))
    if keys is None:
        pytest.skip(f"no published key set of {count} validators for this digest")
    return keys


def _metrics(source: ApiSource) -> NodeMetrics:
    def gauges() -> ChainGauges:
        view = source.fork_choice()
        return ChainGauges(
            head_slot=view.nodes[0].slot,
            current_slot=0,
            safe_target_slot=view.nodes[0].slot,
            justified_slot=view.justified.slot,
            finalized_slot=view.finalized.slot,
            connected_peers=0,
        )

    return NodeMetrics(
        node_name="test",
        validator_count=source.fork_choice().validator_count,
        chain_gauges=gauges,
        lane_counters=dict,
        wakeups=lambda: 0,
    )


def _load_vector(path: Path) -> dict[str, Any]:
    vector: dict[str, Any] = next(iter(json.loads(path.read_text()).values()))
    return vector


@pytest.mark.parametrize("path", leanspec_params("api_endpoint"))
async def test_api_endpoint_vector(path: Path | None, leanspec_root: Path) -> None:
    assert path is not None, "api_endpoint vectors are missing from the fixtures"
    vector = _load_vector(path)
    params = vector["genesisParams"]
    spec = GenesisSpec(params["genesisTime"], _validator_keys(vector, leanspec_root))
    state = genesis_state(spec)
    block = genesis_block(state)
    if params.get("anchorSlot"):
        state, block = _advance_with_empty_blocks(state, block, params["anchorSlot"])
    source = AnchorSource(state, block, vector["initialIsAggregator"])
    async with TestClient(TestServer(build_app(source, _metrics(source)))) as client:
        response = await client.request(
            vector["method"], vector["endpoint"], json=vector.get("requestBody")
        )
        assert response.status == vector["expectedStatusCode"]
        assert response.headers["Content-Type"] == vector["expectedContentType"]
        expected = vector["expectedBody"]
        if vector["expectedContentType"] == "application/octet-stream":
            assert await response.read() == bytes.fromhex(expected[2:])
        elif vector["endpoint"] == "/metrics":
            text = await response.text()
            exposed = {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")}
            exposed |= {name + "_total" for name in exposed}
            assert set(expected["required_metric_names"]) <= exposed
        else:
            assert await response.json() == expected


async def _client(source: AnchorSource) -> TestClient[Any, Any]:
    client: TestClient[Any, Any] = TestClient(TestServer(build_app(source, _metrics(source))))
    await client.start_server()
    return client


@pytest.fixture
def source() -> AnchorSource:
    state = genesis_state(GenesisSpec.placeholder(0, 4))
    return AnchorSource(state, genesis_block(state), False)


@pytest.mark.parametrize(
    "body",
    [b"not json", b'{"enabled": "yes"}', b"[]", b"{}"],
    ids=["not-json", "not-bool", "not-object", "missing"],
)
async def test_bad_aggregator_toggle_is_rejected(source: AnchorSource, body: bytes) -> None:
    client = await _client(source)
    try:
        response = await client.post("/lean/v0/admin/aggregator", data=body)
        assert response.status == 400
        assert source.aggregator is False
    finally:
        await client.close()


async def test_oversized_body_is_rejected(source: AnchorSource) -> None:
    client = await _client(source)
    try:
        response = await client.post("/lean/v0/admin/aggregator", data=b" " * 10_000)
        assert response.status == 413
    finally:
        await client.close()


async def test_missing_finalized_block_is_404(source: AnchorSource) -> None:
    source.finalized_block_ssz = lambda: None  # type: ignore[method-assign]
    client = await _client(source)
    try:
        assert (await client.get("/lean/v0/blocks/finalized")).status == 404
        response = await client.get("/lean/v0/blocks/finalized".replace("blocks", "states"))
        assert response.status == 200
    finally:
        await client.close()


async def test_metrics_expose_lane_counters() -> None:
    from lean_p2p.node.metrics import LaneCounters

    metrics = NodeMetrics(
        node_name="n",
        validator_count=4,
        chain_gauges=lambda: ChainGauges(5, 6, 4, 3, 2, 1),
        lane_counters=lambda: {"blocks": LaneCounters(depth=2, accepted=9, dropped=3, handled=4)},
        wakeups=lambda: 7,
    )
    text = metrics.scrape().decode()
    assert 'lean_p2p_mailbox_lane_depth{lane="blocks"} 2.0' in text
    assert 'lean_p2p_mailbox_dropped_total{lane="blocks"} 3.0' in text
    assert "lean_p2p_mailbox_wakeups_total 7.0" in text
    assert "lean_head_slot 5.0" in text
    assert "lean_latest_finalized_slot 2.0" in text
    for name in LEAN_METRIC_NAMES:
        assert name.removesuffix("_total") in text

"""The chain service alone (sans-IO): duties, parked blocks, rejections, determinism."""

from __future__ import annotations

from lean_p2p.containers import Block, BlockBody, MultiMessageAggregate, SignedBlock
from lean_p2p.net.protocol import GossipTopic
from lean_p2p.node.chain import ChainService
from lean_p2p.node.config import GenesisSpec
from lean_p2p.p2p.chain import (
    BlockReceived,
    BlockSource,
    FetchAbandoned,
    FetchRoots,
    PublishAggregate,
    PublishAttestation,
    PublishBlock,
    PublishRejected,
)


def _service(**options: object) -> ChainService:
    return ChainService(GenesisSpec.placeholder(0, 4), **options)  # type: ignore[arg-type]


def _orphan(parent: bytes, slot: int) -> tuple[SignedBlock, bytes]:
    block = Block(
        slot=slot,
        proposer_index=slot % 4,
        parent_root=parent,
        state_root=b"\x01" * 32,
        body=BlockBody(attestations=()),
    )
    return SignedBlock(block=block, proof=MultiMessageAggregate(proof=b"")), block.hash_tree_root()


def test_duties_follow_the_intervals() -> None:
    chain = _service(validator_indices=(1,), is_aggregator=True)
    kinds = {}
    for interval in range(1, 11):  # slots 0 and 1
        kinds[interval] = [type(request) for request in chain.on_interval(interval)]
    assert kinds[5] == [PublishBlock]  # slot 1, interval 0: validator 1 proposes
    assert kinds[1] == kinds[6] == [PublishAttestation]  # interval 1: it votes
    assert PublishAggregate in kinds[7]  # interval 2: the aggregator folds its vote
    assert chain.summary().head_slot == 1
    assert chain.on_interval(3) == []  # a stale tick changes nothing
    assert chain.counters["stale_ticks"] == 1


def test_same_inputs_give_the_same_store() -> None:
    first, second = (
        _service(validator_indices=(0, 1, 2, 3), is_aggregator=True),
        _service(validator_indices=(0, 1, 2, 3), is_aggregator=True),
    )
    for interval in range(1, 31):
        first.on_interval(interval)
        second.on_interval(interval)
    assert first.fingerprint() == second.fingerprint()
    assert first.summary().finalized_slot > 0
    second.on_interval(31)
    assert first.fingerprint() != second.fingerprint()


def test_orphans_are_parked_fetched_and_bounded() -> None:
    chain = _service(max_parked=2)
    requests = []
    for slot in (1, 2, 3):
        block, root = _orphan(bytes([slot]) * 32, slot)
        requests += chain.on_input(BlockReceived(block, root, "peer", BlockSource.GOSSIP))
    assert requests == [FetchRoots((b"\x01" * 32,)), FetchRoots((b"\x02" * 32,))]
    assert chain.summary().parked == 2
    assert chain.counters["blocks_parked_dropped"] == 1
    # The same orphan again is neither parked twice nor fetched again.
    block, root = _orphan(b"\x01" * 32, 1)
    assert chain.on_input(BlockReceived(block, root, "peer", BlockSource.GOSSIP)) == []
    assert chain.counters["blocks_parked_duplicate"] == 1
    # Giving up on a parent drops what waits on it.
    chain.on_input(FetchAbandoned((b"\x01" * 32,), "no peer had it"))
    assert chain.summary().parked == 1
    assert chain.counters["blocks_parked_abandoned"] == 1


def test_parked_child_is_imported_after_its_parent() -> None:
    producer = _service(validator_indices=(0, 1, 2, 3))
    blocks = []
    for interval in range(1, 16):
        blocks += [r.block for r in producer.on_interval(interval) if isinstance(r, PublishBlock)]
    assert [b.block.slot for b in blocks] == [1, 2, 3]
    follower = _service()
    for block in reversed(blocks):  # children first: each waits for its parent
        follower.on_input(
            BlockReceived(block, block.block.hash_tree_root(), "p", BlockSource.GOSSIP)
        )
    assert follower.summary().head_slot == 3
    assert follower.summary().parked == 0
    assert follower.counters["blocks_imported"] == 3
    assert follower.get_block(blocks[1].block.hash_tree_root()) == blocks[1]
    assert [b.block.slot for b in follower.blocks_by_range(1, 2)] == [1, 2]
    assert follower.root_at_slot(2) == blocks[1].block.hash_tree_root()
    assert follower.root_at_slot(7) is None


def test_invalid_block_is_rejected_with_its_reason() -> None:
    chain = _service()
    block, root = _orphan(chain.anchor_root, 1)
    assert chain.on_input(BlockReceived(block, root, "peer", BlockSource.GOSSIP)) == []
    assert chain.counters["blocks_rejected"] == 1
    assert any(key.startswith("block_rejected_") for key in chain.counters)
    assert chain.summary().head_slot == 0


def test_failed_publish_is_counted() -> None:
    chain = _service()
    chain.on_input(PublishRejected(GossipTopic.BLOCK, b"\x00" * 20, "no peers"))
    assert chain.counters["publish_rejected_block"] == 1


def _proposal(validator: int, slot: int) -> SignedBlock:
    """The block ``validator`` proposes at ``slot`` having seen nothing but genesis."""
    producer = _service(validator_indices=(validator,))
    for interval in range(1, slot * 5 + 1):
        for request in producer.on_interval(interval):
            if isinstance(request, PublishBlock):
                return request.block
    raise AssertionError("no proposal")


def test_a_head_switch_to_another_branch_is_a_reorg() -> None:
    fork_a, fork_b = _proposal(1, 1), _proposal(2, 2)  # siblings on genesis, no votes
    root_a, root_b = fork_a.block.hash_tree_root(), fork_b.block.hash_tree_root()
    # With no votes the tie goes to the larger root: import the loser first.
    first, second = (fork_a, fork_b) if root_b > root_a else (fork_b, fork_a)
    chain = _service()
    chain.on_input(BlockReceived(first, first.block.hash_tree_root(), "p", BlockSource.GOSSIP))
    assert chain.counters["reorgs"] == 0  # genesis -> first: an extension, not a reorg
    chain.on_input(BlockReceived(second, second.block.hash_tree_root(), "p", BlockSource.GOSSIP))
    assert chain.summary().head_root == second.block.hash_tree_root()
    assert chain.counters["reorgs"] == 1
    assert chain.reorg_depths == [first.block.slot]  # back to genesis (slot 0)

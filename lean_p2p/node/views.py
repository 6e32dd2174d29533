"""The HTTP API's view of a running node. Loop thread (aiohttp handlers run there).

Implements :class:`lean_p2p.node.api.ApiSource` over the node's chain: reads the store
directly (the handler runs between mailbox batches, never during one), and routes the
one write — the aggregator role — through the node as a handled control item so that
recordings include it.
"""

from __future__ import annotations

from collections.abc import Callable

from lean_p2p.node.api import CheckpointView, ForkChoiceNode, ForkChoiceView
from lean_p2p.node.chain import ChainService

__all__ = ["NodeApiSource"]


class NodeApiSource:
    """Reads ``chain``; hands the aggregator switch to ``set_aggregator`` (the node's,
    which records it). Taking these two rather than the node keeps this module below
    :mod:`lean_p2p.node.node` in the import graph."""

    def __init__(self, chain: ChainService, set_aggregator: Callable[[bool], None]) -> None:
        self._chain = chain
        self._set_aggregator = set_aggregator

    def finalized_state_ssz(self) -> bytes | None:
        state = self._chain.finalized_state()
        return state.encode() if state is not None else None

    def finalized_block_ssz(self) -> bytes | None:
        chain = self._chain
        block = chain.get_block(chain.store.latest_finalized.root)
        return block.encode() if block is not None else None

    def justified_checkpoint(self) -> CheckpointView:
        justified = self._chain.store.latest_justified
        return CheckpointView(justified.slot, justified.root)

    def fork_choice(self) -> ForkChoiceView:
        store = self._chain.store
        finalized = store.latest_finalized
        weights = store.block_weights()
        nodes = tuple(
            ForkChoiceNode(
                root, block.slot, block.parent_root, block.proposer_index, weights.get(root, 0)
            )
            for root, block in store.blocks.items()
            if block.slot >= finalized.slot
        )
        justified = store.latest_justified
        head_state = store.states.get(store.head)
        return ForkChoiceView(
            nodes=nodes,
            head=store.head,
            justified=CheckpointView(justified.slot, justified.root),
            finalized=CheckpointView(finalized.slot, finalized.root),
            safe_target=store.safe_target,
            validator_count=head_state.validator_count if head_state is not None else 0,
        )

    def is_aggregator(self) -> bool:
        return self._chain.is_aggregator

    def set_aggregator(self, enabled: bool) -> None:
        self._set_aggregator(enabled)

"""The optimised LMD-GHOST against a plain transcription of the rules, on random trees.

The reference walks every vote's ancestry one block at a time and rebuilds the children
map on every call, as the rules are written; the store uses bitmasks, a heap and a kept
children map. Both must agree on every weight and every head.
"""

from __future__ import annotations

import random

import pytest

from lean_p2p.consensus.signatures import mock_proof
from lean_p2p.consensus.store import ForkChoiceStore, participant_mask
from lean_p2p.consensus.validator import build_block
from lean_p2p.containers import (
    AttestationData,
    Bitlist,
    Checkpoint,
    MultiMessageAggregate,
    SignedBlock,
    SingleMessageAggregate,
)
from tests.consensus.chain import devnet_store


def _random_tree(generator: random.Random, size: int) -> ForkChoiceStore:
    store = devnet_store(8)
    roots = [store.head]
    for slot in range(1, size + 1):
        parent = generator.choice(roots[-6:])  # forks near the tip
        state = store.states[parent]
        block, _, _ = build_block(
            state,
            slot=slot,
            proposer_index=slot % 8,
            parent_root=parent,
            known_block_roots=store.blocks.keys(),
            payloads={},
        )
        proof = MultiMessageAggregate(proof=mock_proof(b"b"))
        roots.append(store.on_block(SignedBlock(block=block, proof=proof)))
    return store


def _random_votes(generator: random.Random, store: ForkChoiceStore) -> None:
    roots = list(store.blocks)
    for _ in range(generator.randint(1, 12)):
        head_root = generator.choice(roots)
        head = Checkpoint(root=head_root, slot=store.blocks[head_root].slot)
        data = AttestationData(
            slot=head.slot + generator.randint(0, 2), head=head, target=head, source=head
        )
        voters = generator.sample(range(8), generator.randint(1, 8))
        bits = Bitlist.from_indices(8, voters)
        proof = SingleMessageAggregate(participants=bits, proof=mock_proof(bytes(voters)))
        store.known_payloads.setdefault(data, set()).add(proof)


def _reference_latest_votes(store: ForkChoiceStore) -> dict[int, AttestationData]:
    latest: dict[int, AttestationData] = {}
    for data, proofs in store.known_payloads.items():
        if data.head.slot <= store.latest_finalized.slot:
            continue
        for proof in proofs:
            mask = participant_mask(proof.participants)
            for index in range(mask.bit_length()):
                if mask >> index & 1 and (index not in latest or latest[index].slot < data.slot):
                    latest[index] = data
    return latest


def _reference_weights(store: ForkChoiceStore, start_slot: int) -> dict[bytes, int]:
    weights: dict[bytes, int] = {}
    for data in _reference_latest_votes(store).values():
        root = data.head.root
        while root in store.blocks and store.blocks[root].slot > start_slot:
            weights[root] = weights.get(root, 0) + 1
            root = store.blocks[root].parent_root
    return weights


def _reference_head(store: ForkChoiceStore) -> bytes:
    start = store.latest_justified.root
    weights = _reference_weights(store, store.blocks[start].slot)
    children: dict[bytes, list[bytes]] = {}
    for root, block in store.blocks.items():
        children.setdefault(block.parent_root, []).append(root)
    head = start
    while children.get(head):
        head = max(children[head], key=lambda child: (weights.get(child, 0), child))
    return head


@pytest.mark.parametrize("seed", range(25))
def test_weights_and_head_match_the_reference(seed: int) -> None:
    generator = random.Random(seed)
    store = _random_tree(generator, size=generator.randint(3, 30))
    _random_votes(generator, store)
    expected_weights = {
        root: weight
        for root, weight in _reference_weights(store, store.latest_finalized.slot).items()
        if weight
    }
    assert {r: w for r, w in store.block_weights().items() if w} == expected_weights
    assert store.update_head() == _reference_head(store)

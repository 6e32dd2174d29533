"""Validator keystores and real signing: the layout leanSpec reads, keys that must match
genesis, and two nodes that sign and verify for real, finalize, and reject a vote or a
block whose signature is bad (every one counted, none forwarded)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from lean_p2p.consensus import XmssVerifier
from lean_p2p.consensus.hashing import attestation_data_root
from lean_p2p.consensus.signatures import proposer_signature_of
from lean_p2p.containers import (
    TEST_SCHEME,
    AttestationData,
    Checkpoint,
    MultiMessageAggregate,
    SignedAttestation,
    SignedBlock,
)
from lean_p2p.crypto import verify
from lean_p2p.net import GossipAttestation, GossipBlock, GossipVerdict, ReportValidation
from lean_p2p.node.config import load_node_config, write_devnet
from lean_p2p.node.keys import (
    KEYS_DIRECTORY,
    MANIFEST_FILE,
    KeystoreError,
    ValidatorKeys,
    XmssSigner,
    generate_validator_keys,
    keystore_scheme,
    load_validator_keys,
    write_keystore,
)
from lean_p2p.node.node import Node
from lean_p2p.node.testing import FakeDriver, ManualClock
from tests.node.linked import GENESIS_TIME, run_linked

SEED = b"tests/node/test_keys"


@pytest.fixture(scope="module")
def keys() -> list[ValidatorKeys]:
    return generate_validator_keys(4, seed=SEED, scheme=TEST_SCHEME, num_active_slots=40)


def _devnet(directory: Path, keys: list[ValidatorKeys], nodes: int = 2) -> Path:
    write_keystore(directory, keys)
    write_devnet(
        directory,
        nodes=nodes,
        validators=len(keys),
        genesis_time=GENESIS_TIME,
        validator_keys=[validator.public_keys for validator in keys],
    )
    return directory


def test_keys_are_deterministic_in_the_seed_and_apart_per_validator_and_role(
    keys: list[ValidatorKeys],
) -> None:
    again = generate_validator_keys(4, seed=SEED, scheme=TEST_SCHEME, num_active_slots=40)
    assert [k.public_keys for k in again] == [k.public_keys for k in keys]
    every_key = [key for validator in keys for key in validator.public_keys]
    assert len(set(every_key)) == 8
    other = generate_validator_keys(1, seed=SEED + b"!", scheme=TEST_SCHEME, num_active_slots=1)
    assert other[0].public_keys != keys[0].public_keys


def test_the_keystore_has_the_shared_layout_and_loads_back(
    tmp_path: Path, keys: list[ValidatorKeys]
) -> None:
    manifest_path = write_keystore(tmp_path, keys)
    assert manifest_path == tmp_path / KEYS_DIRECTORY / MANIFEST_FILE
    manifest = yaml.safe_load(manifest_path.read_text())
    assert manifest["lifetime"] == 256 and manifest["num_validators"] == 4
    entry = manifest["validators"][2]
    assert entry["index"] == 2
    assert entry["attestation_public_key_hex"] == "0x" + keys[2].attestation.public_key.hex()
    assert (tmp_path / KEYS_DIRECTORY / entry["proposal_private_key_file"]).is_file()
    assert keystore_scheme(tmp_path) is TEST_SCHEME
    genesis = [validator.public_keys for validator in keys]
    loaded = load_validator_keys(tmp_path, (1, 3), genesis)
    assert sorted(loaded) == [1, 3]
    assert loaded[3] == keys[3]


def test_a_keystore_that_does_not_fit_is_refused_with_a_reason(
    tmp_path: Path, keys: list[ValidatorKeys]
) -> None:
    genesis = [validator.public_keys for validator in keys]
    with pytest.raises(KeystoreError, match="cannot read"):
        load_validator_keys(tmp_path, (0,), genesis)
    write_keystore(tmp_path, keys[:2])
    with pytest.raises(KeystoreError, match="no keys for validator 3"):
        load_validator_keys(tmp_path, (3,), genesis)
    with pytest.raises(KeystoreError, match="not the ones genesis lists"):
        load_validator_keys(tmp_path, (0,), list(reversed(genesis)))
    key_file = tmp_path / KEYS_DIRECTORY / "validator_1_proposal_sk.ssz"
    key_file.write_bytes(key_file.read_bytes()[:-3])
    with pytest.raises(KeystoreError, match=r"validator_1_proposal_sk\.ssz"):
        load_validator_keys(tmp_path, (1,), genesis)


def test_the_signer_signs_votes_and_block_proofs_that_verify(keys: list[ValidatorKeys]) -> None:
    signer = XmssSigner({validator.index: validator for validator in keys})
    genesis = Checkpoint(root=b"\x01" * 32, slot=0)
    for slot in (1, 17, 35):  # the key's window slides forward as slots pass
        data = AttestationData(slot=slot, head=genesis, target=genesis, source=genesis)
        signature = signer.sign_attestation(2, data)
        public_key = keys[2].attestation.public_key
        assert verify(public_key, slot, attestation_data_root(data), signature, TEST_SCHEME).valid


async def test_two_nodes_that_sign_for_real_finalize_and_reject_bad_signatures(
    tmp_path: Path, keys: list[ValidatorKeys]
) -> None:
    directory = _devnet(tmp_path, keys)
    configs = [load_node_config(directory, f"lean_p2p_{index}") for index in (0, 1)]
    assert all(c.verification == "xmss" and c.keystore == directory for c in configs)
    clock = ManualClock(GENESIS_TIME)
    drivers = {"a": FakeDriver("a"), "b": FakeDriver("b")}
    node_a = Node(configs[0], driver=drivers["a"], clock=clock, serve_api=False)
    node_b = Node(configs[1], driver=drivers["b"], clock=clock, serve_api=False)
    async with node_a, node_b:
        await run_linked(clock, [node_a, node_b], drivers, 5 * 8)
        report_a, report_b = node_a.report(), node_b.report()
        assert report_a.chain.head_root == report_b.chain.head_root
        assert report_a.chain.finalized_slot == report_b.chain.finalized_slot >= 3
        # b verified a's votes on its workers, and a's blocks carried real proposer
        # signatures that b checked
        assert report_b.verification is not None
        assert report_b.verification.submitted >= 8 and report_b.verification.invalid == 0
        assert report_b.chain_counters["blocks_imported"] >= 3
        assert isinstance(node_b.chain.store.verifier, XmssVerifier)

        # A vote by a's validator with its signature changed: verified, rejected.
        head = node_b.chain.head()
        data = AttestationData(slot=head.slot, head=head, target=head, source=head)
        genuine = node_a.chain._signer.sign_attestation(0, data)
        forged = genuine[:-4] + bytes([genuine[-4] ^ 1]) + genuine[-3:]
        drivers["b"].take_sent()
        await node_b.wait_idle()
        before = dict(node_b.chain.counters)
        drivers["b"].inject(
            GossipAttestation("a", b"forged-vote", SignedAttestation(0, data, forged))
        )
        # The first block, its proposer's signature zeroed: a node at that point of the
        # chain rejects it (the placeholder alone does not make a proof any more).
        [first] = node_a.chain.blocks_by_range(1, 1)
        signature = proposer_signature_of(first.proof.proof)
        assert signature is not None
        zeroed = first.proof.proof[: -len(signature)] + bytes(len(signature))
        bad_block = SignedBlock(block=first.block, proof=MultiMessageAggregate(proof=zeroed))
        fresh_driver = FakeDriver("c")
        async with Node(configs[1], driver=fresh_driver, clock=clock, serve_api=False) as fresh:
            fresh_driver.inject(GossipBlock("a", b"bad-block", bad_block))
            fresh_driver.inject(GossipBlock("a", b"good-block", first))
            await fresh.wait_idle()
            verdicts = [c for c in fresh_driver.take_sent() if isinstance(c, ReportValidation)]
            assert verdicts == [
                ReportValidation(b"bad-block", GossipVerdict.REJECT),
                ReportValidation(b"good-block", GossipVerdict.ACCEPT),
            ]
            assert fresh.chain.counters["block_rejected_invalid_block_proof"] == 1
        await node_b.wait_idle()
        verdicts = [c for c in drivers["b"].take_sent() if isinstance(c, ReportValidation)]
        assert ReportValidation(b"forged-vote", GossipVerdict.REJECT) in verdicts
        after = node_b.chain.counters
        rejected = "attestation_rejected_invalid_signature"
        assert after[rejected] == before.get(rejected, 0) + 1
    assert node_a.report().lost_events == node_b.report().lost_events == 0

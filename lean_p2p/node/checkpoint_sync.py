"""Checkpoint sync: start a node from another node's finalized state instead of genesis.

Threads: :func:`fetch_anchor` blocks (two HTTP requests and SSZ decoding) and runs on
the caller's thread before the node's loop serves anything: ``lean-p2p node`` calls it
on its main thread, and an embedder running a loop calls it through
``asyncio.to_thread`` (or :meth:`lean_p2p.node.Node.create`). Nothing here touches a
running node.

It reads ``/lean/v0/states/finalized`` and ``/lean/v0/blocks/finalized`` (SSZ), the
paths our node and leanSpec's serve, and checks before trusting them:

- the state passes the checks the leanSpec ``sync`` vectors make
  (:func:`~lean_p2p.consensus.checkpoint.verify_checkpoint_state`);
- it is this network's: the same genesis time and the same validator keys as ours;
- the block is that state's: its state root is the state's root.

The block's proof is not verified: the source is trusted for its finalized checkpoint
(that is what checkpoint sync means), and leanSpec serves its finalized block with an
empty proof (``docs/interop.md``).
"""

from __future__ import annotations

import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Final

from lean_p2p.consensus.checkpoint import verify_checkpoint_state
from lean_p2p.containers import SignedBlock, SSZError, State
from lean_p2p.node.config import GenesisSpec

__all__ = ["Anchor", "CheckpointSyncError", "fetch_anchor"]

STATE_PATH: Final = "/lean/v0/states/finalized"
BLOCK_PATH: Final = "/lean/v0/blocks/finalized"
#: Far above any lean state or block (a state is kilobytes per validator): a server
#: that sends more is not answering these paths.
MAX_RESPONSE_BYTES: Final = 64 * 1024 * 1024


class CheckpointSyncError(Exception):
    """The anchor could not be fetched or is not one to start from (says why)."""


@dataclass(frozen=True, slots=True)
class Anchor:
    """A finalized state and its block, checked, to start a node from."""

    state: State
    block: SignedBlock
    source: str  # where it came from, for logs

    @property
    def slot(self) -> int:
        return self.block.block.slot

    @property
    def root(self) -> bytes:
        return self.block.block.hash_tree_root()


def fetch_anchor(url: str, genesis: GenesisSpec, *, timeout: float = 30.0) -> Anchor:
    """Fetch, decode and check the finalized state and block served at ``url``.

    Blocks: call it before the node's loop serves, or from a worker thread.
    """
    base = url.rstrip("/")
    state_bytes = _get(base + STATE_PATH, timeout)
    block_bytes = _get(base + BLOCK_PATH, timeout)
    try:
        state = State.decode(state_bytes)
    except SSZError as error:
        raise CheckpointSyncError(f"{base}{STATE_PATH}: not an SSZ state: {error}") from error
    try:
        block = SignedBlock.decode(block_bytes)
    except SSZError as error:
        raise CheckpointSyncError(
            f"{base}{BLOCK_PATH}: not an SSZ signed block: {error}"
        ) from error
    verdict = verify_checkpoint_state(state)
    if not verdict.accepted:
        raise CheckpointSyncError(f"{base}: the finalized state is refused: {verdict.reason}")
    if state.config.genesis_time != genesis.genesis_time:
        raise CheckpointSyncError(
            f"{base} serves another network: genesis time {state.config.genesis_time}, "
            f"ours {genesis.genesis_time}"
        )
    keys = tuple(
        (bytes(v.attestation_public_key), bytes(v.proposal_public_key)) for v in state.validators
    )
    if keys != tuple(genesis.validator_keys):
        raise CheckpointSyncError(
            f"{base} serves another network: its {len(keys)} validator keys differ from "
            f"our genesis's {len(genesis.validator_keys)}"
        )
    if block.block.state_root != state.hash_tree_root():
        raise CheckpointSyncError(
            f"{base}: the finalized block (slot {block.block.slot}) is not the finalized "
            f"state's (slot {state.slot}): its state root differs"
        )
    return Anchor(state=state, block=block, source=base)


def _get(url: str, timeout: float) -> bytes:
    request = urllib.request.Request(url, headers={"Accept": "application/octet-stream"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body: bytes = response.read(MAX_RESPONSE_BYTES + 1)
    except urllib.error.HTTPError as error:
        raise CheckpointSyncError(f"{url}: HTTP {error.code} {error.reason}") from error
    except (urllib.error.URLError, OSError, TimeoutError) as error:
        reason = getattr(error, "reason", error)
        raise CheckpointSyncError(f"{url}: cannot fetch: {reason}") from error
    if len(body) > MAX_RESPONSE_BYTES:
        raise CheckpointSyncError(f"{url}: more than {MAX_RESPONSE_BYTES} bytes")
    return body

"""The P2P actor: a sans-IO core and a thin actor shell. Loop thread.

All P2P business logic — peers and the Status handshake, block fetch by root and by
range with retries and backoff, bootnode redial, publishing, serving — lives in
:class:`P2PCore`, which takes ``now`` as an argument, emits driver commands and chain
values, and does no I/O. :class:`P2PActor` runs it on the loop (one timer, commands to
the driver's sink, values to the chain). :class:`ChainReader` and the request and
output values in :mod:`lean_p2p.p2p.chain` are the whole contract with the store.

Modules: ``core`` (the state machine), ``shell`` (the actor), ``chain`` (the contract
with the store), ``peers``, ``fetch``, ``sync``, ``serve``, ``deadlines``, ``logs`` (its
parts) and ``backoff`` (every constant). An in-memory chain and a simulated network for
tests and benchmarks are tools: :mod:`lean_p2p.tools.memory_chain` and
:mod:`lean_p2p.tools.simulation`.
"""

from lean_p2p.p2p.chain import (
    AggregateReceived,
    AttestationReceived,
    BlockReceived,
    BlockSource,
    ChainReader,
    ChainRequest,
    FetchAbandoned,
    FetchRoots,
    PublishAggregate,
    PublishAttestation,
    PublishBlock,
    PublishRejected,
    ReportGossip,
    ToChain,
)
from lean_p2p.p2p.core import P2PCore, P2PStatistics, block_root
from lean_p2p.p2p.shell import DriverGone, P2PActor

__all__ = [
    "AggregateReceived",
    "AttestationReceived",
    "BlockReceived",
    "BlockSource",
    "ChainReader",
    "ChainRequest",
    "DriverGone",
    "FetchAbandoned",
    "FetchRoots",
    "P2PActor",
    "P2PCore",
    "P2PStatistics",
    "PublishAggregate",
    "PublishAttestation",
    "PublishBlock",
    "PublishRejected",
    "ReportGossip",
    "ToChain",
    "block_root",
]

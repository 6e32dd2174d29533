"""lean_p2p: an event-loop core for Ethereum lean-consensus clients.

Network callbacks fire on foreign threads (the py-libp2p host's trio thread, an
embedder's native threads) and only enqueue into a lock-free mailbox that wakes one
asyncio loop (uvloop when installed). All consensus state lives on that loop thread.

Folders are thread boundaries:

- ``lean_p2p.runtime``    loop thread (mailbox drain, actors, timers); ``put`` is any-thread
- ``lean_p2p.wire``       any thread (pure codecs: snappy, varints, req/resp framing)
- ``lean_p2p.containers`` any thread (immutable SSZ values)
- ``lean_p2p.crypto``     any thread (XMSS verification in C, without the GIL)
- ``lean_p2p.consensus``  loop thread (state transition, fork choice, parked blocks)
- ``lean_p2p.net``        any thread (frozen event and command values crossing threads)
- ``lean_p2p.driver``     trio thread (py-libp2p host), commands arrive via TrioToken
- ``lean_p2p.p2p``        loop thread (sans-IO P2P core and its actor shell)
- ``lean_p2p.native``     loop thread side of the native C ring (``bindings/``)
- ``lean_p2p.node``       composition: the only package that imports all of the above

What a user runs lives apart: ``lean_p2p.tools`` (devnet, stress, bench, profile,
spectest, interop, soak) and ``lean_p2p.cli`` (the ``lean-p2p`` command). No package
above imports either.
"""

__version__ = "0.1.0"

"""Cryptography of the lean protocol in native code. Any thread.

:mod:`lean_p2p.crypto.xmss` verifies XMSS signatures (leanSpec's generalized XMSS over
KoalaBear Poseidon) in C, through ctypes, which releases the GIL for each call: worker
threads verify in parallel while the loop thread keeps running.
:mod:`lean_p2p.crypto.keys` generates keys (deterministically from a seed, if given)
and signs with them, byte for byte as leanSpec does
(:class:`lean_p2p.consensus.XmssVerifier` puts verification into the fork-choice
store). The library is built by the package's optional native build, like the event
ring; :func:`availability` says whether it is usable here.
"""

from lean_p2p.crypto.keys import (
    KeyDecodeError,
    KeyGenerationStopped,
    SlotNotPrepared,
    SlotOutsideKey,
    XmssKeyPair,
    XmssSecretKey,
    advance_preparation,
    generate_key_pair,
    prepare,
    sign,
)
from lean_p2p.crypto.xmss import (
    XmssUnavailable,
    XmssVerdict,
    availability,
    poseidon_permute,
    sign_one_leaf,
    verify,
)

__all__ = [
    "KeyDecodeError",
    "KeyGenerationStopped",
    "SlotNotPrepared",
    "SlotOutsideKey",
    "XmssKeyPair",
    "XmssSecretKey",
    "XmssUnavailable",
    "XmssVerdict",
    "advance_preparation",
    "availability",
    "generate_key_pair",
    "poseidon_permute",
    "prepare",
    "sign",
    "sign_one_leaf",
    "verify",
]

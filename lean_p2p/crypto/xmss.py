"""XMSS verification in C (``bindings/lean_p2p_xmss.c``), reached through ctypes.

Any thread; nothing is shared between calls. ctypes releases the GIL for every call into
the library, so a verification (about a millisecond of C for the production scheme)
never holds up the loop thread or other Python threads, and verifications on several
worker threads run in parallel.

The library is built next to this file by the package's optional native build
(``liblean_p2p_xmss.so``), or named by ``LEAN_P2P_XMSS_LIB``; without it, calls raise
:class:`XmssUnavailable` saying how to get it.
"""

from __future__ import annotations

import ctypes
import enum
import os
import sys
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Final

from lean_p2p.containers.scheme import PRODUCTION_SCHEME, TEST_SCHEME, XmssScheme, active_scheme
from lean_p2p.containers.xmss import FIELD_MODULUS

__all__ = [
    "ABI_VERSION",
    "LIBRARY_ENV",
    "XmssUnavailable",
    "XmssVerdict",
    "availability",
    "config_id",
    "library",
    "library_path",
    "poseidon_permute",
    "shake128",
    "sign_one_leaf",
    "verify",
]

ABI_VERSION: Final = 2
LIBRARY_ENV: Final = "LEAN_P2P_XMSS_LIB"
LIBRARY_FILENAME: Final = "liblean_p2p_xmss.so"
HOW_TO_BUILD: Final = (
    "reinstall lean_p2p with a C compiler present (`pip install -e .` or scripts/setup.sh), "
    f"or point {LIBRARY_ENV} at a built liblean_p2p_xmss.so"
)
_CONFIG_IDS: Final = {TEST_SCHEME.name: 0, PRODUCTION_SCHEME.name: 1}
_ERR_SLOT: Final = -8  # LEAN_XMSS_ERR_SLOT


class XmssUnavailable(RuntimeError):
    """The native XMSS library is not built or cannot be loaded here."""


class XmssVerdict(enum.Enum):
    """What verification found; only :attr:`VALID` is a valid signature."""

    VALID = 1
    #: a well-formed signature that does not verify: wrong key, message, slot, a forgery
    INVALID = 0
    #: the public key is not 52 bytes of field elements
    MALFORMED_PUBLIC_KEY = -2
    #: the signature is not the scheme's size
    MALFORMED_SIGNATURE_SIZE = -3
    #: the signature's SSZ offsets are not the scheme's
    MALFORMED_SIGNATURE_LAYOUT = -4
    #: a word of the signature is not a field element (not below the modulus)
    MALFORMED_FIELD_ELEMENT = -5

    @property
    def valid(self) -> bool:
        return self is XmssVerdict.VALID


def library_path() -> Path:
    override = os.environ.get(LIBRARY_ENV)
    if override:
        return Path(override)
    return Path(__file__).with_name(LIBRARY_FILENAME)


_BYTES = ctypes.c_char_p
_SIZE = ctypes.c_size_t
_U64 = ctypes.c_uint64
#: Argument types of every function of the library (each returns an int).
_SIGNATURES: Final = {
    "lean_xmss_verify": (ctypes.c_int, _BYTES, _SIZE, _U64, _BYTES, _BYTES, _SIZE),
    "lean_xmss_poseidon_permute": (ctypes.POINTER(ctypes.c_uint32), _SIZE),
    "lean_xmss_sign_one_leaf": (ctypes.c_int, _U64, _U64, _BYTES, _BYTES, _BYTES),
    "lean_xmss_signature_size": (ctypes.c_int,),
    "lean_xmss_shake128": (_BYTES, _SIZE, _BYTES, _SIZE),
    "lean_xmss_leaves": (ctypes.c_int, _BYTES, _BYTES, _U64, _SIZE, _BYTES),
    "lean_xmss_tree_layer": (ctypes.c_int, _BYTES, ctypes.c_uint, _U64, _BYTES, _SIZE, _BYTES),
    "lean_xmss_sign_chains": (
        ctypes.c_int,
        _BYTES,
        _BYTES,
        _U64,
        _BYTES,
        _BYTES,
        _BYTES,
        ctypes.POINTER(ctypes.c_uint64),
    ),
}


@cache
def _load(path: Path) -> ctypes.CDLL:
    if not path.is_file():
        raise XmssUnavailable(f"native XMSS library not built ({path} is missing): {HOW_TO_BUILD}")
    try:
        library = ctypes.CDLL(str(path))
    except OSError as error:
        raise XmssUnavailable(f"cannot load {path}: {error}") from error
    if library.lean_xmss_abi_version() != ABI_VERSION:
        raise XmssUnavailable(f"{path} speaks another ABI than this package: rebuild it")
    for name, argtypes in _SIGNATURES.items():
        function = getattr(library, name)
        function.restype = ctypes.c_int
        function.argtypes = argtypes
    return library


def library() -> ctypes.CDLL:
    """The loaded library (for this package's modules); :class:`XmssUnavailable` if not."""
    return _load(library_path())


def config_id(scheme: XmssScheme) -> int:
    """The C library's number for ``scheme``."""
    return _CONFIG_IDS[scheme.name]


def shake128(data: bytes, length: int) -> bytes:
    """SHAKE128 in the library's C (the PRF's hash), to test it against hashlib's."""
    out = ctypes.create_string_buffer(length)
    library().lean_xmss_shake128(data, len(data), out, length)
    return out.raw


def availability() -> str:
    """One line saying whether native XMSS can be used here, and if not, why."""
    if not sys.platform.startswith("linux"):
        return f"unavailable: built only on Linux, not {sys.platform}"
    try:
        library()
    except XmssUnavailable as error:
        return f"unavailable: {error}"
    return f"available ({library_path()}, ABI {ABI_VERSION})"


def poseidon_permute(state: Sequence[int]) -> list[int]:
    """leanSpec's Poseidon permutation of a width-16 or width-24 state of field elements."""
    width = len(state)
    if width not in (16, 24):
        raise ValueError(f"the width must be 16 or 24, not {width}")
    if not all(0 <= value < FIELD_MODULUS for value in state):
        raise ValueError("every element must be a field element below the modulus")
    buffer = (ctypes.c_uint32 * width)(*state)
    if library().lean_xmss_poseidon_permute(buffer, width) != 0:
        raise AssertionError("the library refused a state this function checked")
    return list(buffer)


def verify(
    public_key: bytes,
    slot: int,
    message: bytes,
    signature: bytes,
    scheme: XmssScheme | None = None,
) -> XmssVerdict:
    """Verify ``signature`` by ``public_key`` over the 32-byte ``message`` at ``slot``.

    ``scheme`` defaults to the active one (:func:`lean_p2p.containers.active_scheme`).
    Runs without the GIL. A ``slot`` beyond the key's lifetime is :attr:`~XmssVerdict.INVALID`.
    """
    chosen = scheme or active_scheme()
    if len(message) != 32:
        raise ValueError(f"the message is 32 bytes, not {len(message)}")
    if not 0 <= slot < 2**64:
        return XmssVerdict.INVALID
    result = library().lean_xmss_verify(
        _CONFIG_IDS[chosen.name],
        public_key,
        len(public_key),
        slot,
        message,
        signature,
        len(signature),
    )
    return XmssVerdict(result)


def sign_one_leaf(
    seed: int, slot: int, message: bytes, scheme: XmssScheme | None = None
) -> tuple[bytes, bytes]:
    """``(public_key, signature)`` by a key of which only one leaf is known.

    NOT a signer for real keys: the chain starts and path siblings come from ``seed``,
    and the root is computed up that one path. Verifiers (ours, leanSpec's) accept it as
    they accept any signature, which is what it is for: cross-checking verification in
    the production scheme, too large for leanSpec to sign in, and timing full
    verifications. Deterministic in ``seed``.
    """
    chosen = scheme or active_scheme()
    if len(message) != 32:
        raise ValueError(f"the message is 32 bytes, not {len(message)}")
    public_key = ctypes.create_string_buffer(chosen.public_key_size)
    signature = ctypes.create_string_buffer(chosen.signature_size)
    if not 0 <= slot < 2**64:
        raise ValueError(f"slot {slot} is past the {chosen.name} scheme's lifetime")
    result = library().lean_xmss_sign_one_leaf(
        _CONFIG_IDS[chosen.name], seed % 2**64, slot, message, public_key, signature
    )
    if result == 0:
        return public_key.raw, signature.raw
    if result == _ERR_SLOT:
        raise ValueError(f"slot {slot} is past the {chosen.name} scheme's lifetime")
    raise RuntimeError(f"no encoding randomness met the target sum (code {result})")

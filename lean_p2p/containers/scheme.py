"""Which XMSS parameter set sizes the signatures. Any thread (read); select at startup.

leanSpec has two parameter sets. The fixtures (``leanEnv: test``) use the test set,
whose signatures are 424 bytes; devnets use the production set, 2536 bytes. The
signature is declared fixed-size, so the set changes the byte layout of every container
that holds one (:class:`~lean_p2p.containers.SignedAttestation`).

The containers use the **test** set by default, so that they agree with the fixtures.
Select production once at process start, before any decoding, either with the
environment variable ``LEAN_P2P_SIGNATURE_SCHEME=production`` or by calling
``select_signature_scheme(PRODUCTION_SCHEME)``. Switching while other threads decode is
not supported (a decode racing the switch may use either size).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Final

__all__ = [
    "PRODUCTION_SCHEME",
    "SCHEMES",
    "SCHEME_ENV",
    "TEST_SCHEME",
    "XmssScheme",
    "active_scheme",
    "scheme_generation",
    "select_signature_scheme",
    "using_signature_scheme",
]

SCHEME_ENV: Final = "LEAN_P2P_SIGNATURE_SCHEME"

#: Bytes of one KoalaBear field element on the wire (a little-endian uint32).
FIELD_ELEMENT_BYTES: Final = 4
_OFFSET_BYTES: Final = 4


@dataclass(frozen=True, slots=True)
class XmssScheme:
    """The XMSS parameters that fix the sizes of keys and signatures."""

    name: str
    log_lifetime: int
    dimension: int
    parameter_length: int = 5
    rand_length: int = 7
    hash_length: int = 8

    @property
    def digest_bytes(self) -> int:
        return self.hash_length * FIELD_ELEMENT_BYTES

    @property
    def node_list_limit(self) -> int:
        """Limit of a hash-digest list: twice the leaves of one bottom tree."""
        return 2 * (1 << (self.log_lifetime // 2))

    @property
    def signature_size(self) -> int:
        """Encoded size: path siblings, rho, chain hashes, and three SSZ offsets."""
        return (
            self.log_lifetime * self.digest_bytes
            + self.rand_length * FIELD_ELEMENT_BYTES
            + self.dimension * self.digest_bytes
            + 3 * _OFFSET_BYTES
        )

    @property
    def public_key_size(self) -> int:
        return self.digest_bytes + self.parameter_length * FIELD_ELEMENT_BYTES


TEST_SCHEME: Final = XmssScheme(name="test", log_lifetime=8, dimension=4)
PRODUCTION_SCHEME: Final = XmssScheme(name="production", log_lifetime=32, dimension=46)

#: The parameter sets by name (``"test"``, ``"production"``).
SCHEMES: Final = {scheme.name: scheme for scheme in (TEST_SCHEME, PRODUCTION_SCHEME)}


def _scheme_from_environment() -> XmssScheme:
    name = os.environ.get(SCHEME_ENV, TEST_SCHEME.name).strip().lower()
    if name == "prod":
        name = PRODUCTION_SCHEME.name
    try:
        return SCHEMES[name]
    except KeyError:
        raise ValueError(f"{SCHEME_ENV}={name!r}: expected one of {sorted(SCHEMES)}") from None


_active: XmssScheme = _scheme_from_environment()
# Bumped on every switch so that cached layouts (container offsets) know to recompute.
_generation: int = 0


def active_scheme() -> XmssScheme:
    return _active


def scheme_generation() -> int:
    return _generation


def select_signature_scheme(scheme: XmssScheme) -> None:
    """Make ``scheme`` the process-wide parameter set (call at startup)."""
    global _active, _generation
    if scheme != _active:
        _active = scheme
        _generation += 1


@contextmanager
def using_signature_scheme(scheme: XmssScheme) -> Iterator[XmssScheme]:
    """Use ``scheme`` inside a block (tests and benchmarks; single-threaded use only)."""
    previous = _active
    select_signature_scheme(scheme)
    try:
        yield scheme
    finally:
        select_signature_scheme(previous)

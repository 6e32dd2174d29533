"""Where the leanSpec fixture vectors live. Any thread (pure path logic).

Default: ``../shared/fixtures/leanspec`` beside the project root (the repository this
package is checked out in, else the current directory); overridden by the environment
variable ``LEAN_P2P_LEANSPEC_FIXTURES``.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = [
    "FIXTURES_ENV",
    "HOW_TO_GET",
    "HOW_TO_GET_XMSS",
    "XMSS_VECTORS_ENV",
    "default_fixtures_root",
    "default_xmss_vectors_root",
    "project_root",
]

FIXTURES_ENV = "LEAN_P2P_LEANSPEC_FIXTURES"

HOW_TO_GET = (
    "leanSpec fixtures not found: generate them with leanSpec's fixture filler "
    f"(fork lstar, leanEnv test) and point {FIXTURES_ENV} at the directory that holds "
    "ssz/, networking_codec/, fork_choice/ ..."
)


XMSS_VECTORS_ENV = "LEAN_P2P_XMSS_VECTORS"

HOW_TO_GET_XMSS = (
    "XMSS vectors not found: make them with leanSpec "
    "(LEAN_ENV=test VENV/bin/python scripts/gen_xmss_vectors.py build/xmss-vectors, with "
    "VENV from ../shared/peers/setup-leanspec.sh; docs/crypto.md gives the other direction) "
    f"or point {XMSS_VECTORS_ENV} at them"
)


def project_root() -> Path:
    """The checkout this package lives in, if it is one; else the current directory."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "pyproject.toml").is_file() and (parent / "lean_p2p").is_dir():
            return parent
    return Path.cwd()


def default_fixtures_root() -> Path:
    configured = os.environ.get(FIXTURES_ENV)
    if configured:
        return Path(configured)
    return project_root().parent / "shared" / "fixtures" / "leanspec"


def default_xmss_vectors_root() -> Path:
    """Where ``scripts/gen_xmss_vectors.py`` output is read: ``$LEAN_P2P_XMSS_VECTORS``,
    else ``build/xmss-vectors`` in the checkout (where ``.ci/run`` writes them)."""
    configured = os.environ.get(XMSS_VECTORS_ENV)
    if configured:
        return Path(configured)
    return project_root() / "build" / "xmss-vectors"

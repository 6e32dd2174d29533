"""Structured log lines for the P2P actor. Loop thread (as its callers).

A line is a constant message (the event) with its fields as record attributes
(``record.peer_id``, ``record.root``, ...) and all of them in ``record.p2p_fields``, so
a JSON or logfmt handler can emit them as fields, and a plain one still prints the
event. Roots and other bytes are logged as hex.
"""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["log_event", "logger"]

logger = logging.getLogger("lean_p2p.p2p")


def log_event(level: int, event: str, **fields: Any) -> None:
    if not logger.isEnabledFor(level):
        return
    rendered = {k: (v.hex() if isinstance(v, bytes) else v) for k, v in fields.items()}
    logger.log(level, event, extra={**rendered, "p2p_event": event, "p2p_fields": rendered})

#!/usr/bin/env bash
# Soak test (not part of the default test suite): a 4-node devnet on loopback for
# SOAK_DURATION seconds (default 600) with a node killed and restarted, a node
# partitioned (SIGSTOP) and healed, and malformed gossip published by a chaos peer.
# Passes when all nodes agree on the finalized checkpoint, heads agree within one slot,
# finality still advances in the last quarter, no event was lost, and no node's memory
# grew past the bounds. Writes the verdict to SOAK_JSON (default soak.json).
#
#   scripts/soak.sh                       # 10 minutes
#   SOAK_DURATION=180 scripts/soak.sh     # a shorter run of the same timeline
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
[ -x "$PYTHON" ] || PYTHON=python3
exec "$PYTHON" -m lean_p2p.cli soak \
    --restart-delay "${SOAK_RESTART_DELAY:-20}" \
    --duration "${SOAK_DURATION:-600}" \
    --json "${SOAK_JSON:-soak.json}" \
    --max-rss-mb "${SOAK_MAX_RSS_MB:-600}" \
    --max-growth-pct "${SOAK_MAX_GROWTH_PCT:-25}"

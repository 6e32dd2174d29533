#!/usr/bin/env bash
# Sets up a virtual environment with everything lean_p2p needs (including the native ring
# of bindings/), then runs the main job: a local 4-node devnet that finalizes.
#
#   bash scripts/setup.sh               # set up, then run the devnet
#   bash scripts/setup.sh --setup-only  # set up only (CI uses this)
#   bash scripts/setup.sh -- ARGS...    # set up, then run `lean-p2p devnet ARGS...`
set -euo pipefail
cd "$(dirname "$0")/.."

run_main=1
devnet_args=(--nodes 4 --validators 8 --duration 60)
while [ $# -gt 0 ]; do
  case "$1" in
    --setup-only) run_main=0; shift ;;
    --) shift; devnet_args=("$@"); break ;;
    -h|--help) sed -n '2,/^set /{/^#/s/^# \{0,1\}//p}' "$0"; exit 0 ;;
    *) echo "setup.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

python=${PYTHON:-python3}
"$python" - <<'PY' || { echo "setup.sh: Python 3.11 or newer is required" >&2; exit 1; }
import sys
sys.exit(0 if sys.version_info >= (3, 11) else 1)
PY

# py-libp2p pulls in fastecdsa, which may build from source against GMP.
have_gmp=0
for header in /usr/include/gmp.h /usr/include/*/gmp.h; do
  [ -f "$header" ] && have_gmp=1
done
if [ "$have_gmp" = 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "setup.sh: installing libgmp-dev (needed to build fastecdsa for py-libp2p)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libgmp-dev
  else
    echo "setup.sh: warning: GMP headers (libgmp-dev) not found; installing libp2p may fail" >&2
  fi
fi

# The C decoder of native records is a Python extension module: it needs Python.h.
python_include=$("$python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
if [ ! -f "$python_include/Python.h" ]; then
  dev_package=$("$python" -c 'import sys; print(f"python{sys.version_info[0]}.{sys.version_info[1]}-dev")')
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "setup.sh: installing $dev_package (Python headers, for the C record decoder)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$dev_package"
  else
    echo "setup.sh: warning: no Python headers ($dev_package); native records decode in Python" >&2
  fi
fi

if [ ! -x .venv/bin/python ]; then
  echo "setup.sh: creating .venv"
  "$python" -m venv .venv
fi
echo "setup.sh: installing lean_p2p and its dependencies into .venv"
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev]'
.venv/bin/python -c "import lean_p2p.native as n; print('setup.sh: native ring:', n.availability())" \
  2>/dev/null || echo "setup.sh: native ring not available (pure-Python paths still work)"
.venv/bin/python -c "from lean_p2p.native.records import record_decoder as d; print('setup.sh: record decoder:', d())" \
  2>/dev/null || true

if [ "$run_main" = 1 ]; then
  echo "setup.sh: running: lean-p2p devnet ${devnet_args[*]}"
  exec .venv/bin/lean-p2p devnet "${devnet_args[@]}"
fi

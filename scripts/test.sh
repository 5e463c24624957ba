#!/usr/bin/env bash
# Runs every test: Rust unit, integration and doc tests, then the Python package's pytest suite.
# Installs what is missing first (cmake + libclang for HiGHS, maturin + pytest for Python).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
echo "== cargo test (edgeplan) =="
cargo test -p edgeplan --all-targets
cargo test -p edgeplan --doc
echo "== python package (maturin develop + pytest) =="
VENV="${EDGEPLAN_VENV:-.venv}"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv --system-site-packages "$VENV"
fi
"$VENV/bin/python" -m pip install -q --disable-pip-version-check maturin pytest 2>/dev/null || true
(cd python && VIRTUAL_ENV="$PWD/../$VENV" PATH="$PWD/../$VENV/bin:$PATH" "../$VENV/bin/python" -m maturin develop -q)
"$VENV/bin/python" -m pytest -q python/tests

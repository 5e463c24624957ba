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
VENV_ABS="$(cd "$VENV" && pwd)"
# `python -m maturin` needs the maturin script inside the venv; a system-wide maturin seen through
# --system-site-packages has its script elsewhere, so fall back to the `maturin` on PATH.
if "$VENV_ABS/bin/python" -m maturin --version >/dev/null 2>&1; then
  MATURIN=("$VENV_ABS/bin/python" -m maturin)
else
  MATURIN=(maturin)
fi
(cd python && VIRTUAL_ENV="$VENV_ABS" PATH="$VENV_ABS/bin:$PATH" "${MATURIN[@]}" develop -q)
"$VENV/bin/python" -m pytest -q python/tests

#!/usr/bin/env bash
# The main job: solves every bundled instance under instances/ in batch and prints a summary table.
# Results go to results/ (one JSON per instance, plus summary.json).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cargo build --release -q --bin edgeplan
./target/release/edgeplan batch instances --out "${1:-results}" --jobs "${JOBS:-2}" --time-limit "${TIME_LIMIT:-60}"

#!/usr/bin/env bash
# Load benchmark of persist-server on loopback: builds in release, starts the server on a temp
# SQLite file (synchronous=FULL) and runs the load generator (crates/server/examples/persist-bench.rs).
# About 1 minute of load after the build; prints a table and one `BENCH {json}` line per benchmark.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"

cargo build --release -p persist-server --bin persist-server --example persist-bench
"$TARGET_DIR/release/examples/persist-bench" --server-bin "$TARGET_DIR/release/persist-server" "$@"

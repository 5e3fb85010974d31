#!/usr/bin/env bash
# End-to-end tests: builds the app with Trunk (as `make run` does, in the dev profile to save
# time), then runs tests/e2e: the real server serving it, driven in headless Chromium.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

DIST="${CARGO_TARGET_DIR:-$PWD/target}/e2e-dist"
trunk build --dist "$DIST" >/dev/null
PERSIST_E2E_DIST="$DIST" cargo test -p persist-e2e --locked -- --nocapture "$@"

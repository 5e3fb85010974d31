#!/usr/bin/env bash
# End-to-end tests: builds the app and the notes example with Trunk (as `make run` does, in the
# dev profile to save time), then runs tests/e2e: the real server serving them, driven in
# headless Chromium.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

TARGET="${CARGO_TARGET_DIR:-$PWD/target}"
DIST="$TARGET/e2e-dist"
NOTES_DIST="$TARGET/e2e-notes-dist"
trunk build --dist "$DIST" >/dev/null
(cd crates/persist/examples/notes && trunk build --dist "$NOTES_DIST" >/dev/null)
PERSIST_E2E_DIST="$DIST" PERSIST_E2E_NOTES_DIST="$NOTES_DIST" \
    cargo test -p persist-e2e --locked -- --nocapture "$@"

#!/usr/bin/env bash
# `make run`: builds the app and serves it, with the sync server, on one port.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
LISTEN="${LISTEN:-127.0.0.1:5001}"

scripts/setup.sh run
trunk build --release
cargo build --release --locked -p persist-server
echo
echo "  App and sync server: http://$LISTEN/"
echo
exec target/release/persist-server serve --dev --listen "$LISTEN" --static-dir dist
